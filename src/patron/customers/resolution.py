"""Identity resolution (spec §3–4): which customer an item is, and what an update may change."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from patron.codes import Code
from patron.customers import external_ids
from patron.customers.fields import local_text
from patron.customers.model import (
    IDENTIFIER_LABELS,
    IDENTIFIERS,
    LOYALTY,
    NON_LOYALTY,
    Change,
    Customer,
    CustomerFields,
    CustomerInput,
    ItemRejected,
    Warnings,
)
from patron.customers.reading import require_identifiers
from patron.orgs.policy import Configs

UPDATE_CONFIG = {
    "mobile": "CONF_ALLOW_MOBILE_UPDATE",
    "email": "CONF_ALLOW_EMAIL_UPDATE",
    "external_id": "CONF_LOYALTY_ALLOW_EXTERNAL_ID_UPDATE",
}

# Fields that an update replaces when the item sends them; registration facts
# (registered_on, registered_till) are set once, at creation.
REPLACEABLE = ("firstname", "lastname", "source", "account_id", "fraud_status", "associated_with")


def identifier_key(name: str, value: str, configs: Configs) -> str:
    """An identifier's value as the org's unique index compares it: an external id by its key
    (external_ids.key), the others as stored."""
    if name == "external_id":
        return external_ids.key(value, configs.CONF_EXTERNAL_ID_CASE_INSENSITIVE)  # type: ignore[return-value]
    return value


def identifier_keys(values: dict[str, str], configs: Configs) -> dict[str, str]:
    """Identifier values by name, as the unique indexes compare them: what holders are found by."""
    return {name: identifier_key(name, value, configs) for name, value in values.items()}


# A customer stored or planned: keyed gives back what it was given.
Planned = TypeVar("Planned", bound=CustomerFields)


def keyed(customer: Planned, configs: Configs) -> Planned:
    """The customer with its external id's key as the org's rule makes it: every rule that sets
    an external id ends here, so that the unique index holds what the rule compares."""
    customer.external_id_key = external_ids.key(customer.external_id, configs.CONF_EXTERNAL_ID_CASE_INSENSITIVE)
    return customer


def resolve(
    item: CustomerInput, holders: dict[str, Customer], configs: Configs, warnings: Warnings
) -> Customer | None:
    """The existing customer the item updates, or None to create one.

    `holders` maps each identifier the item carries to the customer that already holds that value.
    Identifiers that cannot be applied are cleared from `item`, with their warning.
    """
    primary = configs.CONF_REGISTRATION_PRIMARY_KEY
    secondary = [name for name in IDENTIFIERS if name != primary and name in holders]
    owner = holders.get(primary)
    if owner is not None:
        for name in secondary:
            if holders[name].id != owner.id:
                _drop(item, name, Code.IDENTIFIER_OCCUPIED, warnings)
        return owner

    others = {holders[name].id: holders[name] for name in secondary}
    if not others:
        return None
    if configs.CONF_SKIP_SECONDARY_ID_ON_PRIMARY_MISMATCH and item.identifier(primary) is not None:
        for name in secondary:
            _drop(item, name, Code.IDENTIFIER_OCCUPIED, warnings)
        # Dropping an occupied value must not create what reading would refuse: a customer
        # without an identifier the org requires, or a NON_LOYALTY one without mobile and email.
        require_identifiers(item, configs)
        if item.type == NON_LOYALTY and item.mobile is None and item.email is None:
            raise ItemRejected(Code.NON_LOYALTY_WITHOUT_IDENTIFIER)
        return None
    if len(others) > 1:
        # Never merge two existing customers implicitly.
        raise ItemRejected(Code.PRIMARY_IDENTIFIER_MISMATCH)
    (match,) = others.values()
    if configs.CONF_PRIMARY_IDENTIFIER_STRICT_CHECK and match.identifier(primary) is not None:
        raise ItemRejected(Code.PRIMARY_IDENTIFIER_MISMATCH, match)
    return match


def _drop(item: CustomerInput, name: str, code: Code, warnings: Warnings) -> None:
    setattr(item, name, None)
    warnings.add(code, IDENTIFIER_LABELS[name])


def new_type(item: CustomerInput) -> str:
    """The type of the customer an item creates: LOYALTY unless it says otherwise."""
    return item.type or LOYALTY


def create(org_id: int, item: CustomerInput, calling_till: str | None, now: datetime, configs: Configs) -> CustomerFields:
    """The customer an item creates, as planned: its id is the database's to give."""
    if item.registered_on_out_of_range:
        raise ItemRejected(Code.REGISTRATION_DATE_OUT_OF_RANGE)
    return keyed(CustomerFields(
        org_id=org_id,
        mobile=item.mobile,
        email=item.email,
        external_id=item.external_id,
        firstname=item.firstname or "",
        lastname=item.lastname or "",
        type=new_type(item),
        source=item.source or "INSTORE",
        account_id=item.account_id,
        fraud_status=item.fraud_status or "NONE",
        registered_on=item.registered_on or now,
        updated_on=item.updated_on or now,
        registered_till=item.registered_till or calling_till,
        associated_with=item.associated_with or calling_till,
        referral_code=None,
        custom_fields=dict(item.custom_fields),
        extended_fields=dict(item.extended_fields),
        subscriptions=list(item.subscriptions or []),
        comm_channels=list(item.comm_channels or []),
    ), configs)


def update(
    existing: Customer,
    item: CustomerInput,
    holders: dict[str, Customer],
    configs: Configs,
    now: datetime,
    warnings: Warnings,
) -> Customer:
    """The customer after applying the item to it (the update path of spec §4)."""
    if existing.type == LOYALTY and item.type == NON_LOYALTY:
        raise ItemRejected(Code.LOYALTY_TO_NON_LOYALTY, existing)
    updated = dataclasses.replace(existing)
    primary = configs.CONF_REGISTRATION_PRIMARY_KEY
    for name in IDENTIFIERS:
        wanted, current = item.identifier(name), existing.identifier(name)
        if wanted is None or wanted == current:
            continue
        if current is not None and identifier_key(name, wanted, configs) == identifier_key(name, current, configs):
            # One identifier spelt another way (CONF_EXTERNAL_ID_CASE_INSENSITIVE): the customer
            # keeps its spelling, as when the item sends it as stored.
            continue
        holder = holders.get(name)
        if holder is not None and holder.id != existing.id:
            warnings.add(Code.IDENTIFIER_OCCUPIED, IDENTIFIER_LABELS[name])
        elif current is None:
            setattr(updated, name, wanted)
        elif name == primary:
            warnings.add(Code.PRIMARY_IDENTIFIER_NOT_UPDATABLE, IDENTIFIER_LABELS[name])
        elif getattr(configs, UPDATE_CONFIG[name]):
            setattr(updated, name, wanted)
        else:
            warnings.add(Code.IDENTIFIER_UPDATE_NOT_ALLOWED, IDENTIFIER_LABELS[name])

    for name in REPLACEABLE:
        value = getattr(item, name)
        if value is not None:
            setattr(updated, name, value)
    if item.type is not None:
        updated.type = item.type
    updated.updated_on = item.updated_on or now
    updated.custom_fields = {**existing.custom_fields, **item.custom_fields}
    updated.extended_fields = {**existing.extended_fields, **item.extended_fields}
    if item.subscriptions is not None:
        updated.subscriptions = _merge(existing.subscriptions, item.subscriptions, ("channel", "priority"))
    if item.comm_channels is not None:
        updated.comm_channels = _merge(existing.comm_channels, item.comm_channels, ("type", "value"))
    return keyed(updated, configs)


def _merge(existing: list[dict[str, Any]], sent: list[dict[str, Any]], key: tuple[str, ...]) -> list[dict[str, Any]]:
    merged = {tuple(entry.get(k) for k in key): entry for entry in existing}
    merged.update({tuple(entry.get(k) for k in key): entry for entry in sent})
    return list(merged.values())


def unchanged(before: Customer, after: Customer) -> bool:
    """Whether the customer after an update is the customer as stored, in every value but
    updated_on: that says when the customer last changed, and is no change of its own (sent by an
    item that changes nothing else, it is not stored either)."""
    return dataclasses.replace(after, updated_on=before.updated_on) == before


# The fields an audit record lists. Not updated_on: it moves with every write that changes
# something, so it would only repeat the record's own time.
AUDITED_FIELDS = (
    *IDENTIFIERS,
    "firstname",
    "lastname",
    "type",
    "source",
    "account_id",
    "fraud_status",
    "registered_on",
    "registered_till",
    "associated_with",
    "custom_fields",
    "extended_fields",
    "subscriptions",
    "comm_channels",
)


# The audited fields that hold an instant: the audit log keeps them as the API writes them.
AUDITED_TIMES = frozenset({"registered_on"})


def changes(before: Customer | None, after: CustomerFields, tz: ZoneInfo) -> list[Change]:
    """Each field whose value differs, with its previous and current value; an instant as the
    API writes it, in the org's timezone, so the log reads as the answers did."""
    if before is None:
        # A new customer: every field it has a value for (most registrations, so it is quick).
        return [
            {"field": name, "previous": None, "current": local_text(current, tz) if name in AUDITED_TIMES else current}
            for name in AUDITED_FIELDS
            if (current := getattr(after, name)) is not None
        ]
    result: list[Change] = []
    for name in AUDITED_FIELDS:
        previous, current = getattr(before, name), getattr(after, name)
        if previous != current:
            if name in AUDITED_TIMES:
                previous, current = local_text(previous, tz), local_text(current, tz)
            result.append({"field": name, "previous": previous, "current": current})
    return result
