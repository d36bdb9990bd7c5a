"""A real `patron serve` against clients that send too much, too slowly, or too many at once.

Each test talks raw HTTP/1.1 over loopback sockets to a server started here on SQLite, with
small limits and a one-second timeout so the run stays short.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import orjson
import pytest

from patron.codes import MESSAGES, Code
from support.processes import Server

LINE_LIMIT, HEAD_LIMIT, HEADER_COUNT_LIMIT = 4096, 16384, 20
TIMEOUT = 1.0  # header and body timeouts of the server under test, in seconds
CAP = 3
# uvicorn's keep-alive timeout (its default), which governs a connection idle between requests.
KEEP_ALIVE = 5.0


SERVER_SETTINGS = {
    "PATRON_MAX_HEADER_LINE_BYTES": str(LINE_LIMIT),
    "PATRON_MAX_HEADER_BYTES": str(HEAD_LIMIT),
    "PATRON_MAX_HEADERS": str(HEADER_COUNT_LIMIT),
    "PATRON_HEADER_TIMEOUT_SECONDS": str(TIMEOUT),
    "PATRON_BODY_TIMEOUT_SECONDS": str(TIMEOUT),
}


@pytest.fixture(scope="module")
def capped(serve: Callable[..., Server]) -> Server:
    """A server with the same limits that holds at most CAP connections."""
    return serve("capped", **SERVER_SETTINGS, PATRON_MAX_CONNECTIONS=str(CAP))


# --- reading answers ---------------------------------------------------------------------------


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection (bounded by the socket's timeout)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def document(self) -> dict:
        return orjson.loads(self.body)


def read_answer(sock: socket.socket, buffer: bytearray | None = None) -> Answer:
    """One answer with a Content-Length body; what follows it stays in `buffer`."""
    buffer = bytearray() if buffer is None else buffer
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before an answer: {bytes(buffer)!r}"
        buffer += chunk
    head, _, _ = bytes(buffer).partition(b"\r\n\r\n")
    del buffer[: len(head) + 4]
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    size = int(headers["content-length"])
    while len(buffer) < size:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside an answer's body"
        buffer += chunk
    body = bytes(buffer[:size])
    del buffer[:size]
    return Answer(int(status_line.split()[1]), headers, body)


def assert_refused(sock: socket.socket, code: Code) -> Answer:
    """The envelope with `code`, then the connection closed."""
    answer = read_answer(sock)
    assert answer.status == int(code)
    assert answer.document == {"response": {"status": {"success": "false", "code": int(code), "message": MESSAGES[code]}}}
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["connection"] == "close"
    assert answer.headers["x-cap-requestid"]
    assert read_all(sock) == b""
    return answer


def request(*headers: str, path: str = "/health", method: str = "GET", end: bool = True) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: patron.test", *headers]
    return ("\r\n".join(lines) + "\r\n" + ("\r\n" if end else "")).encode()


def assert_healthy(sock: socket.socket) -> None:
    sock.sendall(request())
    answer = read_answer(sock)
    assert (answer.status, answer.document["data"]) == (200, {"status": "up"})


# --- sizes -------------------------------------------------------------------------------------


def test_a_header_line_over_the_limit_is_431(server):
    with server.connect() as sock:
        sock.sendall(request("X-Long: " + "a" * LINE_LIMIT))
        assert_refused(sock, Code.REQUEST_HEADER_FIELDS_TOO_LARGE)


def test_more_headers_than_the_limit_is_431(server):
    # Host is one of them.
    with server.connect() as sock:
        sock.sendall(request(*(f"X-Header-{n}: {n}" for n in range(HEADER_COUNT_LIMIT))))
        assert_refused(sock, Code.REQUEST_HEADER_FIELDS_TOO_LARGE)


def test_headers_over_the_total_limit_are_431_without_reading_them_all(server):
    line = b"X-Filler: " + b"f" * (LINE_LIMIT // 2) + b"\r\n"  # each line within the line limit
    first = request(end=False) + line * (1024 * 1024 // len(line))  # 1 MB of a head that goes on
    rest = line * (7 * 1024 * 1024 // len(line))
    before = server.rss_kib()
    with server.connect() as sock:
        sock.sendall(first)
        # Answered while the head has not ended: the server did not wait for the rest of it.
        answer = read_answer(sock)
        assert answer.status == 431 and answer.document["response"]["status"]["code"] == 431
        try:
            sock.sendall(rest + b"\r\n")
        except OSError:
            pass  # the server may close before all 8 MB are in: it owes them nothing
        highest = max(server.rss_kib() for _ in range(5))
        assert read_all(sock) == b""
    assert highest - before < 4 * 1024, f"the server grew by {highest - before} KiB while 8 MB of head came"


def test_headers_within_the_limits_are_served(server):
    near_limit = "X-Long: " + "a" * (LINE_LIMIT - 100)
    others = [f"X-Header-{n}: {n}" for n in range(HEADER_COUNT_LIMIT - 3)]
    with server.connect() as sock:
        sock.sendall(request(near_limit, *others))
        answer = read_answer(sock)
        assert (answer.status, answer.document["data"]) == (200, {"status": "up"})
        assert_healthy(sock)  # and the connection is kept for the next request


def test_a_pipelined_request_over_the_limit_is_answered_431_after_the_one_before(server):
    # Lines each within the line limit, together over the head limit; sent in one write, the
    # second head most likely begins inside the chunk that ends the first request.
    lines = [f"X-Filler-{n}: " + "f" * (LINE_LIMIT - 100) for n in range(HEAD_LIMIT // (LINE_LIMIT - 100) + 1)]
    with server.connect() as sock:
        sock.sendall(request() + request(*lines))
        buffer = bytearray()
        first = read_answer(sock, buffer)
        assert (first.status, first.document["data"]) == (200, {"status": "up"})
        second = read_answer(sock, buffer)
        assert second.status == 431 and second.headers["connection"] == "close"


# --- slow clients ------------------------------------------------------------------------------


def test_a_client_that_never_finishes_its_headers_is_timed_out_with_408(server):
    with server.connect() as sock:
        started = time.monotonic()
        sock.sendall(request(end=False))
        assert_refused(sock, Code.REQUEST_TIMEOUT)
        assert time.monotonic() - started >= TIMEOUT * 0.9


def test_a_client_that_trickles_its_headers_is_timed_out_too(server):
    # A deadline for the whole head, not a limit on the gap between its bytes.
    with server.connect() as sock:
        sock.sendall(request(end=False))
        for _ in range(int(3 * TIMEOUT / 0.2)):
            try:
                sock.sendall(b"X")
            except OSError:
                break
            time.sleep(0.2)
        assert_refused(sock, Code.REQUEST_TIMEOUT)


def test_a_client_that_stops_sending_its_body_is_timed_out(server):
    # The token endpoint reads its whole body before anything else.
    body = b'{"key": "k", "secret": "s"}'
    with server.connect() as sock:
        sock.sendall(
            request("Content-Type: application/json", f"Content-Length: {len(body)}", path="/v3/oauth/token/generate", method="POST")
            + body[:5]
        )
        assert_refused(sock, Code.REQUEST_TIMEOUT)


def test_the_next_request_on_a_keep_alive_connection_has_its_own_header_timeout(server):
    with server.connect() as sock:
        assert_healthy(sock)
        # Idle between requests for longer than the header timeout: keep-alive's time, not its.
        time.sleep(TIMEOUT * 1.5)
        assert_healthy(sock)
        sock.sendall(request(end=False))
        assert_refused(sock, Code.REQUEST_TIMEOUT)


def test_a_connection_that_never_sends_a_byte_is_closed_after_the_keep_alive_timeout(server):
    with server.connect() as sock:
        assert read_all(sock) == b""  # closed without an answer, well within WAIT


def test_a_slow_client_does_not_hold_up_others(server):
    slow = [server.connect() for _ in range(8)]
    try:
        for n, sock in enumerate(slow):
            if n % 2:
                sock.sendall(request(end=False))
            else:
                sock.sendall(request("Content-Length: 100", path="/v3/oauth/token/generate", method="POST") + b"{")
        for _ in range(3):
            with server.connect() as sock:
                assert_healthy(sock)
        for sock in slow:
            assert_refused(sock, Code.REQUEST_TIMEOUT)
    finally:
        for sock in slow:
            sock.close()


# --- connections -------------------------------------------------------------------------------


def test_connections_over_the_cap_are_refused_and_others_still_served(capped):
    held = [capped.connect() for _ in range(CAP)]
    try:
        for sock in held:
            assert_healthy(sock)  # each accepted and counted
        with capped.connect() as extra:
            extra.sendall(request())
            answer = assert_refused(extra, Code.SERVICE_UNAVAILABLE)
            assert answer.headers["retry-after"] == "1"
        for sock in held:
            assert_healthy(sock)  # the connections already there are still served
        held.pop().close()
        # Once the server has seen that close, a newcomer has a place again.
        for _ in range(50):
            with capped.connect() as newcomer:
                newcomer.sendall(request())
                if read_answer(newcomer).status == 200:
                    break
            time.sleep(0.1)
        else:
            raise AssertionError("a freed place was never given to a new connection")
    finally:
        for sock in held:
            sock.close()
