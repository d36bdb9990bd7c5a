"""The middleware that times, counts and logs each request, and answers GET /metrics."""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from patron.codes import Code, request_message
from patron.customers import hints
from patron.observability.logs import LineWriter, RequestLog
from patron.observability.masking import mask_text
from patron.observability.metrics import MULTIPROC_ENV, exposition, metrics
from patron.observability.record import record_of
from patron.settings import Settings

METRICS_PATH = "/metrics"
LOCAL_CLIENTS = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})
# Label of requests that matched no route: their paths are the caller's text and unbounded.
UNMATCHED = "unmatched"
# A caller's text (a 404 path, a key) is cut to this before it is logged.
MAX_TEXT = 200


class Observer:
    """What the middleware needs of a running app: its request log and its metrics."""

    def __init__(self, settings: Settings, sink: Callable[[bytes], Any] | None = None) -> None:
        self.log = RequestLog(settings, sink)
        self.metrics = metrics()
        token = settings.metrics_token.get_secret_value() if settings.metrics_token else ""
        self._token = token.encode() if token else None
        self._pool_sizes: list[int] = []

    # What the store tells (store.db.StoreObserver): the bootstrap hands this observer to the
    # engine, the driver's pool and the store as it opens them.

    def pool_opened(self, size: int) -> None:
        """A pool that may hold `size` connections: each worker adds its own, and the multiprocess
        scrape adds them up."""
        self.metrics.pool_size.inc(size)
        self._pool_sizes.append(size)

    def connections_in_use(self, change: int) -> None:
        self.metrics.pool_in_use.inc(change)

    def statement_shared(self, statement: str, requests: int) -> None:
        self.metrics.shared_statement(statement, requests)

    def transaction_committed(self, units: int) -> None:
        self.metrics.units_per_transaction.observe(units)

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
        record = record_of(scope)
        items = record.items
        metrics = self.metrics
        metrics.request(route_path, status, seconds)
        failed = 0
        if items:
            # Counted by code first: in multiprocess mode each increment is a locked file write.
            codes: dict[Code, int] = {}
            warnings: dict[Code, int] = {}
            for outcome in items:
                codes[outcome.code] = codes.get(outcome.code, 0) + 1
                for warning in outcome.warnings:
                    warnings[warning] = warnings.get(warning, 0) + 1
            for code, count in codes.items():
                metrics.item(route_path, str(int(code)), count)
            for warning, count in warnings.items():
                metrics.warning(str(int(warning)), count)
            failed = len(items) - codes.get(Code.ITEM_OK, 0)

        failing = error is not None or status == Code.SERVICE_UNAVAILABLE
        level = logging.ERROR if failing else logging.INFO
        log = self.log
        if level < log.level:
            return
        path = scope["path"]
        if route is None:
            path = path[:MAX_TEXT] if log.pii else mask_text(path[:MAX_TEXT])
        line: dict[str, Any] = {
            "ts": log.timestamp(),
            "level": "error" if failing else "info",
            "rid": record.request_id or None,
            "method": scope["method"],
            "path": path,
            "status": status,
            "code": status if record.code is None else record.code,
            "ms": round(seconds * 1000, 2),
        }
        principal = record.principal
        if principal is not None:
            line["org"] = principal.org_id
            line["till"] = principal.till_code
            if principal.api_client_key is not None:
                line["client"] = principal.api_client_key
        elif record.api_client is not None:
            line["client"] = record.api_client[:MAX_TEXT]
        if items is not None:
            line["items"] = len(items)
            line["failed"] = failed
            line["items_detail"] = log.items(items)
        if error is not None:
            # The class only: an exception's text may quote the request.
            line["error"] = type(error).__name__
        if status == Code.AUTHENTICATION_FAILED and record.hint:
            line["hint"] = record.hint
        noted = hints.current()
        if noted:
            # Why a value was refused or ignored (customers.why): the operator's, never the wire's.
            line["hints"] = noted
        log.write(line)


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

        with hints.noting():
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
