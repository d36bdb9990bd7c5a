"""The event feed's operation, GET /v1.1/events, with examples the domain's own builders make
(events.build) from the sample customers' registration and update."""

from __future__ import annotations

from typing import Any

from patron.api.events import DEFAULT_LIMIT, MAX_LIMIT, cursor_text, refusal
from patron.api.openapi import samples
from patron.api.openapi.parameters import CALLER_SECURITY, attribution
from patron.api.openapi.responses import REQUEST_ID, REQUEST_ID_HEADER, common_failures, envelope_error
from patron.api.openapi.schemas import ref
from patron.codes import Code
from patron.events import build as event_bodies
from patron.events.model import StoredEvent


def sample_events() -> list[StoredEvent]:
    """Asha's customerAdded and customerUpdated, at their places in the org's stream."""
    writer = event_bodies.Writer(samples.ORG, samples.TILL, None, samples.REGISTERED_AT, "api")
    later = event_bodies.Writer(samples.ORG, samples.TILL, None, samples.UPDATED_AT, "api")
    before, after = samples.ASHA, samples.ASHA_UPDATED
    added = event_bodies.customer_added(before, writer)
    updated = event_bodies.customer_updated(
        after, [{"field": "lastname", "previous": before.lastname, "current": after.lastname}], later
    )
    assert updated is not None
    return [
        StoredEvent(
            org_id=samples.ORG_ID, position=position, event_id=event_id, customer_id=samples.ASHA_ID,
            sequence=sequence, name=event.name.value, created_at=made.at, request_id=request_id, origin="api",
            console_user=None, data=event.data,
        )
        for position, sequence, event_id, event, made, request_id in (
            (4101, 1, "0b6f9a52-3c1e-4d4b-9a8e-2f7c1d5e6a90", added, writer, "5f0c1d2e3b4a49c8a7e6d5c4b3a29180"),
            (4102, 2, "7d2e4f18-9b3a-4c6d-8e1f-5a0b2c3d4e5f", updated, later, "9a8b7c6d5e4f40312a1b0c9d8e7f6a5b"),
        )
    ]


def events_examples() -> dict[str, dict[str, Any]]:
    sample = sample_events()
    page_next = cursor_text(samples.ORG_ID, sample[-1].position)
    return {
        "withIdentifiers": {
            "summary": "A caller whose access group may also read customers: identifiers and names",
            "value": {"events": [event_bodies.envelope(event, pii=True) for event in sample], "next": page_next},
        },
        "thin": {
            "summary": "A caller with events read only: identifiers, names and identifier values null",
            "value": {"events": [event_bodies.envelope(event, pii=False) for event in sample], "next": page_next},
        },
        "caughtUp": {
            "summary": "Nothing after the cursor yet: the same cursor back, to poll again with",
            "value": {"events": [], "next": page_next},
        },
    }


def _json_error(code: Code, detail: str | None = None) -> dict[str, Any]:
    """A request-level failure of the event feed: the v1.1 envelope, in JSON only."""
    return envelope_error(code, detail, json_only=True)


def events_operation() -> dict[str, Any]:
    expired = refusal(1, 4000, 4102, 30)
    assert expired is not None
    return {
        "tags": ["events"],
        "operationId": "readEvents",
        "summary": "The org's events after a cursor, oldest first: for CRM sync and for a new consumer to catch up",
        "description": (
            "The same events the org's webhooks and brokers receive (`customerAdded`, `customerUpdated`, "
            "`pointsIssued`, `requestUpdated`), each once in the org's stream, oldest first, each customer's in "
            "`sequence` order. Start without `after` (from the oldest event kept), then pass each answer's `next` "
            "as `after`: pages chain without gap or repeat, and an answer without events gives back the same "
            "cursor to poll again with. Only committed events appear, given their place in the stream by the "
            "relay (`patron relay`) within moments of their commit. A cursor is opaque text, valid for its org "
            "only.\n\n"
            "Events are kept CONF_EVENT_RETENTION_DAYS (30 by default) once every sink has had them: a cursor "
            "older than that is answered 410, never with a silent gap; start again without `after`.\n\n"
            "**Personal data**: identifiers (mobile, email, external id), names and the values of changed "
            "identifiers are sent only to a caller whose access group may also read customers (`customer` "
            "read or write). Any other caller gets the events thin, as a sink without `pii = true` does: those "
            "fields present but null, `customerId` and what changed still named.\n\n"
            "Needs `events` read (or write) in the caller's access group. Answers JSON only, its errors too "
            "(in the v1.1 `response.status` envelope), whatever Accept says; `format=xml` is refused."
        ),
        "security": CALLER_SECURITY,
        "parameters": [
            {
                "name": "after",
                "in": "query",
                "description": "The `next` of an earlier answer; absent (or empty): from the oldest event kept.",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,48}$"},
                "example": cursor_text(samples.ORG_ID, 4100),
            },
            {
                "name": "limit",
                "in": "query",
                "description": f"At most this many events, 1 to {MAX_LIMIT}.",
                "schema": {"type": "string", "pattern": "^[0-9]+$", "default": str(DEFAULT_LIMIT)},
            },
            {
                "name": "format",
                "in": "query",
                "description": "Only `json` (the default); the feed has no XML form.",
                "schema": {"type": "string", "enum": ["json"]},
            },
            *attribution(),
        ],
        "responses": {
            "200": {
                "description": "The events after the cursor (none is a 200 too), and the cursor to pass next.",
                "headers": {REQUEST_ID_HEADER: REQUEST_ID},
                "content": {"application/json": {"schema": ref("EventsResponse"), "examples": events_examples()}},
            },
            "400": _json_error(Code.INVALID_INPUT, f"limit must be a whole number from 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})"),
            "410": _json_error(Code.CURSOR_EXPIRED, expired.detail),
            **common_failures(_json_error),
        },
    }
