"""Reading a customer search query (`GET /v1.1/customer/search`, member-care.md §3) into typed conditions.

`q` holds one or more conditions joined by `&`, each `ATTRIBUTE:OPERATOR:VALUE`. The module reads
the already URL-decoded text; it knows nothing of HTTP or SQL. What each attribute can be asked,
and how its values are read, is the table ATTRIBUTES below (custom fields: CUSTOM_FIELD_KINDS).

Operators, whatever the attribute:

- EQUALS: equal to the value; on text, ignoring case.
- EXACT: equal to the value, case and all (on numbers and identifiers stored in one case, as EQUALS).
- STARTS, ENDS: the stored text starts (ends) with the value, ignoring case.
- LESS, GREATER: strictly below (above) the value.
- RANGE `low;high`: from low to high, both included.
- IN `a;b;c`: EQUALS one of the values.

A condition's values are read as the add path stores them, so that any spelling the add path
accepts finds the customer: a mobile in any usual form becomes its E.164 digits, an email is
lower-cased, a `type` is LOYALTY or NON_LOYALTY. A value's Python type tells the store how to
compare: str as text, int and float as numbers, date as a day, datetime as a local time.

A search's cost is bounded before it runs, since one search shares the database with every till:
identical conditions are merged; at most MAX_SCANNING conditions may read every customer of the
org (those no index serves: SCANS_EVERY_CUSTOMER); an ENDS value is at most MAX_SUFFIX characters
(LIKE '%suffix' costs up to its length times a stored value's length on each row); matches are
counted up to MAX_COUNTED and paged through only that far. What is left is bounded by the search's
deadline (customers.search.run).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum, StrEnum

from patron.codes import HOLDS_NUL
from patron.customers import fields
from patron.customers.extra_fields import normalise
from patron.customers.inputs import TYPES
from patron.customers.reading import stored_identifier
from patron.orgs.model import OrgSettings
from patron.orgs.policy import FieldType

MAX_CONDITIONS = 10
MAX_VALUE = 200
MAX_SUFFIX = 32
MAX_SCANNING = 3
# Matches are counted up to here: a count past it is answered as MAX_COUNTED, "10,000+".
MAX_COUNTED = 10_000
DEFAULT_START = 0
DEFAULT_ROWS = 10
MAX_ROWS = 100
# A refused condition is named in the answer; a longer one is cut there, not to echo kilobytes back.
_ECHOED = 250
# The stores keep points, offsets and integer fields in 64 bits.
_LARGEST = 2**63 - 1

Value = str | int | float | date | datetime


class SearchRefused(ValueError):
    """A query that cannot be read; `message` names the offending condition as sent (→ a 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SearchTimedOut(Exception):
    """The search did not finish within its deadline, and the database has stopped working on it."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the search did not finish within {seconds:g} s")
        self.seconds = seconds
        self.message = (
            f"the search did not finish within {seconds:g} s and was stopped: narrow it with a condition an index"
            " serves (mobile, email, external_id, firstname or lastname EQUALS, EXACT, STARTS or IN, registered_date)"
        )


class Operator(StrEnum):
    EQUALS = "EQUALS"
    EXACT = "EXACT"
    STARTS = "STARTS"
    ENDS = "ENDS"
    LESS = "LESS"
    GREATER = "GREATER"
    RANGE = "RANGE"
    IN = "IN"


class Attribute(Enum):
    """A standard attribute. A plain Enum, not a str one: a Condition's attribute that is a str
    is a custom field's name, and the two must never be mistaken for each other."""

    MOBILE = "mobile"
    EMAIL = "email"
    EXTERNAL_ID = "external_id"
    FIRSTNAME = "firstname"
    LASTNAME = "lastname"
    REGISTERED_DATE = "registered_date"
    LOYALTY_POINTS = "loyalty_points"
    LIFETIME_POINTS = "lifetime_points"
    SLAB = "slab"
    REGISTERED_STORE = "registered_store"
    REGISTERED_TILL = "registered_till"
    TYPE = "type"
    # Not in `q` (ATTRIBUTES does not name it): only the console's search box asks for a user id.
    USER_ID = "user_id"


@dataclass(frozen=True)
class Condition:
    """One condition: a standard Attribute, or a custom field by its declared name (str)."""

    attribute: Attribute | str
    operator: Operator
    # One value; two for RANGE (low, high); one or more for IN, without repeats.
    values: tuple[Value, ...]


@dataclass(frozen=True)
class SearchQuery:
    """Every condition holds for a customer found: they are joined by AND."""

    conditions: tuple[Condition, ...]


# The attributes an index serves (store.search, migration 0006), for the operators that use it.
_INDEXED = frozenset({
    Attribute.MOBILE, Attribute.EMAIL, Attribute.EXTERNAL_ID, Attribute.FIRSTNAME, Attribute.LASTNAME,
    Attribute.REGISTERED_DATE, Attribute.USER_ID,
})  # fmt: skip


def scans_every_customer(condition: Condition) -> bool:
    """Whether no index serves the condition, so that it reads every customer of the org: a custom
    field, a suffix, and the attributes kept without an index (type, points, slab, store, till)."""
    return condition.operator is Operator.ENDS or condition.attribute not in _INDEXED


@dataclass(frozen=True)
class Page:
    start: int
    rows: int


class Kind(Enum):
    """What can be asked of an attribute: its kind names its operators (OPERATORS)."""

    TEXT = "text"
    NUMBER = "number"
    DAY = "day"
    MOBILE = "mobile"
    CHOICE = "choice"
    # A custom field of a number or date type: stored as text, so searched as text too, and ordered.
    ORDERED_FIELD = "ordered field"


EQUALS, EXACT, STARTS, ENDS = Operator.EQUALS, Operator.EXACT, Operator.STARTS, Operator.ENDS
LESS, GREATER, RANGE, IN = Operator.LESS, Operator.GREATER, Operator.RANGE, Operator.IN
OPERATORS: dict[Kind, tuple[Operator, ...]] = {
    Kind.TEXT: (EQUALS, EXACT, STARTS, ENDS, IN),
    Kind.NUMBER: (EQUALS, EXACT, LESS, GREATER, RANGE, IN),
    # A registration date is a moment: "that day" is EQUALS, and a list of days is no use.
    Kind.DAY: (EQUALS, LESS, GREATER, RANGE),
    # Stored as E.164 digits, so a prefix (country code first) is a useful search and a suffix is not.
    Kind.MOBILE: (EQUALS, EXACT, STARTS, IN),
    # Two words, LOYALTY and NON_LOYALTY: a piece of one finds nothing the whole word would not.
    Kind.CHOICE: (EQUALS, IN),
    Kind.ORDERED_FIELD: (EQUALS, EXACT, STARTS, ENDS, IN, LESS, GREATER, RANGE),
}
_PIECE = frozenset({Operator.STARTS, Operator.ENDS})


@dataclass(frozen=True)
class Reader:
    """Reads one value of a condition as sent; None when it does not fit."""

    read: Callable[[str, OrgSettings], Value | None]
    what: str  # completes "VALUE is not ..."


@dataclass(frozen=True)
class Rule:
    kind: Kind
    # A whole value, read as the add path stores it: EQUALS, EXACT, IN and the bounds of LESS, GREATER, RANGE.
    whole: Reader
    # A piece of a stored value, for STARTS and ENDS: no reader of whole values accepts a piece.
    piece: Reader | None = None


def _trimmed(raw: str, org: OrgSettings) -> str | None:
    return fields.identifier_text(raw) or None


def _lower_trimmed(raw: str, org: OrgSettings) -> str | None:
    # Emails are stored lower-cased (fields.email), so a piece of one is searched in lower case.
    text = fields.identifier_text(raw)
    return text.lower() if text else None


def _mobile(raw: str, org: OrgSettings) -> str | None:
    return stored_identifier("mobile", raw, org)


def _mobile_digits(raw: str, org: OrgSettings) -> str | None:
    # A prefix is no whole number for fields.mobile to check: only the noise it strips is taken
    # away, and digits of other scripts read, as it does.
    text = fields.identifier_text(raw)
    digits = fields.mobile_digits(text) if text else ""
    return digits if digits.isdigit() and len(digits) <= 17 else None


def _email(raw: str, org: OrgSettings) -> str | None:
    return stored_identifier("email", raw, org)


def _external_id(raw: str, org: OrgSettings) -> str | None:
    return stored_identifier("external_id", raw, org)


def _name(raw: str, org: OrgSettings) -> str | None:
    return fields.person_name(raw) or None


_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")


def _whole_number(raw: str, org: OrgSettings | None = None) -> int | None:
    # ASCII digits only: int() would also take "1_000" and digits of other scripts.
    text = raw.strip()
    if not _WHOLE_NUMBER.fullmatch(text):
        return None
    number = int(text)
    return number if abs(number) <= _LARGEST else None


# The days whose local midnight is a moment in every timezone (fields.EARLIEST_TIME, LATEST_TIME).
_FIRST_DAY, _LAST_DAY = fields.EARLIEST_TIME.date(), fields.LATEST_TIME.date()


def _day(raw: str, org: OrgSettings) -> date | None:
    day = fields.calendar_date(raw)
    return day if day is not None and _FIRST_DAY <= day <= _LAST_DAY else None


def _type(raw: str, org: OrgSettings) -> str | None:
    return fields.choice(raw, TYPES)


TEXT = Reader(_trimmed, "text")
NAME = Reader(_name, "a name")
ATTRIBUTES: dict[Attribute, Rule] = {
    Attribute.MOBILE: Rule(Kind.MOBILE, Reader(_mobile, "a mobile number the org accepts"),
                           Reader(_mobile_digits, "the digits of a mobile number")),
    Attribute.EMAIL: Rule(Kind.TEXT, Reader(_email, "an email address"), Reader(_lower_trimmed, "text")),
    Attribute.EXTERNAL_ID: Rule(Kind.TEXT, Reader(_external_id, "an external id the org accepts"), TEXT),
    Attribute.FIRSTNAME: Rule(Kind.TEXT, NAME, NAME),
    Attribute.LASTNAME: Rule(Kind.TEXT, NAME, NAME),
    Attribute.REGISTERED_DATE: Rule(Kind.DAY, Reader(_day, "a date, YYYY-MM-DD")),
    Attribute.LOYALTY_POINTS: Rule(Kind.NUMBER, Reader(_whole_number, "a whole number")),
    Attribute.LIFETIME_POINTS: Rule(Kind.NUMBER, Reader(_whole_number, "a whole number")),
    # Slabs, stores and tills are not checked against the org: a till since removed from the org
    # file still registered its customers.
    Attribute.SLAB: Rule(Kind.TEXT, TEXT, TEXT),
    Attribute.REGISTERED_STORE: Rule(Kind.TEXT, TEXT, TEXT),
    Attribute.REGISTERED_TILL: Rule(Kind.TEXT, TEXT, TEXT),
    Attribute.TYPE: Rule(Kind.CHOICE, Reader(_type, "LOYALTY or NON_LOYALTY")),
}  # fmt: skip
_STANDARD = {attribute.value: attribute for attribute in ATTRIBUTES}


def _as_stored(field: FieldType) -> Callable[[str, OrgSettings], str | None]:
    """A custom field's value as the add path stores it (extra_fields.normalise): text."""
    return lambda raw, org: normalise(field, raw, org.tz)


def _as_integer(field: FieldType) -> Callable[[str, OrgSettings], int | None]:
    def read(raw: str, org: OrgSettings) -> int | None:
        stored = normalise(field, raw, org.tz)
        return _whole_number(stored) if stored is not None else None

    return read


def _as_double(field: FieldType) -> Callable[[str, OrgSettings], float | None]:
    # Stored as sent ("1.50"), so only a number compares equal to "1.5".
    def read(raw: str, org: OrgSettings) -> float | None:
        stored = normalise(field, raw, org.tz)
        return float(stored) if stored is not None else None

    return read


def _as_date(field: FieldType) -> Callable[[str, OrgSettings], date | None]:
    def read(raw: str, org: OrgSettings) -> date | None:
        stored = normalise(field, raw, org.tz)
        return date.fromisoformat(stored) if stored is not None else None

    return read


def _as_local_time(field: FieldType) -> Callable[[str, OrgSettings], datetime | None]:
    # Stored as the org's local time ("YYYY-MM-DD HH:MM:SS"): compared in that same time.
    def read(raw: str, org: OrgSettings) -> datetime | None:
        stored = normalise(field, raw, org.tz)
        return datetime.fromisoformat(stored) if stored is not None else None

    return read


# A custom field's declared type (orgs.policy.FieldKind) → its kind, and how a whole value is read.
CUSTOM_FIELD_KINDS: dict[str, tuple[Kind, Callable[[FieldType], Callable[[str, OrgSettings], Value | None]], str]] = {
    "string": (Kind.TEXT, _as_stored, "a value of the field"),
    "enum": (Kind.TEXT, _as_stored, "one of the field's options"),
    "boolean": (Kind.TEXT, _as_stored, "true or false"),
    "integer": (Kind.ORDERED_FIELD, _as_integer, "a whole number"),
    "double": (Kind.ORDERED_FIELD, _as_double, "a number"),
    "date": (Kind.ORDERED_FIELD, _as_date, "a date, YYYY-MM-DD"),
    "datetime": (Kind.ORDERED_FIELD, _as_local_time, "a date and time"),
}


def _custom_rule(field: FieldType) -> Rule:
    kind, reader_of, what = CUSTOM_FIELD_KINDS[field.type]
    return Rule(kind, Reader(reader_of(field), what), TEXT)


def read_query(q: str, org: OrgSettings) -> SearchQuery:
    """The conditions of `q` (URL-decoded) for `org`; raises SearchRefused naming the first that
    cannot be read."""
    if not q or not q.strip():
        raise SearchRefused("q is empty: give one or more ATTRIBUTE:OPERATOR:VALUE conditions joined by &")
    if "\x00" in q:
        raise SearchRefused(f"q {HOLDS_NUL}")
    sent = q.split("&")
    if len(sent) > MAX_CONDITIONS:
        raise SearchRefused(f"q holds {len(sent)} conditions; at most {MAX_CONDITIONS} are allowed")
    conditions = merged(_condition(condition, org) for condition in sent)
    scanning = [condition for condition in conditions if scans_every_customer(condition)]
    if len(scanning) > MAX_SCANNING:
        raise SearchRefused(
            f"q holds {len(scanning)} conditions that read every customer (custom fields, ENDS, type, points, slab,"
            f" registered_store, registered_till); at most {MAX_SCANNING} are allowed: add or keep one an index serves"
        )
    return SearchQuery(conditions)


def merged(conditions: Iterable[Condition]) -> tuple[Condition, ...]:
    """The conditions without repeats: one that asks what another already asks (the same attribute,
    operator and values, in any case where the operator ignores case) is asked once."""
    kept: dict[tuple[object, ...], Condition] = {}
    for condition in conditions:
        kept.setdefault(_asks(condition), condition)
    return tuple(kept.values())


def _asks(condition: Condition) -> tuple[object, ...]:
    folds = condition.operator is not Operator.EXACT
    values = tuple(value.lower() if folds and isinstance(value, str) else value for value in condition.values)
    if condition.operator is Operator.IN:
        values = tuple(sorted(set(values), key=repr))
    attribute = condition.attribute.lower() if isinstance(condition.attribute, str) else condition.attribute
    return attribute, condition.operator, values


def _condition(sent: str, org: OrgSettings) -> Condition:
    def refuse(reason: str) -> SearchRefused:
        echoed = sent if len(sent) <= _ECHOED else sent[:_ECHOED] + "…"
        return SearchRefused(f'"{echoed}": {reason}')

    if not sent.strip():
        raise refuse("the condition is empty: an & too many")
    # Only the first two colons separate: a value may hold colons of its own (a time).
    parts = sent.split(":", 2)
    if len(parts) != 3:
        raise refuse("write ATTRIBUTE:OPERATOR:VALUE")
    name, operator_name, value = parts[0].strip(), parts[1].strip().upper(), parts[2]

    attribute, rule = _attribute(name, org)
    if rule is None:
        raise refuse(f"unknown attribute {name}")
    if operator_name not in Operator.__members__:
        raise refuse(f"unknown operator {parts[1].strip()}")
    operator = Operator[operator_name]
    allowed = OPERATORS[rule.kind]
    if operator not in allowed:
        raise refuse(f"{name} takes {', '.join(allowed)}; not {operator}")
    if not value.strip():
        raise refuse("the value is empty")
    if len(value) > MAX_VALUE:
        raise refuse(f"the value is longer than {MAX_VALUE} characters")
    if operator is Operator.ENDS and len(value.strip()) > MAX_SUFFIX:
        raise refuse(f"an ENDS value is at most {MAX_SUFFIX} characters")

    reader = rule.piece if operator in _PIECE else rule.whole
    assert reader is not None  # every kind with STARTS or ENDS has a reader of pieces
    values = []
    for one in _split(value, operator, refuse):
        read = reader.read(one, org)
        if read is None:
            raise refuse(f"{one.strip()} is not {reader.what}")
        # IN a;a is IN a; a RANGE keeps both its bounds, even equal ones.
        if operator is Operator.RANGE or read not in values:
            values.append(read)
    if operator is Operator.RANGE and values[0] > values[-1]:  # type: ignore[operator]
        raise refuse(f"RANGE takes low;high, and {values[0]} is above {values[-1]}")
    return Condition(attribute, operator, tuple(values))


def _attribute(name: str, org: OrgSettings) -> tuple[Attribute | str, Rule | None]:
    """A standard attribute, whatever its case; else a custom field of the org, as it declares it.
    A custom field named like a standard attribute is never searched: the standard one wins."""
    folded = name.lower()
    standard = _STANDARD.get(folded)
    if standard is not None:
        return standard, ATTRIBUTES[standard]
    # OrgSettings keys its custom fields lower-cased, as the add path matches their names.
    field = org.custom_fields.get(folded)
    if field is None:
        return name, None
    return field.name, _custom_rule(field)


def _split(value: str, operator: Operator, refuse: Callable[[str], SearchRefused]) -> list[str]:
    if operator is Operator.RANGE:
        bounds = value.split(";")
        if len(bounds) != 2 or not all(bound.strip() for bound in bounds):
            raise refuse("RANGE takes low;high")
        return bounds
    if operator is Operator.IN:
        choices = value.split(";")
        if not all(choice.strip() for choice in choices):
            raise refuse("IN takes a;b;c, none of them empty")
        return choices
    return [value]


def read_page(start: str | None, rows: str | None) -> Page:
    """The page asked for: `start` (default 0) and `rows` (default 10, at most 100), whole numbers
    0 or more. `rows=0` answers only the count."""
    first = DEFAULT_START if start is None else _page_number("start", start)
    size = DEFAULT_ROWS if rows is None else _page_number("rows", rows)
    if size > MAX_ROWS:
        raise SearchRefused(f"rows is {size}; at most {MAX_ROWS}")
    if first >= MAX_COUNTED:
        raise SearchRefused(f"start is {first}; a search pages through its first {MAX_COUNTED} matches: narrow it")
    return Page(first, size)



_PAGE_NUMBER = re.compile(r"[0-9]+")


def _page_number(name: str, sent: str) -> int:
    number = _whole_number(sent) if _PAGE_NUMBER.fullmatch(sent) else None
    if number is None:
        raise SearchRefused(f"{name} must be a whole number, 0 or more; not {sent[:_ECHOED]}")
    return number
