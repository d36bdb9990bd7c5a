"""Signing in (a throttled password check, a new session) and signing out."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from patron.api.context import utc_now
from patron.codes import Code
from patron.console import sessions
from patron.console.guards import action, signed_in
from patron.console.sessions import Signed
from patron.console.web import Refused, error_page, read_form, redirect, render, services
from patron.customers.ports import ConsoleStorage
from patron.errors import ApiError

log = logging.getLogger("patron.console")


@dataclass(frozen=True)
class LoginPage:
    token: str
    next_page: str
    error: str | None
    login: str


async def login_page(request: Request) -> Response:
    signed = await signed_in(request)
    next_page = sessions.safe_next(request.query_params.get("next"))
    if signed is not None:
        return redirect(next_page)
    return _login_form(request, next_page)


def _login_form(
    request: Request, next_page: str, error: str | None = None, status: int = 200, login: str = "",
    headers: dict[str, str] | None = None,
) -> Response:
    token = request.cookies.get(sessions.LOGIN_COOKIE) or secrets.token_urlsafe(32)
    response = render(request, "login.html", None, LoginPage(token, next_page, error, login), status=status, headers=headers)
    sessions.set_cookie(response, request, services(request).settings, sessions.LOGIN_COOKIE, token, 3600)
    return response


async def login(request: Request) -> Response:
    found = services(request)
    try:
        form = await read_form(request)
    except Refused as refused:
        return error_page(request, None, refused.status, refused.message)
    next_page = sessions.safe_next(form.get("next"))
    if not sessions.login_token_ok(request, form.get("csrf_token")):
        return _login_form(
            request, next_page, "The sign-in form had expired. Please sign in again.", 403, form.get("login", "")
        )
    name, password = form.get("login", "").strip(), form.get("password", "")
    try:
        user = await found.auth.verify_console_user(name, password, request)
        org = await found.orgs.get(user.org_id)
        if org is None:
            raise ApiError(Code.AUTHENTICATION_FAILED)
    except ApiError as refused:
        if refused.code == Code.TOO_MANY_REQUESTS:
            wait = refused.headers.get("Retry-After", "60")
            message = f"Too many failed sign-ins. Please wait {wait} seconds before trying again."
            return _login_form(request, next_page, message, 429, name, {"Retry-After": wait})
        if refused.code == Code.SERVICE_UNAVAILABLE:
            message = "The console is busy. Please try again in a moment."
            return _login_form(request, next_page, message, 503, name, dict(refused.headers))
        # One message for an unknown login and a wrong password, as both cost the same slow hash.
        return _login_form(request, next_page, "The login or password is not right.", 401, name)
    storage: ConsoleStorage = found.storage
    settings = found.settings
    secret = await sessions.start(storage, user.login, user.org_id, user.session_generation, settings, utc_now())
    log.info("console sign-in of %s (org %s)", user.login, user.org_id)
    response = redirect(next_page)
    sessions.set_cookie(response, request, settings, sessions.SESSION_COOKIE, secret, settings.console_session_seconds)
    sessions.clear_cookie(response, request, settings, sessions.LOGIN_COOKIE)
    return response


@action()
async def logout(request: Request, signed: Signed, form: dict[str, str]) -> Response:
    storage: ConsoleStorage = services(request).storage
    async with storage.unit_of_work() as unit:
        await unit.console.end_session(signed.session_id, utc_now())
    response = redirect("/console/login")
    sessions.clear_cookie(response, request, services(request).settings, sessions.SESSION_COOKIE)
    return response


ROUTES = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
