"""The ASGI application: routes, the request-id middleware and the one map from errors to answers."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from patron import bootstrap
from patron.api.codec import encode, error_document, response_format
from patron.api.context import REQUEST_ID_HEADER, services
from patron.api.customers import add_customer, get_customer, update_customer, update_identity
from patron.api.events import read_events
from patron.api.gateway import gateway_response, generate_token, list_audits
from patron.api.home import home_routes
from patron.api.openapi import DOCS_ASSETS, SWAGGER_UI_FILES, docs_page, openapi_document
from patron.api.search import search_customers
from patron.codes import Code, request_message
from patron.console.app import console_mount
from patron.errors import ApiError
from patron.loop import collect_rarely
from patron.observability import ObservabilityMiddleware, Observer, configure_logging
from patron.observability.record import begin_record, record_of
from patron.settings import Settings, get_settings
from patron.store.db import DatabaseUnavailable, transaction

log = logging.getLogger("patron.api")

GATEWAY_PREFIXES = ("/v3/", "/api_gateway/")


class RequestIdMiddleware:
    """Gives every request an id, answered in X-Cap-Requestid and kept in the audit log."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(16)
        begin_record(scope, request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, request_id.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)


async def health(request: Request) -> Response:
    return gateway_response({"status": "up"})


async def ready(request: Request) -> Response:
    try:
        async with transaction(services(request).engine, readonly=True) as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure to reach the database means "not ready"
        log.warning("readiness check failed", exc_info=True)
        return gateway_response({"status": "database unreachable"}, 503)
    return gateway_response({"status": "ready"})


def _error_response(request: Request, error: ApiError) -> Response:
    if request.scope["path"].startswith(GATEWAY_PREFIXES):
        response = gateway_response(
            None, int(error.code), [{"code": int(error.code), "message": error.detail or request_message(error.code)}]
        )
        response.headers.update(error.headers)
        return response
    return encode(error_document(error), response_format(request), int(error.code), error.headers)


async def on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _error_response(request, exc)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: Code.NOT_FOUND, 405: Code.METHOD_NOT_ALLOWED}.get(exc.status_code, Code.INVALID_INPUT)
    return _error_response(request, ApiError(code))


async def on_database_unavailable(request: Request, exc: Exception) -> Response:
    log.error("database unavailable: %s", exc)
    return _error_response(request, ApiError(Code.SERVICE_UNAVAILABLE, headers={"Retry-After": "1"}))


async def on_client_disconnect(request: Request, exc: Exception) -> Response:
    # The caller hung up before its body arrived: nothing was read, so nothing was written, and
    # no one is left to answer. Not an error of Patron's: logged as 499, without a traceback.
    return Response(status_code=int(Code.CLIENT_CLOSED_REQUEST))


async def on_unexpected(request: Request, exc: Exception) -> Response:
    # Logged with its traceback by the server; the caller sees the envelope, never the traceback.
    response = _error_response(request, ApiError(Code.ALL_FAILED, detail="internal error"))
    # This answer is made outside the request-id middleware, so it carries the id itself.
    request_id = record_of(request.scope).request_id
    if request_id:
        response.headers[REQUEST_ID_HEADER.decode()] = request_id
    return response


def _customer_routes() -> list[Route]:
    routes = []
    for suffix in ("", ".json", ".xml"):
        routes.append(Route(f"/v1.1/customer/add{suffix}", add_customer, methods=["POST"]))
        routes.append(Route(f"/v1.1/customer/get{suffix}", get_customer, methods=["GET"]))
        routes.append(Route(f"/v1.1/customer/search{suffix}", search_customers, methods=["GET"]))
        routes.append(Route(f"/v1.1/customer/update{suffix}", update_customer, methods=["POST"]))
        routes.append(Route(f"/v1.1/customer/update_identity{suffix}", update_identity, methods=["POST"]))
    return routes


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    configure_logging(settings)
    observer = Observer(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not settings.secret_key:
            log.warning(
                "PATRON_SECRET_KEY is not set: OAuth is off (token generation answers 501 and tokens are"
                " refused); tills' Basic auth works. Set it (32 characters or more) to serve API clients."
            )
        collect_rarely()
        async with bootstrap.services(settings, observer) as services:
            app.state.services = services
            yield
            observer.close()

    routes = [
        *_customer_routes(),
        Route("/v1.1/events", read_events, methods=["GET"]),
        Route("/v3/oauth/token/generate", generate_token, methods=["POST"]),
        Route("/api_gateway/v2/audits", list_audits, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/openapi.json", openapi_document, methods=["GET"]),
        Route("/docs", docs_page, methods=["GET"]),
        *home_routes(),
        Mount(DOCS_ASSETS, app=StaticFiles(directory=SWAGGER_UI_FILES), name="docs-assets"),
        console_mount(),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            ApiError: on_api_error,
            HTTPException: on_http_error,
            DatabaseUnavailable: on_database_unavailable,
            ClientDisconnect: on_client_disconnect,
            Exception: on_unexpected,
        },
    )
    app.state.observer = observer
    # Added first, so it runs inside RequestIdMiddleware: the id is there when it starts, and
    # the /metrics answers it makes carry the id too.
    app.add_middleware(ObservabilityMiddleware, observer=observer)
    app.add_middleware(RequestIdMiddleware)
    return app
