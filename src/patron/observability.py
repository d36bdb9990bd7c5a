"""Logging and metrics: one structured line per request, Prometheus counters, and GET /metrics."""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
import select
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from patron.codes import Code, request_message
from patron.settings import Settings

if TYPE_CHECKING:
    from patron.store.unit import Storage

METRICS_PATH = "/metrics"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LOCAL_CLIENTS = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})
# Label of requests that matched no route: their paths are the caller's text and unbounded.
UNMATCHED = "unmatched"
# A batch may hold hundreds of items; the line names the first few, the counts cover them all.
LOGGED_ITEMS = 10
# Seconds; registration is a few database round trips, so most requests land in the low buckets.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Requests sharing one statement: one when idle, tens under load.
SHARED_STATEMENT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
# A caller's text (a 404 path, a key) is cut to this before it is logged.
MAX_TEXT = 200

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
          "critical": logging.CRITICAL}


# --- Masking ---------------------------------------------------------------------------------


def mask_mobile(value: str) -> str:
    """9198******89: enough to tell two customers apart in a log, not enough to call one."""
    size = len(value)
    if size <= 6:
        return "*" * size
    return value[:4] + "*" * (size - 6) + value[-2:]


def mask_email(value: str) -> str:
    local, at, domain = value.partition("@")
    if not at:
        return mask_mobile(value)
    return local[:1] + "***@" + domain


_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
# 10 to 15 digits standing alone: a mobile in any error text, E.164 or national.
_MOBILE = re.compile(r"(?<![\w.])(\+?\d{4})(\d{4,9})(\d{2})(?![\w])")
_SECRET_PAIR = re.compile(
    r"(?i)\b(authorization|password(?:_md5)?|passwd|secret(?:_key)?|token|access_?token|md5|api[-_]?key)"
    r"(['\"]?\s*[:=]\s*['\"]?)(?:(?:basic|bearer)\s+)?[^\s'\",;}&)\]]+"
)
_SECRET_SHAPES = re.compile(
    r"(?i)\b(?:basic|bearer)\s+[A-Za-z0-9+/=._-]{8,}"  # an Authorization header's value
    r"|\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"  # a JWT
    r"|\$argon2\w*\$[^\s'\",)]+"  # a stored hash
)
_CONTROL = {code: f"\\x{code:02x}" for code in (*range(32), 127)}


def redact_secrets(text: str) -> str:
    """Secrets go whatever the PII setting: nothing may ever put one in a log line."""
    return _SECRET_SHAPES.sub("[redacted]", _SECRET_PAIR.sub(r"\1\2[redacted]", text))


def mask_text(text: str) -> str:
    """Free text (an error, a traceback, a path): every e-mail and mobile-like number masked."""
    text = _EMAIL.sub(r"\1***@\2", text)
    return _MOBILE.sub(lambda m: m[1] + "*" * len(m[2]) + m[3], text)


# --- Logging: the request line ---------------------------------------------------------------


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

    def items(self, items: list[Any]) -> list[dict[str, Any]]:
        """The first items of an add or get, with identifiers masked unless PII logging is on."""
        shown = []
        for entry in items[:LOGGED_ITEMS]:
            if not isinstance(entry, dict):
                continue
            status = entry.get("item_status") or {}
            logged: dict[str, Any] = {"code": _int(status.get("code"))}
            if entry.get("user_id") is not None:
                logged["user_id"] = entry["user_id"]
            for name, masker in (("mobile", mask_mobile), ("email", mask_email)):
                value = entry.get(name)
                if isinstance(value, int) and not isinstance(value, bool):
                    value = str(value)
                if isinstance(value, str) and value:
                    logged[name] = value if self.pii else masker(value)
            warnings = (status.get("warnings") or {}).get("warning")
            if warnings:
                logged["warnings"] = [_int(code) for code in warnings]
            shown.append(logged)
        return shown

    def _text_line(self, record: dict[str, Any]) -> bytes:
        status = record.get("status", 0)
        # The caller's text (a path, a key) is escaped before the colour codes go around it.
        head = f"{record['method']} {record['path']} {status}".translate(_CONTROL)
        if self.colour:
            colour = "32" if status < 300 else "36" if status < 400 else "33" if status < 500 else "31"
            head = f"\x1b[{colour}m{head}\x1b[0m"
        parts = [record["ts"], record["level"].upper(), head, f"{record['ms']}ms"]
        for key, value in record.items():
            if key in _TEXT_HEAD or value is None:
                continue
            if key == "items_detail":
                value = " ".join("[" + " ".join(_text_item(item)) + "]" for item in value)
            parts.append(f"{key}={value}".translate(_CONTROL))
        return (" ".join(parts) + "\n").encode("utf-8", "replace")


_TEXT_HEAD = frozenset({"ts", "level", "method", "path", "status", "ms"})


def _text_item(item: dict[str, Any]) -> Iterator[str]:
    for key, value in item.items():
        yield f"warnings={','.join(map(str, value))}" if key == "warnings" else str(value)


def _int(value: Any) -> Any:
    return int(value) if isinstance(value, str) and value.isdigit() else value


# --- Logging: everything else, through the stdlib --------------------------------------------


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


# --- Metrics ---------------------------------------------------------------------------------


class Metrics:
    """The Prometheus series; labelled children are cached, as `labels()` costs a few µs a call."""

    def __init__(self) -> None:
        # Imported here: prometheus_client picks its multiprocess mode from the environment at
        # import, and `patron serve` sets that environment before the workers start.
        from prometheus_client import Counter, Gauge, Histogram

        self.requests = _metric(Counter, "patron_requests_total", "Requests answered, by route and HTTP status.",
                                ["route", "status"])
        self.latency = _metric(Histogram, "patron_request_duration_seconds", "Time to answer a request, by route.",
                               ["route"], buckets=LATENCY_BUCKETS)
        self.items = _metric(Counter, "patron_customer_items_total",
                             "Customers of add and get requests, by route and item code.", ["route", "code"])
        self.warnings = _metric(Counter, "patron_item_warnings_total", "Item warnings of add requests, by code.",
                                ["code"])
        self.pool_in_use = _metric(Gauge, "patron_db_pool_in_use", "Database connections checked out.",
                                   multiprocess_mode="livesum")
        self.pool_size = _metric(Gauge, "patron_db_pool_size", "Database connections the pools may hold.",
                                 multiprocess_mode="livesum")
        self.requests_per_statement = _metric(
            Histogram, "patron_requests_per_statement",
            "Requests one statement served (PostgreSQL): registrations of new customers, look-ups.",
            ["statement"], buckets=SHARED_STATEMENT_BUCKETS)
        self.units_per_transaction = _metric(
            Histogram, "patron_units_per_transaction",
            "Units of work (a request's new customers, an item resolved and written) one transaction of"
            " the SQLite writer committed.", buckets=SHARED_STATEMENT_BUCKETS)
        self._requests: dict[tuple[str, int], Any] = {}
        self._latency: dict[str, Any] = {}
        self._items: dict[tuple[str, str], Any] = {}
        self._warnings: dict[str, Any] = {}

    def request(self, route: str, status: int, seconds: float) -> None:
        counter = self._requests.get((route, status))
        if counter is None:
            counter = self._requests[(route, status)] = self.requests.labels(route, str(status))
        counter.inc()
        histogram = self._latency.get(route)
        if histogram is None:
            histogram = self._latency[route] = self.latency.labels(route)
        histogram.observe(seconds)

    def item(self, route: str, code: str, count: int = 1) -> None:
        counter = self._items.get((route, code))
        if counter is None:
            counter = self._items[(route, code)] = self.items.labels(route, code)
        counter.inc(count)

    def warning(self, code: str, count: int = 1) -> None:
        counter = self._warnings.get(code)
        if counter is None:
            counter = self._warnings[code] = self.warnings.labels(code)
        counter.inc(count)


_METRICS: Metrics | None = None


def _metric(kind: Any, name: str, documentation: str, labels: list[str] | None = None, **options: Any) -> Any:
    return kind(name, documentation, labels or (), **options)


def metrics() -> Metrics:
    """The process's one set of series (the Prometheus registry refuses a name twice)."""
    global _METRICS
    if _METRICS is None:
        _METRICS = Metrics()
    return _METRICS


def exposition() -> tuple[bytes, str]:
    """The scrape: this process's series, or with several workers the sum of all of them."""
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        generate_latest,
    )

    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# Prometheus names its files TYPE_PID.db; only those are ever removed from a metrics directory,
# which an operator may have pointed at a folder that holds other things.
_METRICS_FILE = re.compile(r"^(counter|histogram|summary|gauge_[a-z]+)_\w+\.db$")


def _clear_metrics_files(path: Path) -> None:
    for file in path.iterdir():
        if _METRICS_FILE.match(file.name):
            file.unlink(missing_ok=True)


@contextmanager
def multiprocess_metrics(settings: Settings, workers: int) -> Iterator[Path | None]:
    """With several workers, a directory where each writes its series, so a scrape sees their sum.

    Cleared at start (series of a previous run would be added in) and at the end; a directory
    made here is removed.
    """
    if workers <= 1:
        yield None
        return
    given = settings.metrics_dir or os.environ.get(MULTIPROC_ENV)
    path = Path(given) if given else Path(tempfile.mkdtemp(prefix="patron-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    _clear_metrics_files(path)
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        if given:
            _clear_metrics_files(path)
        else:
            shutil.rmtree(path, ignore_errors=True)


# --- The middleware --------------------------------------------------------------------------


class Observer:
    """What the middleware needs of a running app: its request log and its metrics."""

    def __init__(self, settings: Settings, sink: Callable[[bytes], Any] | None = None) -> None:
        self.log = RequestLog(settings, sink)
        self.metrics = metrics()
        token = settings.metrics_token.get_secret_value() if settings.metrics_token else ""
        self._token = token.encode() if token else None
        self._pool_sizes: list[int] = []

    def watch_pool(self, engine: Any) -> None:
        """Count connections in use through the pool's events, so each worker keeps its own
        figure, and the multiprocess scrape adds them up."""
        from sqlalchemy import event

        pool = engine.sync_engine.pool
        size = pool.size() if hasattr(pool, "size") else 0
        self.metrics.pool_size.inc(size)
        in_use = self.metrics.pool_in_use
        event.listen(pool, "checkout", lambda *_: in_use.inc())
        event.listen(pool, "checkin", lambda *_: in_use.dec())
        self._pool_sizes.append(size)

    def watch_storage(self, storage: Storage) -> None:
        """The driver's own pool (PostgreSQL) counts in the same figures as SQLAlchemy's; the
        shared statements tell how many requests each carried, and the SQLite writer how many
        units each transaction did."""
        from patron.store.postgres import PostgresStorage

        if isinstance(storage, PostgresStorage):
            self.metrics.pool_size.inc(storage.driver.size)
            storage.driver.on_use = self.metrics.pool_in_use.inc
            self._pool_sizes.append(storage.driver.size)
            storage.registrations.on_statement = self.metrics.requests_per_statement.labels("register").observe
            storage.lookups.on_statement = self.metrics.requests_per_statement.labels("look_up").observe
        else:
            storage.file.writer.on_commit = self.metrics.units_per_transaction.observe

    def close(self) -> None:
        if isinstance(self.log.sink, LineWriter):
            self.log.sink.flush()
        self.metrics.pool_size.dec(sum(self._pool_sizes))
        self._pool_sizes.clear()
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            # The live gauges of this worker must not be added in once it is gone.
            multiprocess.mark_process_dead(os.getpid())

    def allowed(self, scope: Scope) -> Code | None:
        """None when the scrape may go on, else the refusal's code."""
        if self._token is not None:
            for name, value in scope["headers"]:
                if name == b"authorization":
                    scheme, _, given = value.partition(b" ")
                    if scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self._token):
                        return None
            return Code.AUTHENTICATION_FAILED
        client = scope.get("client")
        if client and client[0] in LOCAL_CLIENTS:
            return None
        return Code.ACCESS_DENIED

    def finish(self, scope: Scope, status: int, started: float, error: BaseException | None = None) -> None:
        seconds = time.perf_counter() - started
        route = scope.get("route")
        route_path = route.path if route is not None else (METRICS_PATH if scope["path"] == METRICS_PATH else UNMATCHED)
        state = scope.get("state") or {}
        items = state.get("items")
        metrics = self.metrics
        metrics.request(route_path, status, seconds)
        failed = 0
        if items:
            # Counted by code first: in multiprocess mode each increment is a locked file write.
            codes: dict[str, int] = {}
            warnings: dict[str, int] = {}
            for entry in items:
                item_status = entry.get("item_status") or {}
                code = item_status.get("code")
                codes[code] = codes.get(code, 0) + 1
                for warning in (item_status.get("warnings") or {}).get("warning") or ():
                    warnings[warning] = warnings.get(warning, 0) + 1
            for code, count in codes.items():
                metrics.item(route_path, code, count)
            for warning, count in warnings.items():
                metrics.warning(warning, count)
            failed = len(items) - codes.get(_ITEM_OK, 0)

        failing = error is not None or status == Code.SERVICE_UNAVAILABLE
        level = logging.ERROR if failing else logging.INFO
        log = self.log
        if level < log.level:
            return
        path = scope["path"]
        if route is None:
            path = path[:MAX_TEXT] if log.pii else mask_text(path[:MAX_TEXT])
        record: dict[str, Any] = {
            "ts": log.timestamp(),
            "level": "error" if failing else "info",
            "rid": state.get("request_id"),
            "method": scope["method"],
            "path": path,
            "status": status,
            "code": state.get("code", status),
            "ms": round(seconds * 1000, 2),
        }
        principal = state.get("principal")
        if principal is not None:
            record["org"] = principal.org.org_id
            record["till"] = principal.till_code
            if principal.api_client_key is not None:
                record["client"] = principal.api_client_key
        elif isinstance(state.get("api_client"), str):
            record["client"] = state["api_client"][:MAX_TEXT]
        if items is not None:
            record["items"] = len(items)
            record["failed"] = failed
            record["items_detail"] = log.items(items)
        if error is not None:
            # The class only: an exception's text may quote the request.
            record["error"] = type(error).__name__
        if status == Code.AUTHENTICATION_FAILED and state.get("hint"):
            record["hint"] = state["hint"]
        log.write(record)


_ITEM_OK = str(int(Code.ITEM_OK))


class ObservabilityMiddleware:
    """Times each request, then writes its line and counts it; answers GET /metrics itself.

    /metrics is served here rather than as a route: it is the operator's, not the API's, and
    stays out of the OpenAPI document that lists every route.
    """

    def __init__(self, app: ASGIApp, observer: Observer) -> None:
        self.app = app
        self.observer = observer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if scope["path"] == METRICS_PATH:
                await self._scrape(scope, observed_send)
            else:
                await self.app(scope, receive, observed_send)
        except BaseException as exc:
            self.observer.finish(scope, status or int(Code.ALL_FAILED), started, exc)
            raise
        self.observer.finish(scope, status, started)

    async def _scrape(self, scope: Scope, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await _answer(send, Code.METHOD_NOT_ALLOWED)
            return
        refused = self.observer.allowed(scope)
        if refused is not None:
            await _answer(send, refused)
            return
        body, content_type = await asyncio.to_thread(exposition)
        headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body if scope["method"] == "GET" else b""})


async def _answer(send: Send, code: Code) -> None:
    """A refusal in the gateway envelope that /health and /ready answer in."""
    body = orjson.dumps({"data": None, "errors": [{"code": int(code), "message": request_message(code)}]})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if code == Code.AUTHENTICATION_FAILED:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": int(code), "headers": headers})
    await send({"type": "http.response.body", "body": body})
