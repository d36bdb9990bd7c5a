"""The client connection: limits on request heads, deadlines for slow clients, a cap on connections."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import httptools
import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from patron.api.codec import error_document
from patron.api.context import REQUEST_ID_HEADER
from patron.codes import Code
from patron.errors import ApiError
from patron.settings import Settings, get_settings

log = logging.getLogger("patron.api.server")

# After a refusal the client may still be writing (the rest of an 8 MB head). Closing a socket
# with unread bytes makes the kernel send a reset, which can destroy the answer before the
# client reads it; so Patron half-closes, reads and drops what still comes for this long, then
# closes. Short, so that a client that never stops sending cannot hold the socket.
LINGER_SECONDS = 2.0
# While Patron itself has stopped reading (the app has not taken the body buffered so far yet,
# or a pipelined request waits for the one before it), the client cannot be late; an expired
# deadline looks again this much later.
PAUSED_RECHECK_SECONDS = 1.0

_HEAD, _BODY = 1, 2


@dataclass(frozen=True, slots=True)
class Limits:
    header_line_bytes: int
    header_bytes: int
    headers: int
    header_timeout: float
    body_timeout: float
    connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            header_line_bytes=settings.max_header_line_bytes,
            header_bytes=settings.max_header_bytes,
            headers=settings.max_headers,
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            connections=settings.max_connections,
        )


@lru_cache(maxsize=1)
def _limits() -> Limits:
    # uvicorn builds the protocol by import string in every worker (workers > 1 are spawned
    # processes), so each worker reads the same PATRON_* settings `patron serve` read.
    return Limits.from_settings(get_settings())


def _answer_parts(code: Code, *headers: bytes) -> tuple[bytes, bytes]:
    body = orjson.dumps(error_document(ApiError(code)))
    head = b"".join(
        [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            *headers,
            b"connection: close\r\n\r\n",
        ]
    )
    return head, body


# Built once: these answers are written by the connection itself, before (or instead of) the app.
_ANSWERS: dict[Code, tuple[bytes, bytes]] = {
    Code.REQUEST_HEADER_FIELDS_TOO_LARGE: _answer_parts(Code.REQUEST_HEADER_FIELDS_TOO_LARGE),
    Code.REQUEST_TIMEOUT: _answer_parts(Code.REQUEST_TIMEOUT),
    Code.SERVICE_UNAVAILABLE: _answer_parts(Code.SERVICE_UNAVAILABLE, b"retry-after: 1\r\n"),
}


class _Refusal(Exception):
    """Raised inside a parser callback to stop parsing; httptools hands it back as the context
    of its HttpParserCallbackError."""

    def __init__(self, code: Code, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class PatronHttpProtocol(HttpToolsProtocol):
    """One client connection. A request head is counted as it arrives and refused with 431 as
    soon as it passes a limit; a head must arrive within the header timeout of its first byte
    and a body within the body timeout of its head, else 408; a connection beyond the cap is
    answered 503. Each refusal is answered in the API's envelope, and the connection closed."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._limits = limits = _limits()
        self._line_limit = limits.header_line_bytes
        self._headers_limit = limits.headers
        # Between requests and while a head arrives; False from a head's end to its message's.
        self._in_head = True
        # Bytes of the current head as received, before the parser sees them; exact unless the
        # head began inside the chunk that ended the request before it (pipelining), which
        # cannot be split: such a head is measured as parsed, when it is complete.
        self._head_bytes = 0
        self._head_counted = True
        self._head_started: float | None = None
        # uvicorn gives each request a new scope: one that is not the last complete request's
        # is a request begun.
        self._complete_scope: Any = None
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_phase = 0
        self._over_cap = False
        # Refused (answered or to be answered after the answer before) or handed over: the
        # parser sees nothing more.
        self._done = False
        self._deferred: tuple[Code, str] | None = None

    # --- the connection ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Decided once, on arrival: the connections already served keep being served, the
        # newcomer beyond the cap is answered 503 (uvicorn's limit_concurrency instead refuses
        # whichever request comes next, on any connection, in plain text).
        self._over_cap = len(self.connections) > self._limits.connections
        # Before its first byte a connection is as idle as one between requests, so uvicorn's
        # keep-alive timeout closes it; uvicorn alone would hold it for ever.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._done:
            return  # refused: what the client still sends is read and dropped, never parsed
        self._unset_keepalive_if_required()
        if self._in_head:
            if self._head_started is None:
                self._head_started = self.loop.time()
            if self.scope is self._complete_scope:
                self._head_counted = True
            if len(data) > self._limits.header_bytes - self._head_bytes:
                self._received_past_the_limit(data)
                return
            self._head_bytes += len(data)
        # A request that came whole in this chunk leaves nothing to time.
        if self._feed(data) and (
            self._head_started is not None or not self._in_head or self.scope is not self._complete_scope
        ):
            self._watch()

    def _received_past_the_limit(self, data: bytes) -> None:
        # Only what the limit allows reaches the parser; if the head has not ended within it,
        # the rest is never buffered.
        limit = self._limits.header_bytes
        room = limit - self._head_bytes
        self._head_bytes = limit
        if not self._feed(data[:room]):
            return
        if self._in_head and self._head_bytes == limit:
            self._refuse(Code.REQUEST_HEADER_FIELDS_TOO_LARGE, f"request head over {limit} bytes")
            return
        # The head ended within the limit (and a next one may have begun): the rest is read as
        # usual.
        self.data_received(data[room:])

    def _feed(self, data: bytes) -> bool:
        """Parse; False when the connection is answered, closed or handed over."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _Refusal):
                self._refuse(exc.__context__.code, str(exc.__context__))
            else:
                self._bad_request()
            return False
        except httptools.HttpParserError:
            self._bad_request()
            return False
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self._cancel_deadline()
                self._done = True
                self.handle_websocket_upgrade()
                return False
            self._unsupported_upgrade_warning()
        return not self._done and not self.transport.is_closing()

    def _bad_request(self) -> None:
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self._cancel_deadline()
        self.send_400_response(msg)

    # --- parser callbacks ----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) + 2 > self._line_limit or len(self.headers) >= self._headers_limit:
            self._refuse_header(len(name) + len(value) + 2)
        # uvicorn's on_header, inlined: it runs for every header of every request.
        name = name.lower()
        value = value.rstrip(b" \t")
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def _refuse_header(self, line: int) -> None:
        if line > self._line_limit:
            raise _Refusal(Code.REQUEST_HEADER_FIELDS_TOO_LARGE, f"a header line over {self._line_limit} bytes")
        raise _Refusal(Code.REQUEST_HEADER_FIELDS_TOO_LARGE, f"more than {self._headers_limit} headers")

    # The base class is called by name, not through super(), in these per-request callbacks:
    # measurably cheaper on a path every request takes.

    def on_headers_complete(self) -> None:
        if self._over_cap or not self._head_counted:
            self._check_head()
        self._in_head = False
        self._head_started = None
        if self._deadline is not None:
            self._cancel_deadline()
        HttpToolsProtocol.on_headers_complete(self)

    def _check_head(self) -> None:
        if self._over_cap:
            raise _Refusal(Code.SERVICE_UNAVAILABLE, f"over the cap of {self._limits.connections} connections")
        limit = self._limits.header_bytes
        # The request line's method and version are left out: a lower bound is enough.
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > limit:
            raise _Refusal(Code.REQUEST_HEADER_FIELDS_TOO_LARGE, f"request head over {limit} bytes")

    def on_message_complete(self) -> None:
        HttpToolsProtocol.on_message_complete(self)
        self._complete_scope = self.scope
        self._in_head = True
        self._head_bytes = 0
        self._head_counted = False
        if self._deadline is not None:
            self._cancel_deadline()

    def on_response_complete(self) -> None:
        if self._deferred is not None and not self.pipeline:
            self.server_state.total_requests += 1
            if not self.transport.is_closing():
                self._answer(*self._deferred)
            return
        super().on_response_complete()
        # A next request already under way is timed by its own deadline, not as idle.
        if self._deadline is not None:
            self._unset_keepalive_if_required()

    # --- deadlines -------------------------------------------------------------------------

    def _watch(self) -> None:
        """After a chunk: arm the deadline of whatever is still incomplete. A request that came
        whole in one chunk never arms a timer."""
        if self._in_head:
            if self._head_started is None:
                # A request pipelined behind the last one began inside the chunk that ended it.
                self._head_started = self.loop.time()
            if self._deadline_phase != _HEAD:
                self._arm(_HEAD, self._head_started + self._limits.header_timeout)
        elif self._deadline_phase != _BODY:
            # The whole body within a time, not a longest gap between its bytes: a gap limit
            # lets a client that sends a byte just inside every gap hold the connection (and
            # a database-bound request) for as long as it likes; a deadline bounds what any
            # one request can cost. 30 s for PATRON_MAX_BODY_BYTES (1 MiB) asks ~35 KB/s.
            self._arm(_BODY, self.loop.time() + self._limits.body_timeout)

    def _arm(self, phase: int, at: float) -> None:
        self._cancel_deadline()
        self._deadline_phase = phase
        self._deadline = self.loop.call_at(at, self._expired)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._deadline_phase = 0

    def _expired(self) -> None:
        phase = self._deadline_phase
        self._deadline, self._deadline_phase = None, 0
        if self._done or self.transport.is_closing():
            return
        if self.flow.read_paused:
            self._arm(phase, self.loop.time() + PAUSED_RECHECK_SECONDS)
            return
        limit = self._limits.header_timeout if phase == _HEAD else self._limits.body_timeout
        what = "request head" if phase == _HEAD else "request body"
        self._refuse(Code.REQUEST_TIMEOUT, f"{what} not complete within {limit:g} s")

    # --- refusals --------------------------------------------------------------------------

    def _refuse(self, code: Code, reason: str) -> None:
        self._cancel_deadline()
        cycle = self.cycle
        if self._in_head:
            if cycle is not None and not cycle.response_complete:
                # The answer to the request before is still being made: this one is answered
                # after it, in order; meanwhile nothing more is read.
                self._deferred = (code, reason)
                self._done = True
                self.flow.pause_reading()
                return
        elif cycle is not None:
            if cycle.response_started or self.pipeline:
                # This request's answer has begun, or the answer to one pipelined before it is
                # still owed: a 408 cannot come first, so the connection is only closed.
                log.warning("closed %s: %s, with an answer already under way", self._peer(), reason)
                self._done = True
                self.transport.close()
                return
            # The app, if it is still reading, sees a client that has gone and writes nothing.
            cycle.disconnected = True
            cycle.message_event.set()
        self._answer(code, reason)

    def _answer(self, code: Code, reason: str) -> None:
        self._done = True
        self._cancel_deadline()
        self._unset_keepalive_if_required()
        request_id = secrets.token_hex(16).encode()
        log.warning("refused %s with %d (%s): %s", self._peer(), int(code), request_id.decode(), reason)
        head, body = _ANSWERS[code]
        content = [STATUS_LINE[int(code)]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend([REQUEST_ID_HEADER, b": ", request_id, b"\r\n", head, body])
        self.transport.write(b"".join(content))
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._deadline = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _peer(self) -> str:
        return "%s:%d" % self.client if self.client else "a client"
