"""GET /v1.1/events (events.md §3): the org's event feed, oldest first, a page at a time after a cursor."""

from __future__ import annotations

import base64
import binascii
import logging
import re
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from patron.api import answers
from patron.api.codec import encode, error_document
from patron.api.context import authorized, services
from patron.codes import Code
from patron.errors import ApiError
from patron.events.build import envelope
from patron.events.model import StoredEvent
from patron.store.db import DatabaseUnavailable

log = logging.getLogger("patron.api")

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# A cursor is the org and a position of its stream, as base64url text without padding: opaque to
# clients (they pass back what `next` gave), and read back strictly so that a cut or edited one is
# refused, never taken for another position.
_CURSOR_TEXT = re.compile(r"[A-Za-z0-9_-]{1,48}")
_CURSOR_PLAIN = re.compile(r"([1-9][0-9]{0,17})\.(0|[1-9][0-9]{0,17})")
NOT_A_CURSOR = (
    "after is not a cursor of this feed: pass the `next` of an earlier answer as it was given, or leave after out "
    "to start from the oldest event kept"
)


def cursor_text(org_id: int, position: int) -> str:
    """The cursor after `position` of the org's stream."""
    return base64.urlsafe_b64encode(f"{org_id}.{position}".encode()).decode().rstrip("=")


def cursor_position(text: str, org_id: int) -> int:
    """The position a cursor of the org's feed stands after; 400 for anything else."""
    if not _CURSOR_TEXT.fullmatch(text):
        raise ApiError(Code.INVALID_INPUT, detail=NOT_A_CURSOR)
    try:
        plain = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ApiError(Code.INVALID_INPUT, detail=NOT_A_CURSOR) from exc
    read = _CURSOR_PLAIN.fullmatch(plain)
    # Only the one spelling this feed writes: base64 has others of the same bytes.
    if read is None or cursor_text(int(read[1]), int(read[2])) != text:
        raise ApiError(Code.INVALID_INPUT, detail=NOT_A_CURSOR)
    if int(read[1]) != org_id:
        raise ApiError(Code.INVALID_INPUT, detail="after is a cursor of another org's feed: each org's feed has its own")
    return int(read[2])


def _one(params: QueryParams, name: str) -> str | None:
    given = params.getlist(name)
    if len(given) > 1:
        raise ApiError(Code.INVALID_INPUT, detail=f"{name} is given more than once")
    return given[0] if given else None


def after_param(params: QueryParams, org_id: int) -> int | None:
    """The position `after` stands after; None when it is absent or empty (from the oldest kept)."""
    text = _one(params, "after")
    return cursor_position(text, org_id) if text else None


def limit_param(params: QueryParams) -> int:
    text = _one(params, "limit")
    if text is None:
        return DEFAULT_LIMIT
    if not (text.isdecimal() and text.isascii() and len(text) <= 6 and 1 <= int(text) <= MAX_LIMIT):
        raise ApiError(Code.INVALID_INPUT, detail=f"limit must be a whole number from 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})")
    return int(text)


def json_only(params: QueryParams) -> None:
    """The feed answers JSON, the same documents the webhooks receive: an XML answer would lose
    their types, so asking for one is refused rather than silently answered in JSON."""
    chosen = _one(params, "format")
    if chosen is not None and chosen.strip().lower() != "json":
        raise ApiError(Code.INVALID_INPUT, detail="format: the event feed answers JSON only; leave format out or give json")


def next_position(page: list[StoredEvent], after: int | None, removed_through: int) -> int:
    """Where the next read starts: after the page's last event; with none, where this one stood
    (from the oldest kept: after the last position removed)."""
    if page:
        return page[-1].position
    return after if after is not None else removed_through


def refusal(after: int | None, removed_through: int, last_position: int, retention_days: int) -> ApiError | None:
    """Why a page read after `after` cannot be answered: events after the cursor were removed (410,
    never a silent gap), or the cursor is past any position the stream has given (400)."""
    if after is None:
        return None
    if after < removed_through:
        return ApiError(
            Code.CURSOR_EXPIRED,
            detail=f"the cursor is older than the retention of {retention_days} days (CONF_EVENT_RETENTION_DAYS): "
            "events after it were removed; start again without after (from the oldest event kept), or from a "
            "recent cursor",
        )
    if after > last_position:
        return ApiError(Code.INVALID_INPUT, detail="after is past the end of this org's events: pass the `next` of an earlier answer")
    return None


async def read_events(request: Request) -> Response:
    """The feed answers JSON only, its refusals too, in the v1.1 envelope (whatever Accept says)."""
    try:
        return encode(dict(await _page(request)), "json", int(Code.SUCCESS))
    except ApiError as error:
        return encode(dict(error_document(error)), "json", int(error.code), error.headers)
    except DatabaseUnavailable as exc:
        # As the app answers it for every route (api.app), but in the feed's one format.
        log.error("database unavailable: %s", exc)
        unavailable = ApiError(Code.SERVICE_UNAVAILABLE, headers={"Retry-After": "1"})
        return encode(dict(error_document(unavailable)), "json", int(unavailable.code), unavailable.headers)


async def _page(request: Request) -> answers.EventsResponse:
    app = services(request)
    principal = await authorized(request, "events", "read")
    params = request.query_params
    json_only(params)
    org = principal.org
    limit = limit_param(params)
    after = after_param(params, org.org_id)
    # Identifiers and names go to a caller that may read the customers anyway; any other gets the
    # events thin, as a sink without pii = true does.
    pii = org.allows(principal.access_group, "customer", "read")
    async with app.storage.unit_of_work(readonly=True) as unit:
        page = await unit.events.read(org.org_id, after or 0, limit)
        # Read after the page: a removal that committed before the page was read shows here too,
        # so a page with a gap in it is never answered.
        last_position, removed_through = await unit.events.stream(org.org_id)
    refused = refusal(after, removed_through, last_position, org.configs.CONF_EVENT_RETENTION_DAYS)
    if refused is not None:
        raise refused
    shown: list[Any] = [envelope(event, pii=pii) for event in page]
    return {"events": shown, "next": cursor_text(org.org_id, next_position(page, after, removed_through))}
