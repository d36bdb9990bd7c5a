"""The member-care console's pages at /console (member-care.md §4): sign-in and sign-out, the
overview, customer search, a customer's page with its actions, the identity review queue, and the
event sinks with their dead letters and replays (events.md §4)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from patron import limits
from patron.admission import SearchesBusy
from patron.api.context import read_body, request_id, utc_now
from patron.codes import HOLDS_NUL, Code
from patron.console import charts, sessions
from patron.console.overview import DAYS, WARNING_DAYS, OverviewCache, warning_name
from patron.console.sessions import Access, Signed
from patron.errors import ApiError
from patron.events.operations import (
    RELAY_SEEN,
    RelaySeen,
    ReplayRecord,
    ReplayRefused,
    Selection,
    SinkState,
    age,
    declared_sinks,
    replay_reason,
    requested_by,
    selection,
)
from patron.events.operators import replay
from patron.registration import identity, identity_changes, lookup, search, searching, service
from patron.registration.audit import audit_trail
from patron.registration.model import IDENTIFIER_LABELS, IDENTIFIERS, Caller
from patron.store.console import ConsoleStore
from patron.store.db import transaction

log = logging.getLogger("patron.console")

# A console form is a few fields; a body past this is no form of ours.
MAX_FORM_BYTES = 64 * 1024
SEARCH_ROWS = "20"
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

_templates = Environment(
    loader=PackageLoader("patron.console", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


class Refused(Exception):
    """A page that cannot be shown: answered with the error page and this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


NOT_FOUND = "There is no such page, or no such customer in your organisation."
FORM_TOO_LARGE = f"The form is larger than {MAX_FORM_BYTES // 1024} KiB, more than any form of this console sends."
FORBIDDEN = "Your access group does not allow this."


def _services(request: Request) -> Any:
    return request.scope["patron.app"].state.services


def _overviews(request: Request) -> OverviewCache:
    outer = request.scope["patron.app"]
    cache = getattr(outer.state, "console_overviews", None)
    if cache is None:
        cache = outer.state.console_overviews = OverviewCache(_services(request).settings.console_overview_cache_seconds)
    return cache


def local(moment: datetime | None, org: Any) -> str:
    """A stored time (naive UTC) in the org's timezone, to the minute."""
    if moment is None:
        return ""
    return moment.replace(tzinfo=timezone.utc).astimezone(org.tz).strftime("%Y-%m-%d %H:%M")


_templates.filters["local"] = local
_templates.filters["age"] = age

# How the audit timeline names each kind of record.
EVENTS = {
    "CREATE": "Registered",
    "UPDATE": "Updated",
    "ID_REQUESTED": "Identity change requested",
    "ID_APPROVED": "Identity change approved",
    "ID_REJECTED": "Identity change rejected",
    "ID_SUPERSEDED": "Identity change superseded",
}
_templates.filters["event"] = lambda name: EVENTS.get(name, name)
_templates.filters["warning"] = warning_name


def shown(value: Any) -> str:
    """An audit change's value as a person reads it: named fields as name: value, lists as JSON."""
    if value is None or value == "":
        return "—"
    if isinstance(value, dict):
        return ", ".join(f"{name}: {shown(item)}" for name, item in value.items()) or "—"
    if isinstance(value, list):
        return orjson.dumps(value).decode() if value else "—"
    return str(value)


_templates.filters["shown"] = shown


def asker(request: identity.IdentityRequest) -> str:
    """Who asked for an identity change, as the queue shows it: the console user, or the till or
    API client with the user-context entity id it sent, and the console users tied to it."""
    if request.console_user:
        return request.console_user
    who = f"API client {request.api_client_key} at till {request.till_code}" if request.api_client_key else (
        f"till {request.till_code or '—'}"
    )
    if request.context_entity_id:
        who += f", user-context entity id {request.context_entity_id}"
    return who + (f" ({', '.join(request.users)})" if request.users else "")


_templates.filters["asker"] = asker


def own_requests(signed: Signed, requests: list[identity.IdentityRequest]) -> set[int | None]:
    """The pending requests the signed-in user stands behind, which they may reject but not approve."""
    return {
        r.id for r in requests if r.status == identity.PENDING and identity.own_road(signed.org, r, signed.login)
    }


def render(
    request: Request,
    template: str,
    signed: Signed | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    settings = _services(request).settings
    flash = sessions.flash_of(request, settings) if sessions.FLASH_COOKIE in request.cookies else None
    html = _templates.get_template(template).render(
        request=request, signed=signed, flash=flash, path=request.url.path, status=status, **context
    )
    response = HTMLResponse(html, status, {**SECURITY_HEADERS, **(headers or {})})
    if sessions.FLASH_COOKIE in request.cookies:
        sessions.clear_cookie(response, request, settings, sessions.FLASH_COOKIE)
    return response


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, 303, headers={"Cache-Control": "no-store"})


def flash_to(request: Request, url: str, message: str) -> RedirectResponse:
    """A redirect that shows `message` once on the page it leads to (an HttpOnly cookie, signed)."""
    response = redirect(url)
    settings = _services(request).settings
    sessions.set_cookie(
        response, request, settings, sessions.FLASH_COOKIE, sessions.flash_cookie(message, request, settings), 60
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


async def signed_in(request: Request) -> Signed | None:
    secret = request.cookies.get(sessions.SESSION_COOKIE)
    if not secret or len(secret) > 200:
        return None
    services = _services(request)
    session_id = sessions.session_id_of(secret)
    async with transaction(services.engine, readonly=True) as conn:
        row = await ConsoleStore(conn).live_session(session_id, utc_now())
    if row is None:
        return None
    org = await services.orgs.get(row.org_id)
    if org is None:
        return None
    access = Access.of(org.access_groups.get(row.access_group))
    return Signed(session_id, row.login, row.name, org, access, row.csrf_token)


def to_sign_in(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = sessions.page_of_form(request.url.path)
    response = redirect("/console/login?" + urlencode({"next": sessions.safe_next(target)}))
    if request.cookies.get(sessions.SESSION_COOKIE):
        sessions.clear_cookie(response, request, _services(request).settings, sessions.SESSION_COOKIE)
    return response


Handler = Callable[[Request, Signed], Awaitable[Response]]


def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A page of a signed-in user: anyone else is sent to the sign-in page (303, with a safe next)."""

    async def endpoint(request: Request) -> Response:
        signed = await signed_in(request)
        if signed is None:
            return to_sign_in(request)
        try:
            return await handler(request, signed)
        except Refused as refused:
            return render(request, "error.html", signed, refused.status, message=refused.message, pending=None)

    return endpoint


def action(handler: Callable[[Request, Signed, dict[str, str]], Awaitable[Response]]) -> Handler:
    """A POST of a signed-in user: its form must carry the session's CSRF token (else 403)."""

    async def checked(request: Request, signed: Signed) -> Response:
        form = await read_form(request)
        if not signed.csrf_ok(form.get("csrf_token")):
            raise Refused(403, "The form was not sent from this console (its security token is missing or"
                          " wrong). Reload the page and try again.")
        return await handler(request, signed, form)

    return checked


async def pending_count(request: Request, signed: Signed) -> int | None:
    if not signed.access.read:
        return None
    return await identity_changes.pending_count(signed.org.org_id, _services(request).storage)


# Sign-in and sign-out.


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
    response = render(
        request, "login.html", None, status, headers, token=token, next_page=next_page, error=error, login=login
    )
    sessions.set_cookie(response, request, _services(request).settings, sessions.LOGIN_COOKIE, token, 3600)
    return response


async def login(request: Request) -> Response:
    services = _services(request)
    try:
        form = await read_form(request)
    except Refused as refused:
        return render(request, "error.html", None, refused.status, message=refused.message)
    next_page = sessions.safe_next(form.get("next"))
    if not sessions.login_token_ok(request, form.get("csrf_token")):
        return _login_form(
            request, next_page, "The sign-in form had expired. Please sign in again.", 403, form.get("login", "")
        )
    name, password = form.get("login", "").strip(), form.get("password", "")
    try:
        user = await services.auth.verify_console_user(name, password, request)
        org = await services.orgs.get(user.org_id)
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
    secret = await sessions.start(
        services.engine, user.login, user.org_id, user.session_generation, services.settings, utc_now()
    )
    log.info("console sign-in of %s (org %s)", user.login, user.org_id)
    response = redirect(next_page)
    sessions.set_cookie(
        response, request, services.settings, sessions.SESSION_COOKIE, secret, services.settings.console_session_seconds
    )
    sessions.clear_cookie(response, request, services.settings, sessions.LOGIN_COOKIE)
    return response


@page
@action
async def logout(request: Request, signed: Signed, form: dict[str, str]) -> Response:
    services = _services(request)
    async with transaction(services.engine) as conn:
        await ConsoleStore(conn).end_session(signed.session_id, utc_now())
    response = redirect("/console/login")
    sessions.clear_cookie(response, request, services.settings, sessions.SESSION_COOKIE)
    return response


# The overview.


@page
async def overview(request: Request, signed: Signed) -> Response:
    org = signed.org
    figures = await _overviews(request).get(_services(request).engine, org, utc_now())
    days = [(day.strftime("%d %b"), count) for day, count in figures.days]
    chart = {
        "days": charts.column_chart(
            days,
            title=f"Registrations per day, last {DAYS} days",
            description=f"{figures.registered} registrations from {days[0][0]} to {days[-1][0]}.",
        ),
        "source": charts.bar_chart(figures.by_source, title="Registrations by source", description=_listed(figures.by_source)),
        "store": charts.bar_chart(figures.by_store, title="Registrations by store", description=_listed(figures.by_store)),
        "till": charts.bar_chart(figures.by_till, title="Registrations by till", description=_listed(figures.by_till)),
        "type": charts.share_bar(
            [("Loyalty" if t == "LOYALTY" else "Non-loyalty" if t == "NON_LOYALTY" else t, n) for t, n in figures.by_type],
            title="Loyalty and non-loyalty customers",
            description=_listed(figures.by_type),
        ),
        "slab": charts.bar_chart(figures.by_slab, title="Members per slab", description=_listed(figures.by_slab)),
        "warnings": charts.bar_chart(
            [(f"{code} {name}", count) for code, name, count in figures.warnings],
            title=f"Most frequent warnings, last {WARNING_DAYS} days",
            description=_listed([(str(code), count) for code, _, count in figures.warnings]),
        ),
    }
    return render(
        request, "overview.html", signed, figures=figures, charts={k: Markup(v) for k, v in chart.items()},
        days=days, days_count=DAYS, warning_days=WARNING_DAYS, pending=await pending_count(request, signed),
    )


def _listed(points: list[tuple[str, int]]) -> str:
    return "; ".join(f"{label}: {count}" for label, count in points) or "No data."


# Customers.


@page
async def customers_page(request: Request, signed: Signed) -> Response:
    if not signed.access.read:
        raise Refused(403, FORBIDDEN)
    params = request.query_params
    text, conditions = params.get("q", "").strip(), params.get("filter", "").strip()
    result, error, error_field = None, None, None
    if (text or conditions) and _from_another_site(request):
        # A link on another site must not search as the signed-in user: the form is shown filled
        # in, and the user runs it here.
        error_field = "filter" if conditions else "q"
        error = "This search was opened from another site, so it was not run. Press Search to run it."
    elif text or conditions:
        services = _services(request)
        storage, timeout = services.storage, services.settings.search_timeout_seconds
        try:
            page_asked = search.read_page(params.get("start"), params.get("rows") or SEARCH_ROWS)
        except search.SearchRefused as refused:
            page_asked, error, error_field = search.read_page(None, SEARCH_ROWS), refused.message, "q"
        if error is None:
            try:
                async with services.searches.admit(("console", signed.org.org_id, signed.login)):
                    if conditions:
                        error_field = "filter"
                        query = search.read_query(conditions, signed.org)
                        result = await searching.search(signed.org, query, page_asked, storage, timeout)
                    else:
                        error_field = "q"
                        result = await searching.search_box(text, signed.org, page_asked, storage, timeout)
                error_field = None
            except (search.SearchRefused, search.SearchTimedOut, SearchesBusy) as refused:
                error = refused.message
    rows = [customer for customer, _ in result.customers] if result else []
    paging = _paging(request, result) if result else None
    return render(
        request, "customers.html", signed, q=text, conditions=conditions, result=result, rows=rows, error=error,
        error_field=error_field, paging=paging, attributes=[a.value for a in search.Attribute],
        operators=list(search.Operator), pending=await pending_count(request, signed),
    )


def _from_another_site(request: Request) -> bool:
    """Whether the browser says the request comes from another site (Sec-Fetch-Site): a link or a
    form there, not the user's own navigation in the console or a typed address."""
    return request.headers.get("sec-fetch-site", "").lower() in ("cross-site", "same-site")


def _paging(request: Request, result: Any) -> dict[str, Any]:
    def at(start: int) -> str:
        query = {k: v for k, v in request.query_params.items() if k != "start"}
        return "/console/customers?" + urlencode({**query, "start": start})

    first, size = result.start, max(result.rows, 1)
    last = min(result.count, first + len(result.customers))
    return {
        "first": first + 1 if result.customers else 0,
        "last": last,
        "count": result.count,
        "previous": at(max(0, first - size)) if first > 0 else None,
        "next": at(first + size) if first + size < result.count else None,
    }


@dataclass
class CustomerPage:
    customer: Any
    memberships: list[Any]
    ledger: list[dict[str, Any]]
    referred_by: Any
    referred: list[Any]
    requests: list[Any]
    audits: list[Any] | None


def _customer_id(request: Request) -> int:
    raw = request.path_params["user_id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise Refused(404, NOT_FOUND)
    return int(raw)


async def _customer_page(request: Request, signed: Signed, customer_id: int) -> CustomerPage:
    services = _services(request)
    org_id = signed.org.org_id
    # customer/get's look-up by user id: the customer and their memberships.
    (found,) = await lookup.look_up(signed.org, "id", [str(customer_id)], services.storage)
    if found.customer is None:
        raise Refused(404, NOT_FOUND)
    async with transaction(services.engine, readonly=True) as conn:
        store = ConsoleStore(conn)
        ledger = await store.ledger(org_id, customer_id)
        referred_by = await store.referred_by(org_id, customer_id)
        referred = await store.referred(org_id, customer_id)
    requests = await identity_changes.requests_of(org_id, customer_id, services.storage)
    audits = await audit_trail(org_id, customer_id, services.storage) if signed.access.audit_trail else None
    return CustomerPage(found.customer, found.memberships, ledger, referred_by, referred, requests, audits)


async def _render_customer(
    request: Request, signed: Signed, customer_id: int, status: int = 200, **context: Any
) -> Response:
    shown = await _customer_page(request, signed, customer_id)
    org = signed.org
    programs = {
        membership.program_id: (
            org.programs.get(membership.program_id),
            next((s for s in org.programs[membership.program_id].slabs if s.serial == membership.slab_serial), None)
            if membership.program_id in org.programs else None,
        )
        for membership in shown.memberships
    }
    context.setdefault("form", {})
    context.setdefault("errors", {})
    return render(
        request, "customer.html", signed, status, page=shown, c=shown.customer, programs=programs,
        identifiers=IDENTIFIERS, labels=IDENTIFIER_LABELS, custom_fields=org.definition.custom_fields,
        extended_fields=org.definition.extended_fields, pending=await pending_count(request, signed),
        reason_limit=limits.REASON, own=own_requests(signed, shown.requests), **context,
    )


@page
async def customer_page(request: Request, signed: Signed) -> Response:
    if not signed.access.read:
        raise Refused(403, FORBIDDEN)
    return await _render_customer(request, signed, _customer_id(request))


# A NUL is no text of any form: PostgreSQL cannot store one, so it is refused on every backend.
NUL_REFUSED = f"{HOLDS_NUL}."


def _reason(form: dict[str, str], errors: dict[str, str]) -> str:
    reason = form.get("reason", "").strip()
    if "\x00" in reason:
        errors["reason"] = f"The reason {NUL_REFUSED}"
    elif not reason:
        errors["reason"] = "Give a reason: it is kept in the customer's audit trail."
    elif len(reason) > limits.REASON:
        errors["reason"] = f"The reason is longer than {limits.REASON} characters."
    return reason


def _profile_label(key: str) -> str | None:
    """A field of the profile form as its label names it; None for any other key."""
    if key in ("firstname", "lastname"):
        return "First name" if key == "firstname" else "Last name"
    kind, _, name = key.partition(".")
    if kind == "custom" and name:
        return name
    return f"{name} (extended)" if kind == "extended" and name else None


def _caller(request: Request, signed: Signed, reason: str) -> Caller:
    return Caller(
        org=signed.org,
        till_code=None,
        api_client_key=None,
        request_id=request_id(request),
        console_user=signed.login,
        reason=reason,
    )


@page
@action
async def edit_profile(request: Request, signed: Signed, form: dict[str, str]) -> Response:
    if not signed.access.write:
        raise Refused(403, FORBIDDEN)
    customer_id = _customer_id(request)
    services = _services(request)
    shown = await _customer_page(request, signed, customer_id)
    customer, org = shown.customer, signed.org
    errors: dict[str, str] = {}
    reason = _reason(form, errors)
    holding = [key for key, value in form.items() if "\x00" in value and _profile_label(key)]
    if holding:
        errors["profile"] = f"{_profile_label(holding[0])} {NUL_REFUSED}"
    # The customer is named by its id, not by an identifier: the one on the page, whoever holds
    # its values now and whatever the org's rules for them say today.
    item: dict[str, Any] = {}
    for name in ("firstname", "lastname"):
        if name in form and form[name].strip() != (getattr(customer, name) or ""):
            item[name] = form[name].strip()
    custom = [
        {"name": field.name, "value": form[f"custom.{field.name}"].strip()}
        for field in org.definition.custom_fields
        if f"custom.{field.name}" in form
        and form[f"custom.{field.name}"].strip() != customer.custom_fields.get(field.name, "")
    ]
    extended = [
        {"name": field.name, "value": form[f"extended.{field.name}"].strip()}
        for field in org.definition.extended_fields
        if f"extended.{field.name}" in form
        and form[f"extended.{field.name}"].strip() != customer.extended_fields.get(field.name, "")
    ]
    if custom:
        item["custom_fields"] = {"field": custom}
    if extended:
        item["extended_fields"] = {"field": extended}
    if not item and not errors:
        errors["profile"] = "Nothing was changed."
    if errors:
        return await _render_customer(request, signed, customer_id, 400, form=form, errors=errors, open_form="profile")
    result = await service.update_customer_by_id(
        customer_id, item, _caller(request, signed, reason), services.storage, utc_now()
    )
    if not result.success:
        errors["profile"] = f"{result.message} (code {int(result.code)})"
        return await _render_customer(request, signed, customer_id, 400, form=form, errors=errors, open_form="profile")
    return flash_to(request, f"/console/customers/{customer_id}", result.message)


@page
@action
async def request_identity_change(request: Request, signed: Signed, form: dict[str, str]) -> Response:
    if not signed.access.write:
        raise Refused(403, FORBIDDEN)
    customer_id = _customer_id(request)
    services = _services(request)
    shown = await _customer_page(request, signed, customer_id)
    errors: dict[str, str] = {}
    reason = _reason(form, errors)
    name = form.get("identifier", "")
    new_value = form.get("new_value", "").strip()
    if name not in IDENTIFIERS:
        errors["identifier"] = "Choose which identifier changes."
    elif not shown.customer.identifier(name):
        errors["identifier"] = (
            f"The customer has no {IDENTIFIER_LABELS[name].lower()} to change; one is added through the API's"
            " customer/update."
        )
    if "\x00" in new_value:
        errors["new_value"] = f"The new value {NUL_REFUSED}"
    elif not new_value:
        errors["new_value"] = "Give the new value."
    if errors:
        return await _render_customer(request, signed, customer_id, 400, form=form, errors=errors, open_form="identity")
    # By id: the old value is the customer's own as it is when the request is written.
    result = await identity_changes.request_change_of(
        customer_id, name, new_value, _caller(request, signed, reason), services.storage, utc_now()
    )
    if not result.success:
        errors["new_value"] = f"{result.message} (code {int(result.code)})"
        return await _render_customer(request, signed, customer_id, 400, form=form, errors=errors, open_form="identity")
    return flash_to(request, f"/console/customers/{customer_id}", result.message)


# The review queue.


@page
async def identity_requests(request: Request, signed: Signed) -> Response:
    if not signed.access.read:
        raise Refused(403, FORBIDDEN)
    services = _services(request)
    raw = request.query_params.get("start", "")
    start = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else 0
    waiting = await identity_changes.pending(signed.org.org_id, services.storage, identity_changes.PAGE, start)
    count = await identity_changes.pending_count(signed.org.org_id, services.storage)
    async with transaction(services.engine, readonly=True) as conn:
        names = await ConsoleStore(conn).customer_names(signed.org.org_id, sorted({r.customer_id for r in waiting}))
    return render(
        request, "identity_requests.html", signed, requests=waiting, names=names, labels=IDENTIFIER_LABELS,
        pending=count, paging=_queue_paging(start, len(waiting), count), reason_limit=limits.REASON,
        own=own_requests(signed, waiting),
    )


def _queue_paging(start: int, shown: int, count: int) -> dict[str, Any]:
    """The review queue's pages, as the search's: where this one starts and ends, and its neighbours."""
    size = identity_changes.PAGE

    def at(first: int) -> str:
        return "/console/identity-requests" + (f"?{urlencode({'start': first})}" if first else "")

    return {
        "first": start + 1 if shown else 0,
        "last": start + shown,
        "count": count,
        "previous": at(max(0, start - size)) if start > 0 else None,
        "next": at(start + size) if start + size < count else None,
    }


@page
@action
async def decide(request: Request, signed: Signed, form: dict[str, str]) -> Response:
    if not signed.access.review:
        raise Refused(403, FORBIDDEN)
    raw = request.path_params["request_id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise Refused(404, NOT_FOUND)
    back = sessions.safe_next(form.get("back") or "/console/identity-requests")
    decision = form.get("decision")
    reason = form.get("reason", "").strip()
    if decision not in ("approve", "reject"):
        return flash_to(request, back, "Choose Approve or Reject.")
    if not reason:
        return flash_to(request, back, "Give a reason for the decision: it is kept in the audit trail.")
    try:
        decided = await identity_changes.decide(
            signed.org, int(raw), decision == "approve", signed.login, reason, _services(request).storage, utc_now(),
            trace_id=request_id(request),
        )
    except identity.DecisionRefused as refused:
        return flash_to(request, back, f"Request {raw}: {refused}")
    return flash_to(request, back, _decided(int(raw), decided))


def _decided(request_id: int, decided: identity_changes.Decision) -> str:
    if decided.applied:
        return f"Request {request_id} approved: the change is applied."
    reason = decided.request.decision_reason
    return f"Request {request_id} rejected" + (f": {reason}" if reason else ".")


# The Events page: the org's sinks, their dead letters, and replays (events.md §4).

# Dead letters shown at a time on a sink's page; replays listed.
DEAD_LETTER_PAGE = 25
REPLAYS_SHOWN = 10


def _may_see_events(signed: Signed) -> None:
    if not signed.access.events_page:
        raise Refused(403, FORBIDDEN)


async def _sink_states(request: Request, signed: Signed) -> tuple[list[SinkState], list[RelaySeen], list[ReplayRecord]]:
    org_id = signed.org.org_id
    async with _services(request).storage.unit_of_work(readonly=True) as unit:
        states = await unit.event_ops.sink_states(org_id, declared_sinks(signed.org.definition))
        relays = await unit.event_ops.relays_seen(utc_now() - RELAY_SEEN)
        replays = await unit.event_ops.replays(org_id, 50)
    return states, relays, replays


@page
async def events_page(request: Request, signed: Signed) -> Response:
    _may_see_events(signed)
    states, relays, replays = await _sink_states(request, signed)
    return render(
        request, "events.html", signed, states=states, relays=relays, replays=replays[:REPLAYS_SHOWN], now=utc_now(),
        relay_seen=int(RELAY_SEEN.total_seconds()), pending=await pending_count(request, signed),
    )


def _sink_of(states: list[SinkState], request: Request) -> SinkState:
    name = request.path_params["sink"]
    state = next((state for state in states if state.sink == name), None)
    if state is None:
        raise Refused(404, NOT_FOUND)
    return state


async def _render_sink(request: Request, signed: Signed, status: int = 200, **context: Any) -> Response:
    states, relays, replays = await _sink_states(request, signed)
    state = _sink_of(states, request)
    raw = request.query_params.get("start", "")
    start = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else 0
    async with _services(request).storage.unit_of_work(readonly=True) as unit:
        dead = await unit.event_ops.dead_letters(signed.org.org_id, state.sink, DEAD_LETTER_PAGE, start)

    def at(first: int) -> str:
        return f"/console/events/{state.sink}" + (f"?{urlencode({'start': first})}" if first else "")

    paging = {
        "first": start + 1 if dead else 0, "last": start + len(dead), "count": state.dead_letters,
        "previous": at(max(0, start - DEAD_LETTER_PAGE)) if start > 0 else None,
        "next": at(start + DEAD_LETTER_PAGE) if start + DEAD_LETTER_PAGE < state.dead_letters else None,
    }
    context.setdefault("form", {})
    context.setdefault("errors", {})
    return render(
        request, "event_sink.html", signed, status, s=state, dead=dead, paging=paging, relays=relays,
        replays=[r for r in replays if r.sink == state.sink][:REPLAYS_SHOWN], now=utc_now(), reason_limit=limits.REASON,
        relay_seen=int(RELAY_SEEN.total_seconds()), pending=await pending_count(request, signed), **context,
    )


@page
async def event_sink_page(request: Request, signed: Signed) -> Response:
    _may_see_events(signed)
    return await _render_sink(request, signed)


@page
@action
async def replay_events(request: Request, signed: Signed, form: dict[str, str]) -> Response:
    if not signed.access.replay:
        raise Refused(403, FORBIDDEN)
    name = request.path_params["sink"]
    declared = {sink.name: sink for sink in declared_sinks(signed.org.definition)}.get(name)
    if declared is None:
        raise Refused(404, NOT_FOUND)
    errors: dict[str, str] = {}
    what = form.get("what", "")
    event_id = form.get("event_id", "").strip()
    try:
        reason = replay_reason(form.get("reason"))
    except ReplayRefused as refused:
        reason, errors["reason"] = "", _sentence(str(refused))
    asked: Selection | None = None
    if what == "dead":
        asked = selection(None, None, None, True)
    elif what == "event":
        if "\x00" in event_id:
            errors["event_id"] = f"The eventId {NUL_REFUSED}"
        elif not event_id:
            errors["event_id"] = "Give the eventId of the event to send again."
        else:
            try:
                asked = selection(event_id, None, None, False)
            except ReplayRefused as refused:
                errors["event_id"] = _sentence(str(refused))
    else:
        errors["what"] = "Choose what to send again: the dead letters, or one event."
    if errors or asked is None:
        return await _render_sink(request, signed, 400, form=form, errors=errors)
    try:
        replayed = await replay(
            _services(request).storage, signed.org.org_id, declared, asked, reason,
            requested_by("console", signed.login), utc_now(), enable=form.get("enable") == "yes",
        )
    except ReplayRefused as refused:
        return await _render_sink(request, signed, 400, form=form, errors={"replay": _sentence(str(refused))})
    return flash_to(request, f"/console/events/{name}", replayed.message())


def _sentence(text: str) -> str:
    """A refusal's phrase as the console says it: a capital, a full stop."""
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


# The application.


async def not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = exc.status_code if exc.status_code in (404, 405) else 400
    signed = await signed_in(request) if status == 404 else None
    message = NOT_FOUND if status == 404 else "This page does not take that request."
    return render(request, "error.html", signed, status, message=message, pending=None)


class ConsoleApp:
    """The console's own routes, mounted at /console: it keeps the outer app, whose state holds
    the services, on the scope (a mounted app's handlers see only themselves as request.app)."""

    def __init__(self) -> None:
        self.app = Starlette(
            routes=[
                Route("/", overview, methods=["GET"]),
                Route("/login", login_page, methods=["GET"]),
                Route("/login", login, methods=["POST"]),
                Route("/logout", logout, methods=["POST"]),
                Route("/customers", customers_page, methods=["GET"]),
                Route("/customers/{user_id}", customer_page, methods=["GET"]),
                Route("/customers/{user_id}/profile", edit_profile, methods=["POST"]),
                Route("/customers/{user_id}/identity", request_identity_change, methods=["POST"]),
                Route("/identity-requests", identity_requests, methods=["GET"]),
                Route("/identity-requests/{request_id}/decision", decide, methods=["POST"]),
                Route("/events", events_page, methods=["GET"]),
                Route("/events/{sink}", event_sink_page, methods=["GET"]),
                Route("/events/{sink}/replay", replay_events, methods=["POST"]),
                Mount("/static", app=StaticFiles(packages=[("patron.console", "static")]), name="console-static"),
            ],
            exception_handlers={HTTPException: not_found},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("patron.app", scope.get("app"))
        await self.app(scope, receive, send)


def console_mount() -> Mount:
    return Mount("/console", app=ConsoleApp(), name="console")
