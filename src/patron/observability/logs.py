"""Logging: one structured line per request, written without `logging`, and everything else through it."""

from __future__ import annotations

import asyncio
import logging
import os
import select
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from patron.observability.masking import CONTROL, mask_email, mask_mobile, mask_text, redact_secrets
from patron.observability.outcome import ItemOutcome
from patron.settings import Settings


# A batch may hold hundreds of items; the line names the first few, the counts cover them all.
LOGGED_ITEMS = 10

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
          "critical": logging.CRITICAL}


def _write(fd: int, data: bytes) -> None:
    try:
        os.write(fd, data)
    except OSError:
        pass  # a closed or broken stderr must never fail a request


class LineWriter:
    """Writes whole lines to a file descriptor: the lines of one turn of the event loop together.

    Under load many requests end in one turn, and a write(2) each cost more than making their
    lines. A write holds whole lines and at most PIPE_BUF bytes (a longer line goes alone), so
    lines of several workers sharing stderr still never interleave. Outside an event loop a line
    is written at once.
    """

    def __init__(self, fd: int = 2, limit: int = select.PIPE_BUF) -> None:
        self.fd = fd
        self.limit = limit
        self._pending: list[bytes] = []

    def __call__(self, line: bytes) -> None:
        if not self._pending:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:
                _write(self.fd, line)
                return
        self._pending.append(line)

    def flush(self) -> None:
        lines, self._pending = self._pending, []
        chunk: list[bytes] = []
        size = 0
        for line in lines:
            if chunk and size + len(line) > self.limit:
                _write(self.fd, b"".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        if chunk:
            _write(self.fd, b"".join(chunk))


def _use_text(settings: Settings) -> bool:
    if settings.log_format != "auto":
        return settings.log_format == "text"
    return sys.stderr.isatty()


class RequestLog:
    """Writes the one line of each request, bypassing `logging`, where a record alone costs ~6 µs
    (this whole line costs about half of that)."""

    def __init__(self, settings: Settings, sink: Callable[[bytes], Any] | None = None) -> None:
        self.level = LEVELS[settings.log_level]
        self.pii = settings.log_pii
        self.text = _use_text(settings)
        self.colour = self.text and sys.stderr.isatty()
        self.sink = sink or LineWriter()
        self._second = -1
        self._prefix = ""

    def timestamp(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            # strftime is the slow part; it changes once a second.
            self._second, self._prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((now - second) * 1000):03d}Z"

    def write(self, record: dict[str, Any]) -> None:
        if self.text:
            line = self._text_line(record)
        else:
            line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        self.sink(line)

    def items(self, items: list[ItemOutcome]) -> list[dict[str, Any]]:
        """The first items of an add or get, with identifiers masked unless PII logging is on."""
        shown = []
        for outcome in items[:LOGGED_ITEMS]:
            logged: dict[str, Any] = {"code": int(outcome.code)}
            if outcome.user_id is not None:
                logged["user_id"] = outcome.user_id
            for name, value, masker in (("mobile", outcome.mobile, mask_mobile), ("email", outcome.email, mask_email)):
                if value:
                    logged[name] = value if self.pii else masker(value)
            if outcome.warnings:
                logged["warnings"] = [int(code) for code in outcome.warnings]
            shown.append(logged)
        return shown

    def _text_line(self, record: dict[str, Any]) -> bytes:
        status = record.get("status", 0)
        # The caller's text (a path, a key) is escaped before the colour codes go around it.
        head = f"{record['method']} {record['path']} {status}".translate(CONTROL)
        if self.colour:
            colour = "32" if status < 300 else "36" if status < 400 else "33" if status < 500 else "31"
            head = f"\x1b[{colour}m{head}\x1b[0m"
        parts = [record["ts"], record["level"].upper(), head, f"{record['ms']}ms"]
        for key, value in record.items():
            if key in _TEXT_HEAD or value is None:
                continue
            if key == "items_detail":
                value = " ".join("[" + " ".join(_text_item(item)) + "]" for item in value)
            parts.append(f"{key}={value}".translate(CONTROL))
        return (" ".join(parts) + "\n").encode("utf-8", "replace")


_TEXT_HEAD = frozenset({"ts", "level", "method", "path", "status", "ms"})


def _text_item(item: dict[str, Any]) -> Iterator[str]:
    for key, value in item.items():
        yield f"warnings={','.join(map(str, value))}" if key == "warnings" else str(value)


class PatronFormatter(logging.Formatter):
    """Startup, warnings and tracebacks in the request lines' format, masked the same way."""

    def __init__(self, text: bool, pii: bool) -> None:
        super().__init__()
        self.text = text
        self.pii = pii

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        trace = record.exc_text or None
        if record.stack_info:
            trace = f"{trace}\n{self.formatStack(record.stack_info)}" if trace else self.formatStack(record.stack_info)
        message, trace = (self._clean(message), self._clean(trace) if trace else None)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        if self.text:
            line = f"{stamp} {record.levelname} {record.name}: {message}"
            return f"{line}\n{trace}" if trace else line
        document = {"ts": stamp, "level": record.levelname.lower(), "logger": record.name, "message": message}
        if trace:
            document["exc"] = trace
        return orjson.dumps(document).decode()

    def _clean(self, text: str) -> str:
        text = redact_secrets(text)
        return text if self.pii else mask_text(text)


_HANDLER_NAME = "patron"


def configure_logging(settings: Settings) -> None:
    """Route the stdlib's records to stderr in Patron's format, once per process.

    Like logging.basicConfig, it leaves alone a process whose logging someone else set up
    (a test runner, an embedding application).
    """
    root = logging.getLogger()
    if any(handler.get_name() == _HANDLER_NAME for handler in root.handlers):
        return
    level = LEVELS[settings.log_level]
    if root.handlers:
        logging.getLogger("patron").setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(PatronFormatter(_use_text(settings), settings.log_pii))
    root.addHandler(handler)
    root.setLevel(level)
    # The relay's HTTP client logs every request at INFO with its whole URL: a webhook's URL may
    # carry a token, and one line per delivery drowns the relay's own. Its warnings still show.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))


