"""The member-care console at /console (member-care.md §4): its pages (console.pages, one module
each: sign-in, the overview, customer search, a customer's page, the review queue, the Events
page), mounted together with their static files; an unknown address answers the console's own 404."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from patron.console.guards import signed_in
from patron.console.pages import customer, customers, events, identity_requests, overview, signin
from patron.console.web import NOT_FOUND, error_page

ROUTES: list[BaseRoute] = [
    *overview.ROUTES,
    *signin.ROUTES,
    *customers.ROUTES,
    *customer.ROUTES,
    *identity_requests.ROUTES,
    *events.ROUTES,
    Mount("/static", app=StaticFiles(packages=[("patron.console", "static")]), name="console-static"),
]


async def not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = exc.status_code if exc.status_code in (404, 405) else 400
    signed = await signed_in(request) if status == 404 else None
    return error_page(request, signed, status, NOT_FOUND if status == 404 else "This page does not take that request.")


class ConsoleApp:
    """The console's own routes, mounted at /console: it keeps the outer app, whose state holds
    the services, on the scope (a mounted app's handlers see only themselves as request.app)."""

    def __init__(self) -> None:
        self.app = Starlette(routes=ROUTES, exception_handlers={HTTPException: not_found})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("patron.app", scope.get("app"))
        await self.app(scope, receive, send)


def console_mount() -> Mount:
    return Mount("/console", app=ConsoleApp(), name="console")
