"""Custom and extended field values: checked against their declared or standard type."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import pycountry

from patron.customers import fields
from patron.orgs.policy import FieldType


_ENUM_ALIASES = {"gender": {"m": "Male", "f": "Female", "o": "Other"}}



@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def normalise(kind: Any, value: Any, tz: ZoneInfo, store_codes: frozenset[str] = frozenset()) -> str | None:
    """The value as stored (text), or None when it does not fit the type."""
    raw = fields.text(value)
    if raw is None:
        flag = fields.boolean(value) if isinstance(value, bool) else None
        if kind.type == "boolean" and flag is not None:
            return "true" if flag else "false"
        return None
    raw = raw.strip()
    if len(raw) > kind.max_length:
        return None
    if kind.regex and not _compiled(kind.regex).fullmatch(raw):
        return None
    checker = _CHECKERS[kind.type]
    return checker(kind, raw, tz, store_codes)


def _string(kind: FieldType, raw: str, tz: ZoneInfo, stores: frozenset[str]) -> str | None:
    return raw


def _integer(kind: FieldType, raw: str, tz: ZoneInfo, stores: frozenset[str]) -> str | None:
    try:
        number = int(raw)
    except ValueError:
        return None
    if (kind.minimum is not None and number < kind.minimum) or (kind.maximum is not None and number > kind.maximum):
        return None
    return str(number)


def _double(kind: FieldType, raw: str, tz: ZoneInfo, stores: frozenset[str]) -> str | None:
    try:
        number = float(raw)
    except ValueError:
        return None
    if number != number or number in (float("inf"), float("-inf")):
        return None
    return raw


def _boolean(kind: FieldType, raw: str, tz: ZoneInfo, stores: frozenset[str]) -> str | None:
    flag = fields.boolean(raw)
    return None if flag is None else ("true" if flag else "false")


def _date(kind: FieldType, raw: str, tz: ZoneInfo, stores: frozenset[str]) -> str | None:
    day = fields.calendar_date(raw)
    return day.isoformat() if day else None


def _datetime(kind: FieldType, raw: str, tz: ZoneInfo, stores: frozenset[str]) -> str | None:
    moment = fields.timestamp(raw, tz)
    return fields.local_text(moment, tz) if moment else None


def _enum(kind: FieldType, raw: str, tz: ZoneInfo, stores: frozenset[str]) -> str | None:
    options = {option.lower(): option for option in kind.options}
    options.update(_ENUM_ALIASES.get(kind.name.lower(), {}))
    return options.get(raw.lower())


def _country(kind: FieldType, raw: str, tz: ZoneInfo, stores: frozenset[str]) -> str | None:
    try:
        country = pycountry.countries.lookup(raw)
    except LookupError:
        return None
    return country.alpha_2


def _language(kind: FieldType, raw: str, tz: ZoneInfo, stores: frozenset[str]) -> str | None:
    language = pycountry.languages.get(alpha_2=raw.lower()) if len(raw) == 2 else None
    return language.alpha_2 if language else None


def _currency(kind: FieldType, raw: str, tz: ZoneInfo, stores: frozenset[str]) -> str | None:
    currency = pycountry.currencies.get(alpha_3=raw.upper()) if len(raw) == 3 else None
    return currency.alpha_3 if currency else None


def _store(kind: FieldType, raw: str, tz: ZoneInfo, stores: frozenset[str]) -> str | None:
    return raw if raw in stores else None


_CHECKERS = {
    "string": _string,
    "integer": _integer,
    "double": _double,
    "boolean": _boolean,
    "date": _date,
    "datetime": _datetime,
    "enum": _enum,
    "country": _country,
    "language": _language,
    "currency": _currency,
    "store": _store,
}
