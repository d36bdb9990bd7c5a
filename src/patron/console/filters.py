"""How the console's templates show stored values: times in the org's timezone, ages, audit records'
kinds and values, warnings by name, who asked for an identity change; and console.labels' fields by
label, mobiles grouped, tills by name and tiers that never expire."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import orjson

from patron.console import labels
from patron.console.overview import warning_name
from patron.customers.identity_requests import IdentityRequest
from patron.events.operations import age
from patron.orgs.model import OrgSettings

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


def changed(value: Any, field: str, org: OrgSettings) -> str:
    """An audit change's value of `field`: a mobile grouped, a till by name, custom and extended
    fields by label; anything else as `shown` says it."""
    if field == "mobile" and isinstance(value, str):
        return labels.mobile(value)
    if field in ("registered_till", "associated_with") and isinstance(value, str):
        return labels.till(value, org)
    if field in ("custom_fields", "extended_fields") and isinstance(value, dict):
        kind = field.removesuffix("_fields")
        return shown({labels.field_label(name, org, kind): item for name, item in value.items()})
    return shown(value)


def asker(request: IdentityRequest, org: OrgSettings | None = None) -> str:
    """Who asked for an identity change, as the queue shows it: the console user, or the till (by
    name, given the org) or API client with the user-context entity id it sent, and the console
    users tied to it."""
    if request.console_user:
        return request.console_user
    at = labels.till(request.till_code, org) if org is not None and request.till_code else (
        f"till {request.till_code or '—'}"
    )
    who = f"API client {request.api_client_key} at {at}" if request.api_client_key else at
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
    "changed": changed,
    "label": labels.field_label,
    "mobile": labels.mobile,
    "identifier": lambda value, name: labels.identifier(name, value),
    "till": lambda code, org: labels.till(code, org),
    "expiry": labels.expiry,
}
