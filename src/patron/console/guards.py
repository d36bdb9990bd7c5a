"""Who may open a console page, declared once per page: `@page(requires=...)` for what it shows,
`@action(requires=...)` for a form it takes (CSRF first); anyone not signed in goes to sign in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from patron.api.context import utc_now
from patron.console import sessions
from patron.console.sessions import Access, Requires, Signed
from patron.console.web import FORBIDDEN, Refused, error_page, read_form, redirect, services
from patron.customers import identity_review
from patron.customers.ports import ConsoleStorage

Endpoint = Callable[[Request], Awaitable[Response]]
PageHandler = Callable[[Request, Signed], Awaitable[Response]]
ActionHandler = Callable[[Request, Signed, dict[str, str]], Awaitable[Response]]

CSRF_REFUSED = (
    "The form was not sent from this console (its security token is missing or wrong). Reload the page and try again."
)


async def signed_in(request: Request) -> Signed | None:
    """The request's signed-in user: a live session's, of an org still served."""
    secret = request.cookies.get(sessions.SESSION_COOKIE)
    if not secret or len(secret) > 200:
        return None
    found = services(request)
    storage: ConsoleStorage = found.storage
    session_id = sessions.session_id_of(secret)
    async with storage.unit_of_work(readonly=True) as unit:
        session = await unit.console.live_session(session_id, utc_now())
    if session is None:
        return None
    org = await found.orgs.get(session.org_id)
    if org is None:
        return None
    access = Access.of(org.access_groups.get(session.access_group))
    return Signed(session_id, session.login, session.name, org, access, session.csrf_token)


def to_sign_in(request: Request) -> RedirectResponse:
    """The sign-in page, with where the user was going: for a form, the page it was on."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = sessions.page_of_form(request.url.path)
    response = redirect("/console/login?" + urlencode({"next": sessions.safe_next(target)}))
    if request.cookies.get(sessions.SESSION_COOKIE):
        sessions.clear_cookie(response, request, services(request).settings, sessions.SESSION_COOKIE)
    return response


def page(*, requires: Requires | None = None) -> Callable[[PageHandler], Endpoint]:
    """A page of a signed-in user whose access group allows `requires` (else 403): anyone else is
    sent to the sign-in page (303, with a safe next)."""

    def guarded(handler: PageHandler) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            signed = await signed_in(request)
            if signed is None:
                return to_sign_in(request)
            try:
                if not signed.access.allows(requires):
                    raise Refused(403, FORBIDDEN)
                return await handler(request, signed)
            except Refused as refused:
                return error_page(request, signed, refused.status, refused.message)

        return endpoint

    return guarded


def action(*, requires: Requires | None = None) -> Callable[[ActionHandler], Endpoint]:
    """A form's POST of a signed-in user: the form must carry the session's CSRF token (else 403),
    and the user's access group allow `requires` (else 403)."""

    def guarded(handler: ActionHandler) -> Endpoint:
        async def checked(request: Request, signed: Signed) -> Response:
            form = await read_form(request)
            if not signed.csrf_ok(form.get("csrf_token")):
                raise Refused(403, CSRF_REFUSED)
            if not signed.access.allows(requires):
                raise Refused(403, FORBIDDEN)
            return await handler(request, signed, form)

        return page()(checked)

    return guarded


async def pending_count(request: Request, signed: Signed) -> int | None:
    """The review queue's count every page's navigation shows, to those who may open the queue."""
    if not signed.access.read:
        return None
    return await identity_review.pending_count(signed.org.org_id, services(request).storage)
