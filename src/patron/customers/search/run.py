"""Searching an org's customers (customer/search, member-care.md §3, and the console's search box):
a query's conditions turned into the criteria a store runs, and one page of what it finds.

A store is told only what it can compare on its rows: the org's own names are settled here, over
the org file. A slab name becomes the (programme, serial) pairs it names, a store code the codes of
its tills, a registration day of the org the UTC moments it runs between. A condition that can
match nothing (a slab no programme has) answers no customer without asking the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from patron.customers import fields
from patron.customers.model import Customer
from patron.customers.ports import SearchStorage
from patron.customers.search.query import MAX_COUNTED, Attribute, Condition, Operator, Page, SearchQuery, Value
from patron.loyalty.model import Membership
from patron.orgs.model import OrgSettings


@dataclass(frozen=True)
class Registered:
    """registered_on from `since` (included) to `before` (excluded), naive UTC; None: no bound."""

    since: datetime | None = None
    before: datetime | None = None

    def within(self, other: Registered) -> Registered:
        """The moments both hold."""
        since = max((bound for bound in (self.since, other.since) if bound is not None), default=None)
        before = min((bound for bound in (self.before, other.before) if bound is not None), default=None)
        return Registered(since, before)

    @property
    def empty(self) -> bool:
        return self.since is not None and self.before is not None and self.since >= self.before


@dataclass(frozen=True)
class Criteria:
    """A search as a store runs it: the org's customers for whom every part holds.

    `conditions` are on a customer's own values, as read (search.query): identifiers, names, type,
    registered_till, custom fields, and the points of "the" membership; `registered`, `slabs` and
    `tills` are the org's names settled into values; `any_of` (the search box): at least one of
    these conjunctions holds as well.
    """

    org_id: int
    # "The" membership, whose points and slab a customer is shown with (api.present): the default
    # programme's, else the customer's lowest programme's; None: the org has no default programme.
    default_program: int | None
    # Whether the org has programmes besides the default: then a customer may hold a membership of
    # another and none of the default's, and "the" membership is found for each customer.
    several_programs: bool = False
    conditions: tuple[Condition, ...] = ()
    registered: Registered | None = None
    # (programme id, slab serial) of "the" membership.
    slabs: frozenset[tuple[int, int]] | None = None
    # registered_till, exactly: the tills of the stores asked for.
    tills: frozenset[str] | None = None
    any_of: tuple[tuple[Condition, ...], ...] = ()


# One customer found, with its memberships.
Found = tuple[Customer, list[Membership]]


@dataclass(frozen=True)
class SearchResult:
    count: int  # every customer that matches, up to MAX_COUNTED
    start: int
    rows: int  # the page size asked for; `customers` holds at most that many
    customers: tuple[Found, ...]
    # More than MAX_COUNTED customers match: `count` says MAX_COUNTED, "10,000+".
    capped: bool = False


async def search(org: OrgSettings, query: SearchQuery, page: Page, storage: SearchStorage, timeout: float) -> SearchResult:
    """The org's customers meeting every condition of the query: how many, and one page of them,
    within `timeout` seconds (else SearchTimedOut)."""
    return await _run(criteria_of(org, query.conditions), page, storage, timeout)


async def search_box(text: str, org: OrgSettings, page: Page, storage: SearchStorage, timeout: float) -> SearchResult:
    """The console's one search box: the customers whom the text names in any of the ways a person
    types one (box_alternatives)."""
    alternatives = box_alternatives(text, org)
    if not alternatives:
        return SearchResult(0, page.start, page.rows, ())
    criteria = Criteria(org.org_id, _default_program(org), len(org.programs) > 1, any_of=alternatives)
    return await _run(criteria, page, storage, timeout)


async def _run(criteria: Criteria | None, page: Page, storage: SearchStorage, timeout: float) -> SearchResult:
    if criteria is None:
        return SearchResult(0, page.start, page.rows, ())
    async with storage.search_unit(timeout) as unit:
        count, found = await unit.customers.search(criteria, page, MAX_COUNTED)
    return SearchResult(min(count, MAX_COUNTED), page.start, page.rows, tuple(found), capped=count > MAX_COUNTED)


def _default_program(org: OrgSettings) -> int | None:
    default = org.definition.default_program
    return default.id if default else None


def criteria_of(org: OrgSettings, conditions: Iterable[Condition]) -> Criteria | None:
    """The conditions as a store runs them for `org`; None when they can match no customer."""
    kept: list[Condition] = []
    registered: Registered | None = None
    slabs: frozenset[tuple[int, int]] | None = None
    tills: frozenset[str] | None = None
    for condition in conditions:
        if condition.attribute is Attribute.REGISTERED_DATE:
            moments = registered_between(condition, org)
            registered = moments if registered is None else registered.within(moments)
            if registered.empty:
                return None
        elif condition.attribute is Attribute.SLAB:
            named = frozenset(
                (program.id, slab.serial)
                for program in org.programs.values()
                for slab in program.slabs
                if matches(condition, slab.name)
            )
            slabs = named if slabs is None else slabs & named
            if not slabs:
                return None
        elif condition.attribute is Attribute.REGISTERED_STORE:
            named_tills = frozenset(till.code for till in org.tills.values() if matches(condition, till.store.code))
            tills = named_tills if tills is None else tills & named_tills
            if not tills:
                return None
        else:
            kept.append(condition)
    return Criteria(org.org_id, _default_program(org), len(org.programs) > 1, tuple(kept), registered, slabs, tills)


def registered_between(condition: Condition, org: OrgSettings) -> Registered:
    """A registered_date condition, on days of the org's timezone, as the UTC moments it spans."""
    days: list[date] = [value for value in condition.values if isinstance(value, date)]

    def start(day: date) -> datetime:
        return fields.local_midnight_utc(day, org.tz)

    def after(day: date) -> datetime:
        return start(day + timedelta(days=1))

    operator = condition.operator
    if operator is Operator.LESS:
        return Registered(before=start(days[0]))
    if operator is Operator.GREATER:
        return Registered(since=after(days[0]))
    if operator is Operator.RANGE:
        return Registered(start(days[0]), after(days[1]))
    return Registered(start(days[0]), after(days[0]))  # EQUALS: that day


def matches(condition: Condition, name: str) -> bool:
    """Whether one of the org's own names (a slab's, a store's) meets a text condition."""
    values = [value for value in condition.values if isinstance(value, str)]
    folded, operator = name.lower(), condition.operator
    if operator is Operator.EXACT:
        return name == values[0]
    if operator is Operator.STARTS:
        return folded.startswith(values[0].lower())
    if operator is Operator.ENDS:
        return folded.endswith(values[0].lower())
    return folded in {value.lower() for value in values}  # EQUALS, IN


# A user id as the API answers it: digits, fewer than 19 (a bigint).
_MOST_ID_DIGITS = 18


def box_alternatives(text: str, org: OrgSettings) -> tuple[tuple[Condition, ...], ...]:
    """What the search box's text may name, each as conditions that all hold: a user id, a mobile
    in any usual form, an email, an external id exactly as stored (in any case where the org
    matches external ids ignoring case), or names: a first name or a last
    name that starts with it, or, for "first last", a first name starting with the first word and a
    last name starting with the rest. A person types a name with other spaces than it was stored
    with: runs of spaces count as one between first and last."""
    sent = text.strip()
    if not sent or "\x00" in sent:
        return ()
    alternatives: list[tuple[Condition, ...]] = []

    def one(attribute: Attribute, operator: Operator, *values: Value) -> tuple[Condition, ...]:
        return (Condition(attribute, operator, values),)

    if sent.isascii() and sent.isdigit() and len(sent) <= _MOST_ID_DIGITS:
        alternatives.append(one(Attribute.USER_ID, Operator.EQUALS, int(sent)))
    configs = org.configs
    mobile = fields.mobile(sent, org.base_country, org.supported_countries, configs.CONF_CLIENT_DEFAULT_COUNTRYCODE_PASSED)
    if mobile is not None:
        alternatives.append(one(Attribute.MOBILE, Operator.EQUALS, mobile))
    email = fields.email(sent)
    if email is not None:
        alternatives.append(one(Attribute.EMAIL, Operator.EQUALS, email))
    external_id = fields.external_id(sent, 0, 0)
    if external_id is not None:
        # In any case where the org's external ids are (CONF_EXTERNAL_ID_CASE_INSENSITIVE).
        matching = Operator.EQUALS if configs.CONF_EXTERNAL_ID_CASE_INSENSITIVE else Operator.EXACT
        alternatives.append(one(Attribute.EXTERNAL_ID, matching, external_id))
    name = fields.person_name(sent)
    # A name has a letter: digits alone are an id or a mobile, not the start of everyone's name.
    if name and any(char.isalpha() for char in name):
        # A name of several words may be one name ("Mary Ann", "van der Berg") or first and last.
        alternatives.append(one(Attribute.FIRSTNAME, Operator.STARTS, name))
        alternatives.append(one(Attribute.LASTNAME, Operator.STARTS, name))
        first, _, rest = name.partition(" ")
        if rest.strip():
            alternatives.append((
                Condition(Attribute.FIRSTNAME, Operator.STARTS, (first,)),
                Condition(Attribute.LASTNAME, Operator.STARTS, (" ".join(rest.split()),)),
            ))
    return tuple(alternatives)
