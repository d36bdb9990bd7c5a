"""The words of the hints (customers.hints): which rule refused a value, and what would pass it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import phonenumbers

from patron import limits
from patron.codes import Code
from patron.customers import fields
from patron.orgs.model import OrgSettings
from patron.orgs.policy import FieldType

# A caller's key or field name, as a hint quotes it.
_SHOWN = 50


def shown(name: str) -> str:
    return repr(name[:_SHOWN] + ("…" if len(name) > _SHOWN else ""))


def nearest(name: str, known: Iterable[str]) -> str | None:
    """The known name nearest to `name` (any case), as the import names a column's."""
    spellings = {spelling.lower(): spelling for spelling in known}
    found = difflib.get_close_matches(name.lower(), spellings, n=1, cutoff=0.6)
    return spellings[found[0]] if found else None


def mobile(value: Any, org: OrgSettings) -> str:
    """Why a mobile the org's rules refused is not one: no country code (and the config that would
    supply it), a country the org does not take, or not a mobile at all. Never the number itself."""
    configs = org.configs
    raw = fields.identifier_text(value) or ""
    digits = fields.mobile_digits(raw)
    if not digits.isdigit():
        return "mobile: holds characters other than digits, +, spaces, dashes, brackets and dots"
    if not configs.CONF_CLIENT_DEFAULT_COUNTRYCODE_PASSED and fields.mobile(digits, org.base_country, [], True):
        code = phonenumbers.country_code_for_region(org.base_country)
        return (
            f"mobile: {len(digits)} digits without a country code; with +{code} it is a mobile of "
            f"{org.base_country}. Send it with its country code, or set CONF_CLIENT_DEFAULT_COUNTRYCODE_PASSED = true "
            f"in the org file's [configs] to read a number without one as {org.base_country}'s"
        )
    elsewhere = fields.mobile(digits, org.base_country, ["*"], configs.CONF_CLIENT_DEFAULT_COUNTRYCODE_PASSED)
    if elsewhere is not None:
        country = phonenumbers.region_code_for_number(phonenumbers.parse("+" + elsewhere))
        return (
            f"mobile: a mobile of {country}, which is neither the org's base_country ({org.base_country}) nor in its "
            "supported_countries (org file, [org])"
        )
    countries = ", ".join([org.base_country, *org.supported_countries])
    return f"mobile: {len(digits)} digits that are no mobile number of {countries} (a landline, or digits missing or extra)"


def extra_field(kind: str, name: str | None, declared: FieldType | None, known: Iterable[str]) -> str:
    """Why a custom (1017) or extended (91015) field was skipped: which field, which rule."""
    code = int(Code.INVALID_CUSTOM_FIELD if kind == "custom" else Code.INVALID_EXTENDED_FIELD)
    if not name:
        return f"{code}: a {kind} field without a name"
    if declared is None:
        near = nearest(name, known)
        table = "[[custom_fields]]" if kind == "custom" else "[[extended_fields]] or the standard extended fields"
        return f"{code}: {kind} field {shown(name)} is not one of the org file's {table}" + (
            f"; did you mean {near!r}?" if near else ""
        )
    return f"{code}: {kind} field {declared.name!r}: the value is not {rule(declared)}"


def person_name() -> str:
    """The rule of a first or last name (fields.person_name), in words."""
    return f"letters of any script, digits, spaces, hyphens and apostrophes, of at most {limits.NAME} characters"


def rule(kind: FieldType) -> str:
    """A field type's rule, in words."""
    if kind.type == "enum":
        said = "one of " + ", ".join(kind.options)
    elif kind.type == "integer" and (kind.minimum is not None or kind.maximum is not None):
        said = f"a whole number from {kind.minimum if kind.minimum is not None else '…'} to {kind.maximum if kind.maximum is not None else '…'}"
    else:
        said = {
            "string": "text", "integer": "a whole number", "double": "a number", "boolean": "true or false",
            "date": "a date (YYYY-MM-DD)", "datetime": "a date and time (YYYY-MM-DD HH:MM:SS)",
            "country": "an ISO 3166 country code", "language": "a language code", "currency": "an ISO 4217 currency code",
            "store": "a store code of the org",
        }.get(kind.type, kind.type)
    said += f" of at most {kind.max_length} characters"
    return said + (f" matching {kind.regex}" if kind.regex else "")


def unknown_keys(raw: dict[str, Any], known: Iterable[str]) -> list[str]:
    """Keys of an item that nothing reads, each with the nearest field name: ignored, as the API
    family ignores them, but a `first_name` is a firstname lost."""
    known = tuple(known)
    named = set(known)
    hints = []
    for key in raw:
        if isinstance(key, str) and key not in named:
            near = nearest(key, known)
            hints.append(f"item key {shown(key)} is not read and was ignored" + (f"; did you mean {near!r}?" if near else ""))
    return hints
