"""How the console's templates show stored values: times in the org's timezone, ages, audit records'
kinds and values, warnings by name, and who asked for an identity change."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import orjson

from patron.console.overview import warning_name
from patron.events.operations import age
from patron.orgs.model import OrgSettings
from patron.registration.identity import IdentityRequest

# How the audit timeline names each kind of record.
EVENTS = {
    "CREATE": "Registered",
    "UPDATE": "Updated",
    "ID_REQUESTED": "Identity change requested",
    "ID_APPROVED": "Identity change approved",
    "ID_REJECTED": "Identity change rejected",
    "ID_SUPERSEDED": "Identity change superseded",
}


def local(moment: datetime | None, org: OrgSettings) -> str:
    """A stored time (naive UTC) in the org's timezone, to the minute."""
    if moment is None:
        return ""
    return moment.replace(tzinfo=timezone.utc).astimezone(org.tz).strftime("%Y-%m-%d %H:%M")


def event(name: str) -> str:
    return EVENTS.get(name, name)


def shown(value: Any) -> str:
    """An audit change's value as a person reads it: named fields as name: value, lists as JSON."""
    if value is None or value == "":
        return "—"
    if isinstance(value, dict):
        return ", ".join(f"{name}: {shown(item)}" for name, item in value.items()) or "—"
    if isinstance(value, list):
        return orjson.dumps(value).decode() if value else "—"
    return str(value)


def asker(request: IdentityRequest) -> str:
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


FILTERS: dict[str, Callable[..., str]] = {
    "local": local,
    "age": age,
    "event": event,
    "warning": warning_name,
    "shown": shown,
    "asker": asker,
}
