"""Reading one request item into a CustomerInput: lenient parsing, strict validation (spec §2–3)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from patron import limits
from patron.codes import Code
from patron.customers import fields, hints, why
from patron.customers.extra_fields import normalise
from patron.customers.inputs import (  # the item's vocabularies, declared with its shape
    FRAUD_STATUSES,
    ITEM_FIELDS,
    SOURCES,
    SUBSCRIPTION_CHANNELS,
    SUBSCRIPTION_PRIORITIES,
    TYPES,
)
from patron.customers.model import (
    IDENTIFIERS,
    NON_LOYALTY,
    CustomerInput,
    ItemRejected,
    Warnings,
)
from patron.orgs.model import OrgSettings
from patron.orgs.policy import STANDARD_EXTENDED_FIELDS, Configs

INVALID_IDENTIFIER = {"mobile": Code.INVALID_MOBILE, "email": Code.INVALID_EMAIL, "external_id": Code.INVALID_EXTERNAL_ID}
REQUIRED_IDENTIFIER = {"mobile": Code.MOBILE_REQUIRED, "email": Code.EMAIL_REQUIRED, "external_id": Code.EXTERNAL_ID_REQUIRED}
REQUIRED_CONFIG = {
    "mobile": "CONF_USERS_IS_MOBILE_REQUIRED",
    "email": "CONF_USERS_IS_EMAIL_REQUIRED",
    "external_id": "CONF_USERS_IS_EXTERNAL_ID_REQUIRED",
}
FUTURE_TOLERANCE = timedelta(hours=24)
# A channel's meta is stored and answered as JSON, whose encoder gives up far deeper than this;
# no real meta comes close.
META_MAX_DEPTH = 16
# Meta keys become element names in XML answers, so each must be an XML name.
_XML_NAME = re.compile(r"[^\W\d][\w.\-]*")


def listed(value: Any, key: str) -> list[Any]:
    """`{"field": [...]}`, `{"field": {...}}` or a bare list, as a list (JSON and XML shapes alike)."""
    if isinstance(value, dict) and key in value:
        value = value[key]
    if value is None or value == "":
        return []
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return value
    return []


def sent(raw: dict[str, Any], key: str) -> bool:
    """Whether the item gives a value: null, and an empty or blank string (an empty XML
    element), say nothing, as for identifiers."""
    value = raw.get(key)
    return value is not None and not (isinstance(value, str) and not value.strip())


_READ_KEYS = frozenset(ITEM_FIELDS)


def read_item(
    raw: Any, org: OrgSettings, calling_till: str | None, now: datetime, *, registering: bool = True,
    naming: bool = True,
) -> tuple[CustomerInput, Warnings]:
    """Read one item; raises ItemRejected with the item's error code when it cannot stand.
    `calling_till`: where an invalid till falls back to (None in the console); `registering`:
    whether the identifiers a registration requires are required (customer/update names an
    existing customer by any one of them); `naming`: whether the item names its customer by an
    identifier at all (the console's edit names it by id)."""
    if not isinstance(raw, dict):
        raise ItemRejected(Code.NO_VALID_IDENTIFIER)
    if not _READ_KEYS.issuperset(raw):
        for hint in why.unknown_keys(raw, ITEM_FIELDS):
            hints.note(hint)
    warnings = Warnings()
    item = CustomerInput()
    _read_identifiers(raw, org, item, warnings, registering, naming)
    _read_profile(raw, org, calling_till, now, item, warnings)
    _read_extra_fields(raw, org, item, warnings)
    return item, warnings


def _read_identifiers(
    raw: dict[str, Any], org: OrgSettings, item: CustomerInput, warnings: Warnings, registering: bool = True,
    naming: bool = True,
) -> None:
    configs = org.configs
    primary = configs.CONF_REGISTRATION_PRIMARY_KEY
    for name in IDENTIFIERS:
        value = raw.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        normalised = _identifier(name, value, org)
        if normalised is not None:
            setattr(item, name, normalised)
        elif name == primary:
            raise ItemRejected(INVALID_IDENTIFIER[name])
        else:
            warnings.add(INVALID_IDENTIFIER[name])

    if registering:
        require_identifiers(item, configs)
    if naming and all(item.identifier(name) is None for name in IDENTIFIERS):
        raise ItemRejected(Code.NO_VALID_IDENTIFIER)


def require_identifiers(item: CustomerInput, configs: Configs) -> None:
    """Spec §3 rule 2: the item fails with a required identifier's code when it lacks one."""
    primary = configs.CONF_REGISTRATION_PRIMARY_KEY
    for name in IDENTIFIERS:
        required = getattr(configs, REQUIRED_CONFIG[name]) or (
            name == primary and not configs.CONF_ALLOW_REGISTRATION_FROM_ANY_IDENTIFIERS
        )
        if required and item.identifier(name) is None:
            raise ItemRejected(REQUIRED_IDENTIFIER[name])


def stored_identifier(name: str, value: Any, org: OrgSettings) -> str | None:
    """The identifier's stored form, under the org's rules for it; None if it is not valid
    (customer/update_identity's new values are read by the same rules)."""
    return _identifier(name, value, org)


def _identifier(name: str, value: Any, org: OrgSettings) -> str | None:
    """The identifier's stored form, under the org's rules for it; None if it is not valid."""
    configs = org.configs
    if name == "mobile":
        stored = fields.mobile(value, org.base_country, org.supported_countries, configs.CONF_CLIENT_DEFAULT_COUNTRYCODE_PASSED)
        if stored is None:
            hints.note(why.mobile(value, org))
        return stored
    if name == "email":
        return fields.email(value)
    return fields.external_id(value, configs.CONF_CLIENT_EXTERNAL_ID_MIN_LENGTH, configs.CONF_CLIENT_EXTERNAL_ID_MAX_LENGTH)


def _read_profile(
    raw: dict[str, Any], org: OrgSettings, calling_till: str | None, now: datetime, item: CustomerInput,
    warnings: Warnings,
) -> None:
    for name in ("firstname", "lastname"):
        # An empty name is a value: it clears the name.
        if raw.get(name) is not None:
            value = fields.person_name(raw[name])
            if value is None:
                warnings.add(Code.INVALID_FIELD_VALUE, name)
            else:
                setattr(item, name, value)

    if sent(raw, "type"):
        item.type = fields.choice(raw["type"], TYPES)
        if item.type is None:
            # A new customer is LOYALTY by default; an existing one keeps its type, so that a
            # typo never converts and enrols it.
            warnings.add(Code.INVALID_FIELD_VALUE, "type")
    if item.type == NON_LOYALTY and item.mobile is None and item.email is None:
        raise ItemRejected(Code.NON_LOYALTY_WITHOUT_IDENTIFIER)

    if sent(raw, "source"):
        item.source = fields.choice(raw["source"], SOURCES)
        if item.source is None:
            warnings.add(Code.INVALID_FIELD_VALUE, "source")
            item.source = "INSTORE"

    if sent(raw, "accountId"):
        account_id = fields.text(raw["accountId"])
        if account_id is None or len(account_id) > limits.ACCOUNT_ID:
            warnings.add(Code.INVALID_FIELD_VALUE, "accountId")
        else:
            item.account_id = account_id

    if sent(raw, "fraud_status"):
        status = raw["fraud_status"]
        if isinstance(status, dict):
            status = status.get("status")
        item.fraud_status = fields.choice(status, FRAUD_STATUSES)
        if item.fraud_status is None:
            warnings.add(Code.INVALID_FRAUD_STATUS)

    if sent(raw, "registered_on"):
        registered_on = fields.timestamp(raw["registered_on"], org.tz)
        earliest = fields.local_midnight_utc(org.configs.CONF_MIN_REGISTRATION_DATE, org.tz)
        if registered_on is None or registered_on > now + FUTURE_TOLERANCE or registered_on < earliest:
            # Only a registration fails for it: an update ignores registered_on altogether.
            item.registered_on_out_of_range = True
        else:
            item.registered_on = registered_on

    if sent(raw, "updated_on"):
        item.updated_on = fields.timestamp(raw["updated_on"], org.tz)
        if item.updated_on is None:
            warnings.add(Code.INVALID_FIELD_VALUE, "updated_on")

    for name, code in (("registered_till", Code.INVALID_REGISTERED_TILL), ("associated_with", Code.INVALID_ATTRIBUTION_TILL)):
        if sent(raw, name):
            till = fields.text(raw[name])
            till = till.strip() if till else till
            if till and org.till(till) is not None:
                setattr(item, name, till)
            else:
                warnings.add(code)
                setattr(item, name, calling_till)

    if sent(raw, "referral_code"):
        # Referral codes are issued in capitals; a code read out and typed in lower case is the same code.
        item.referral_code = (fields.text(raw["referral_code"]) or "").strip().upper() or None


def _read_extra_fields(raw: dict[str, Any], org: OrgSettings, item: CustomerInput, warnings: Warnings) -> None:
    for entry in listed(raw.get("custom_fields"), "field"):
        name = fields.text(entry.get("name")) if isinstance(entry, dict) else None
        declared = org.custom_fields.get(name.strip().lower()) if name else None
        value = normalise(declared, entry.get("value"), org.tz) if declared else None
        if declared is None or value is None:
            warnings.add(Code.INVALID_CUSTOM_FIELD)
            hints.note(why.extra_field("custom", name and name.strip(), declared, (f.name for f in org.custom_fields.values())))
        else:
            item.custom_fields[declared.name] = value

    for entry in listed(raw.get("extended_fields"), "field"):
        name = fields.text(entry.get("name")) if isinstance(entry, dict) else None
        key = name.strip().lower() if name else ""
        declared = STANDARD_EXTENDED_FIELDS.get(key) or org.extended_fields.get(key)
        value = normalise(declared, entry.get("value"), org.tz, org.store_codes) if declared else None
        if declared is None or value is None:
            warnings.add(Code.INVALID_EXTENDED_FIELD, name or "")
            known = (f.name for f in (*STANDARD_EXTENDED_FIELDS.values(), *org.extended_fields.values()))
            hints.note(why.extra_field("extended", name and name.strip(), declared, known))
        else:
            item.extended_fields[declared.name] = value

    for field_name, element, reader, target in (
        ("subscriptions", "subscription", _subscription, "subscriptions"),
        ("commChannels", "commChannel", _comm_channel, "comm_channels"),
    ):
        if sent(raw, field_name):
            setattr(item, target, _entries(field_name, listed(raw[field_name], element), reader, warnings))


def _entries(
    field_name: str, entries: list[Any], read: Callable[[Any], dict[str, Any] | None], warnings: Warnings
) -> list[dict[str, Any]]:
    """The readable entries of a list field; each unreadable one is skipped with warning 1024."""
    readable = []
    for entry in entries:
        read_entry = read(entry)
        if read_entry is None:
            warnings.add(Code.INVALID_FIELD_VALUE, field_name)
        else:
            readable.append(read_entry)
    return readable


def _subscription(entry: Any) -> dict[str, Any] | None:
    if not isinstance(entry, dict):
        return None
    channel = fields.choice(entry.get("channel"), SUBSCRIPTION_CHANNELS)
    priority = fields.choice(entry.get("priority"), SUBSCRIPTION_PRIORITIES)
    subscribed = fields.boolean(entry.get("is_subscribed"))
    if channel is None or priority is None or subscribed is None:
        return None
    scope = fields.text(entry.get("scope")) or "all"
    return {"channel": channel, "priority": priority, "scope": scope, "is_subscribed": "1" if subscribed else "0"}


def _comm_channel(entry: Any) -> dict[str, Any] | None:
    if not isinstance(entry, dict):
        return None
    kind, value = fields.text(entry.get("type")), fields.text(entry.get("value"))
    if not kind or not value:
        return None
    channel: dict[str, Any] = {"type": kind.strip().lower(), "value": value.strip()}
    for flag in ("primary", "verified"):
        parsed = fields.boolean(entry.get(flag, False))
        channel[flag] = "true" if parsed else "false"
    meta = entry.get("meta")
    if not _answerable(meta, META_MAX_DEPTH):
        return None
    channel["meta"] = meta if isinstance(meta, dict) else {}
    return channel


def _answerable(value: Any, depth: int) -> bool:
    """Whether `value` can be stored and answered in JSON and XML alike: objects and lists nested
    at most `depth` levels (looking no deeper), every key an XML name, no text holding NUL."""
    if isinstance(value, dict):
        return depth > 0 and all(
            _XML_NAME.fullmatch(key) and _answerable(child, depth - 1) for key, child in value.items()
        )
    if isinstance(value, list):
        return depth > 0 and all(_answerable(child, depth - 1) for child in value)
    return not (isinstance(value, str) and "\x00" in value)
