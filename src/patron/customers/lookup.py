"""Looking customers up (customer/get): each value read as add stores it, one look-up for them all."""

from __future__ import annotations

from dataclasses import dataclass, field
from patron.customers import fields, resolution
from patron.customers.model import Customer
from patron.customers.ports import Lookups
from patron.loyalty.model import Membership
from patron.orgs.model import OrgSettings

# The identifiers a customer is looked up by, in the order a request's parameters are read.
LOOKUP_KEYS = ("mobile", "email", "external_id", "id")


class LookupRefused(Exception):
    """The look-up cannot be made as asked (the request's error, not an item's)."""


@dataclass(frozen=True)
class Looked:
    """One value asked for, and the customer holding it (None: no one does)."""

    asked: str
    customer: Customer | None
    memberships: list[Membership] = field(default_factory=list)


async def look_up(org: OrgSettings, key: str, values: list[str], storage: Lookups) -> list[Looked]:
    """The org's customers holding these values of one identifier, in the order asked."""
    if not values:
        raise LookupRefused(f"{key} holds no value")
    limit = org.configs.BATCH_LIMIT
    if len(values) > limit:
        raise LookupRefused(f"at most {limit} values of {key} in one request (BATCH_LIMIT)")
    # Found by the key the org's unique index holds: an external id in any case where the org
    # matches external ids ignoring case.
    keys = [lookup_key(key, value, org) for value in values]
    held = await storage.find_with_memberships(org.org_id, key, [value for value in keys if value is not None])
    return [
        Looked(asked, *held[value]) if value in held else Looked(asked, None)
        for asked, value in zip(values, keys, strict=True)
    ]


def lookup_key(key: str, value: str, org: OrgSettings) -> str | int | None:
    """The value as the org's unique index compares it (resolution.identifier_key), or None when no
    customer can hold it."""
    stored = lookup_value(key, value, org)
    return resolution.identifier_key(key, stored, org.configs) if isinstance(stored, str) else stored


def lookup_value(key: str, value: str, org: OrgSettings) -> str | int | None:
    """The value as add would have stored it, or None when no customer can hold it."""
    configs = org.configs
    if key == "mobile":
        return fields.mobile(value, org.base_country, org.supported_countries, configs.CONF_CLIENT_DEFAULT_COUNTRYCODE_PASSED)
    if key == "email":
        return fields.email(value)
    if key == "external_id":
        return fields.external_id(value, 0, 0)
    return int(value) if value.isdecimal() and value.isascii() and len(value) < 19 else None
