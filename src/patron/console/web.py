"""What every console page shares: the services it runs on, its templates, rendering a page's typed
data with the security headers, redirects with a result message, reading a form, and the refusal a
page answers with its error page."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from patron.api.context import read_body, request_id
from patron.codes import Code
from patron.console import filters, sessions
from patron.console.overview import OverviewCache
from patron.console.sessions import Flash, Level, Signed
from patron.errors import ApiError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from patron.bootstrap import Services

# A console form is a few fields; a body past this is no form of ours.
MAX_FORM_BYTES = 64 * 1024
# Served with every console page: nothing but Patron's own files, never framed, never cached.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

NOT_FOUND = "There is no such page, or no such customer in your organisation."
FORM_TOO_LARGE = f"The form is larger than {MAX_FORM_BYTES // 1024} KiB, more than any form of this console sends."
FORBIDDEN = "Your access group does not allow this."

_templates = Environment(
    loader=PackageLoader("patron.console", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.filters.update(filters.FILTERS)


class Refused(Exception):
    """A page that cannot be shown: answered with the error page and this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ErrorPage:
    message: str


@dataclass(frozen=True)
class Paging:
    """One page of a list: where it starts and ends (counted from 1), of how many, and its neighbours."""

    first: int
    last: int
    count: int
    previous: str | None
    next: str | None


def paging(address: Callable[[int], str], start: int, shown: int, count: int, size: int) -> Paging:
    """The page of `shown` rows from `start` of `count`, `size` a page; `address(start)` links another."""
    return Paging(
        first=start + 1 if shown else 0,
        last=start + shown,
        count=count,
        previous=address(max(0, start - size)) if start > 0 else None,
        next=address(start + size) if start + size < count else None,
    )


def at(path: str, first: int) -> str:
    """A list's page starting at `first`: the path alone for the first."""
    return path + (f"?{urlencode({'start': first})}" if first else "")


def start_of(request: Request) -> int:
    """Where a list's page starts (its `start` parameter); 0 for anything but a few digits."""
    raw = request.query_params.get("start", "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else 0


def services(request: Request) -> Services:
    # The console is mounted: the outer app, whose state holds the services, is on the scope.
    found: Services = request.scope["patron.app"].state.services
    return found


def overviews(request: Request) -> OverviewCache:
    outer = request.scope["patron.app"]
    cache: OverviewCache | None = getattr(outer.state, "console_overviews", None)
    if cache is None:
        cache = outer.state.console_overviews = OverviewCache(services(request).settings.console_overview_cache_seconds)
    return cache


def render(
    request: Request,
    template: str,
    signed: Signed | None,
    data: DataclassInstance,
    *,
    status: int = 200,
    pending: int | None = None,
    headers: dict[str, str] | None = None,
    message: Flash | None = None,
) -> HTMLResponse:
    """The page's template filled with its data's fields, and what every page shows: who is signed
    in, the result message once (`message`, or the one a redirect left), and `pending` (the review
    queue's count, for those who may see it)."""
    settings = services(request).settings
    flash = message or (sessions.flash_of(request, settings) if sessions.FLASH_COOKIE in request.cookies else None)
    context: dict[str, Any] = {field.name: getattr(data, field.name) for field in dataclasses.fields(data)}
    html = _templates.get_template(template).render(
        request=request, signed=signed, flash=flash, path=request.url.path, status=status, pending=pending, **context
    )
    response = HTMLResponse(html, status, {**SECURITY_HEADERS, **(headers or {})})
    if sessions.FLASH_COOKIE in request.cookies:
        sessions.clear_cookie(response, request, settings, sessions.FLASH_COOKIE)
    return response


def error_page(request: Request, signed: Signed | None, status: int, message: str) -> HTMLResponse:
    return render(request, "error.html", signed, ErrorPage(message), status=status)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, 303, headers={"Cache-Control": "no-store"})


def flash_to(request: Request, url: str, message: str, level: Level = "ok") -> RedirectResponse:
    """A redirect that shows `message` once on the page it leads to (an HttpOnly cookie, signed):
    green when done (`ok`), amber when done but a value was not saved (`warn`), red when refused."""
    response = redirect(url)
    settings = services(request).settings
    sessions.set_cookie(
        response, request, settings, sessions.FLASH_COOKIE, sessions.flash_cookie(message, request, settings, level), 60
    )
    return response


async def read_form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body: the last value of each name. A body past
    MAX_FORM_BYTES is refused (413, on the console's own page) as soon as it passes it."""
    try:
        body = await read_body(request, MAX_FORM_BYTES)
    except ApiError as refused:
        if refused.code != Code.BODY_TOO_LARGE:
            raise
        raise Refused(413, FORM_TOO_LARGE) from None
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refused(400, "The form could not be read.") from exc


def sentence(text: str) -> str:
    """A refusal's phrase as the console says it: a capital, a full stop."""
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
