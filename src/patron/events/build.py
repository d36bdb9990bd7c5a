"""Each event's body, built from plain data (events.md §1): pure functions, one per kind of change."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

# Writer is the model's (a registration's Caller makes one); build's functions take it, so build names it too.
from patron.customers.model import IDENTIFIERS, Change, Customer, CustomerFields
from patron.events.model import Event, Origin
from patron.events.model import Writer as Writer
from patron.events.names import EventName
from patron.loyalty.model import POINTS, LedgerEntry

# The API's names of the identifiers, as the family's event schema names them in `instore`.
INSTORE = {"mobile": "mobile", "email": "email", "external_id": "externalId"}
# Changes the events do not report: updated_on moves with every write, and is no change of its own.
UNREPORTED = frozenset({"updated_on"})
# Fields whose values are personal (events.md §1, PII): a sink without `pii = true` gets them null.
PERSONAL_FIELDS = frozenset({*IDENTIFIERS, "firstname", "lastname"})
FIELD_TYPES = {**dict.fromkeys(IDENTIFIERS, "Identifier"), "custom_fields": "CustomField", "extended_fields": "ExtendedField"}


def unix_ms(moment: datetime) -> int:
    """A naive UTC time as Unix milliseconds."""
    return int(moment.replace(tzinfo=timezone.utc).timestamp() * 1000)


def identifiers(customer: CustomerFields) -> dict[str, Any]:
    return {
        "customerId": customer.stored_id,
        "instore": {INSTORE[name]: customer.identifier(name) for name in IDENTIFIERS},
    }


def _common(customer: CustomerFields, writer: Writer) -> dict[str, Any]:
    return {
        "customerIdentifiers": identifiers(customer),
        "loyaltyType": customer.type,
        "source": customer.source,
        "enteredAt": unix_ms(writer.at),
        "enteredBy": writer.entered_by(),
    }


def _pairs(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in values.items()]


def customer_added(customer: CustomerFields, writer: Writer) -> Event:
    """A customer written now; a new one's id is filled in when the database gives it."""
    return Event(EventName.CUSTOMER_ADDED, customer.stored_id, {
        **_common(customer, writer),
        "firstName": customer.firstname,
        "lastName": customer.lastname,
        "customFields": _pairs(customer.custom_fields),
        "extendedFields": _pairs(customer.extended_fields),
    })


def updated_fields(changes: list[Change]) -> list[dict[str, Any]]:
    """The audit's changes as the event names them: a custom or extended field each by its name,
    updated_on left out (it moves with every write)."""
    fields: list[dict[str, Any]] = []
    for change in changes:
        name = change["field"]
        if name in UNREPORTED:
            continue
        kind = FIELD_TYPES.get(name, "Profile")
        if kind in ("CustomField", "ExtendedField"):
            before, after = change["previous"] or {}, change["current"] or {}
            fields += [
                {"fieldName": key, "previousValue": before.get(key), "currentValue": after.get(key), "fieldType": kind}
                for key in dict.fromkeys([*before, *after])
                if before.get(key) != after.get(key)
            ]
        else:
            fields.append({"fieldName": name, "previousValue": change["previous"], "currentValue": change["current"],
                           "fieldType": kind})
    return fields


def customer_updated(after: Customer, changes: list[Change], writer: Writer) -> Event | None:
    """The update's event, or None when it changed nothing an event reports."""
    fields = updated_fields(changes)
    if not fields:
        return None
    return Event(EventName.CUSTOMER_UPDATED, after.id, {**_common(after, writer), "updatedFields": fields})


def points_issued(customer: CustomerFields | None, entry: LedgerEntry, balance: int | None, writer: Writer) -> Event:
    """Points or an alternate currency credited by one ledger entry. `customer`: the one credited
    when the caller holds it (a referrer is known by id only); `balance`: its points after."""
    data: dict[str, Any] = {
        "customerIdentifiers": identifiers(customer) if customer is not None else
        {"customerId": entry.customer_id, "instore": dict.fromkeys(INSTORE.values())},
        "source": customer.source if customer is not None else None,
        "enteredAt": unix_ms(writer.at),
        "enteredBy": writer.entered_by(),
        "programId": entry.program_id,
        "reason": entry.kind.value,
        "loyaltyPoints": balance,
    }
    if entry.currency == POINTS:
        data["awardedPoints"] = entry.amount
    else:
        program = writer.org.programs.get(entry.program_id)
        names = {currency.identifier: currency.name for currency in program.alternate_currencies} if program else {}
        data["alternateCurrency"] = {"identifier": entry.currency, "name": names.get(entry.currency), "value": entry.amount}
    return Event(EventName.POINTS_ISSUED, entry.customer_id, data)


def request_updated(
    customer: Customer, *, request_id: int, status: str, identifier: str, old_value: str | None, new_value: str,
    reason: str | None, decided_by: str | None, writer: Writer,
) -> Event:
    """An identity change request created or decided (member-care.md §2)."""
    return Event(EventName.REQUEST_UPDATED, customer.id, {
        **_common(customer, writer),
        "requestId": request_id,
        "type": "CHANGE_IDENTIFIER",
        "status": status,
        "identifier": identifier,
        "oldValue": old_value,
        "newValue": new_value,
        "reason": reason,
        "decidedBy": decided_by,
    })


def thin(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """The body as a sink without `pii = true` gets it (events.md §1): identifiers and names null,
    what changed named without its values."""
    thinned = dict(data)
    ids = data.get("customerIdentifiers")
    if ids is not None:
        thinned["customerIdentifiers"] = {**ids, "instore": dict.fromkeys(ids.get("instore") or INSTORE.values())}
    for key in ("firstName", "lastName"):
        if key in thinned:
            thinned[key] = None
    if "updatedFields" in data:
        thinned["updatedFields"] = [
            {**field, "previousValue": None, "currentValue": None} if field["fieldName"] in PERSONAL_FIELDS else field
            for field in data["updatedFields"]
        ]
    if name == EventName.REQUEST_UPDATED:
        thinned["oldValue"] = thinned["newValue"] = None
    return thinned


def envelope(event: Any, *, pii: bool) -> dict[str, Any]:
    """An event as every sink and the feed send it (events.md §1), from a StoredEvent."""
    data = dict(event.data)
    ids = data.get("customerIdentifiers")
    if ids is not None:
        data["customerIdentifiers"] = {**ids, "customerId": event.customer_id}
    if not pii:
        data = thin(event.name, data)
    body: dict[str, Any] = {
        "eventId": event.event_id,
        "eventName": event.name,
        "orgId": event.org_id,
        "refId": f"{event.org_id}_{event.customer_id}",
        "apiRequestId": event.request_id if event.origin == "api" else None,
        "createdAt": unix_ms(event.created_at),
        "sequence": event.sequence,
        "data": data,
    }
    if event.origin == "console":
        body["consoleUser"] = event.console_user
    elif event.origin == "import":
        body["source"] = "import"
    return body
