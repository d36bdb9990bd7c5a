"""Customers and their audit trail: every query scoped by org_id. The rules of the repository are
here, once; each engine's store (store.postgres, store.sqlite) compiles the statements for its
driver and writes what that engine writes its own way (new customers, ids, locks)."""

from __future__ import annotations

import dataclasses
import itertools
import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

import orjson
from sqlalchemy import Select, and_, bindparam, literal_column, or_, select, update
from sqlalchemy.sql.expression import Executable

from patron.codes import Code
from patron.customers.audit import USER_CONTEXT
from patron.customers.model import (
    IDENTIFIERS, Caller, Change, Customer, CustomerFields, IdentifierTaken, LookAlike, NewCustomer,
)
from patron.customers.search.query import Page
from patron.customers.search.run import Criteria
from patron.loyalty.model import Membership
from patron.store.db import named_binds
from patron.store.loyalty import MEMBERSHIP_COLUMNS
from patron.store.schema import customer_audits, customers, memberships
from patron.store.search import SearchStatements
from patron.store.statements import Statement

# Written with every customer and never read back: derived from the customer's external id key.
DERIVED_COLUMNS = ("external_id_skeleton",)
CUSTOMER_COLUMNS = [
    column.name for column in customers.columns if column.name not in ("created_at", "modified_at", *DERIVED_COLUMNS)
]
SELECT_CUSTOMER = select(*(customers.c[name] for name in CUSTOMER_COLUMNS))


STORED_COLUMNS = [*(name for name in CUSTOMER_COLUMNS if name not in ("org_id", "id")), *DERIVED_COLUMNS]
# An update writes every stored column but the event sequence, which only events move on
# (store.events), in the statement that numbers them.
UPDATED_COLUMNS = [name for name in STORED_COLUMNS if name != "event_sequence"]
JSON_COLUMNS = ("custom_fields", "extended_fields", "subscriptions", "comm_channels")
# Named fields are kept as [name, value] pairs: a JSONB object would not keep their order.
_NAMED_FIELDS = ("custom_fields", "extended_fields")
# Customer ids start here (PostgreSQL's identity; SQLite's max(id) + 1 on an empty table).
FIRST_CUSTOMER_ID = 100001


def customer_of(row: Mapping[str, Any]) -> Customer:
    values = {name: row[name] for name in CUSTOMER_COLUMNS}
    for name in _NAMED_FIELDS:
        values[name] = dict(values[name])
    return Customer(**values)


def stored_form(columns: list[str] | tuple[str, ...]) -> Callable[[CustomerFields], list[Any]]:
    """Reads these columns of a customer as the database is given them (named fields as pairs)."""
    read, named = operator.attrgetter(*columns), [columns.index(name) for name in _NAMED_FIELDS]

    def values(customer: CustomerFields) -> list[Any]:
        stored = list(read(customer))
        for index in named:
            stored[index] = list(stored[index].items())
        return stored

    return values


_stored_values = stored_form(STORED_COLUMNS)


def stored_values(customer: CustomerFields) -> dict[str, Any]:
    return dict(zip(STORED_COLUMNS, _stored_values(customer)))


def audit_changes(changes: list[Change]) -> str:
    """Changes as the audit log keeps them, as JSON text: [{"field", "previous", "current"}, ...]."""
    return orjson.dumps(changes).decode()


def audit_warnings(warnings: Sequence[Code]) -> list[int] | None:
    """The warning codes an audit record keeps: null when there are none, so that only the
    records with warnings are in the index the console counts them by."""
    return [int(code) for code in warnings] or None


# Who registered each customer, and when: one statement may hold several requests' customers.
REGISTERED_BY = ("request_id", "till_code", "api_client_key", *(f"context_{key}" for key in USER_CONTEXT))


def audit_context(caller: Caller) -> dict[str, Any]:
    return {
        "request_id": caller.request_id,
        "till_code": caller.till_code,
        "api_client_key": caller.api_client_key,
        **{f"context_{key}": caller.user_context.get(key) for key in USER_CONTEXT},
        "console_user": caller.console_user,
        "reason": caller.reason,
    }


# The column an identifier is found by: an external id by its key (customers.resolution.identifier_key),
# which the org's unique index holds; every look-up by an identifier is given keys.
KEY_COLUMNS = {"external_id": "external_id_key"}


def key_column(field: str) -> str:
    return KEY_COLUMNS.get(field, field)


FIND_BY = {
    field: SELECT_CUSTOMER.where(
        customers.c.org_id == bindparam("org_id"), customers.c[key_column(field)] == bindparam("value")
    )
    for field in ("id", "mobile", "email", "external_id", "referral_code")
}


# Customers with their memberships in one statement: one row per membership, or one row with
# no membership, ordered by customer and programme.
WITH_MEMBERSHIPS = select(
    *(customers.c[name] for name in CUSTOMER_COLUMNS),
    *(memberships.c[name].label(f"m_{name}") for name in MEMBERSHIP_COLUMNS),
).select_from(
    customers.outerjoin(
        memberships, and_(memberships.c.org_id == customers.c.org_id, memberships.c.customer_id == customers.c.id)
    )
)
LOOKUP_FIELDS = ("id", "mobile", "email", "external_id")
FIND_WITH_MEMBERSHIPS = {
    field: WITH_MEMBERSHIPS.where(
        customers.c.org_id == bindparam("org_id"), customers.c[key_column(field)] == bindparam("value")
    ).order_by(memberships.c.program_id)
    for field in LOOKUP_FIELDS
}


def look_alikes_statement(among: Any) -> Select[Any]:
    """The org's external ids of some skeletons (`among`: the engine's test of a skeleton against
    the list given as :skeletons, in a form its planner looks each up in the skeleton's partial index by)."""
    skeleton = customers.c.external_id_skeleton
    return select(customers.c.id, customers.c.external_id_key, skeleton).where(
        customers.c.org_id == bindparam("org_id"), among(skeleton)
    )


AUDITS_OF = (
    select(customer_audits)
    .where(customer_audits.c.org_id == bindparam("org_id"), customer_audits.c.customer_id == bindparam("customer_id"))
    # Newest first. A customer's CREATE record is its oldest whatever its id: on Citus it may be
    # written on the org's worker (ids from that worker's range), its updates on the coordinator.
    .order_by((customer_audits.c.event_type == literal_column("'CREATE'")).asc(), customer_audits.c.id.desc())
    .limit(bindparam("limit"))
)
UPDATE_CUSTOMER = (
    update(customers)
    .where(customers.c.org_id == bindparam("key_org_id"), customers.c.id == bindparam("key_id"))
    .values(named_binds((*UPDATED_COLUMNS, "modified_at")))
)
INSERTED_CUSTOMER = named_binds(("org_id", *STORED_COLUMNS, "created_at", "modified_at"))


def _holders_statement(names: tuple[str, ...], lock: bool) -> Select[Any]:
    statement = SELECT_CUSTOMER.where(
        customers.c.org_id == bindparam("org_id"), or_(*(customers.c[key_column(name)] == bindparam(name) for name in names))
    )
    if lock:
        # Locked until the unit ends: an update is made to the customer as it is now, not to a
        # copy that a concurrent request is replacing (which would lose that request's change).
        # In id order, so that units locking the same customers take them in one order and
        # cannot deadlock.
        statement = statement.order_by(customers.c.id).with_for_update()
    return statement


def locked_statement(lock: bool) -> Select[Any]:
    """A customer by id, locked until the unit ends where the engine locks rows (an identity change
    is made to the customer as it is now)."""
    statement = FIND_BY["id"]
    return statement.with_for_update() if lock else statement


def holders_statements(lock: bool) -> dict[tuple[str, ...], Select[Any]]:
    """The customers holding some identifiers, by which identifiers are sent."""
    return {
        names: _holders_statement(names, lock)
        for size in range(1, len(IDENTIFIERS) + 1)
        for names in itertools.combinations(IDENTIFIERS, size)
    }


def memberships_of(rows: list[Mapping[str, Any]]) -> list[Membership]:
    """The memberships on one customer's rows of a look-up joined to them (none: one row of nulls)."""
    return [
        Membership(**{name: row[f"m_{name}"] for name in MEMBERSHIP_COLUMNS})
        for row in rows
        if row["m_program_id"] is not None
    ]


def held_by_value(rows: list[Mapping[str, Any]], field: str) -> dict[str | int, tuple[Customer, list[Membership]]]:
    """Rows of customers with their memberships, ordered by customer: each customer by its value
    of `field` (an external id by its key)."""
    column = key_column(field)
    held: dict[str | int, tuple[Customer, list[Membership]]] = {}
    for _, customer_rows in itertools.groupby(rows, key=lambda row: row["id"]):
        first, *rest = customer_rows
        held[first[column]] = (customer_of(first), memberships_of([first, *rest]))
    return held


@dataclasses.dataclass(frozen=True)
class Lookup:
    """One request's look-up: an org's customers by one identifier, one value or several."""

    org_id: int
    field: str
    values: tuple[str | int, ...]


@dataclasses.dataclass(frozen=True)
class Registration:
    """One request's new customers, with who registered them and when: what one write may carry
    together with other requests' registrations of the same org."""

    new_customers: list[NewCustomer]
    caller: Caller
    at: datetime


class CustomerStore:
    """The customers of the orgs, read and written inside one unit of work (`conn`). A subclass
    names its engine's statement kind, how it inserts a customer and an audit record (ids), and
    whether an update locks the customers it reads (`unique_violations`: what its driver raises when
    a unique index refuses a write)."""

    unique_violations: ClassVar[tuple[type[Exception], ...]]
    _holders: ClassVar[dict[tuple[str, ...], Statement]]
    _insert: ClassVar[Statement]
    _insert_audit: ClassVar[Statement]
    _update: ClassVar[Statement]
    _find_by: ClassVar[dict[str, Statement]]
    _locked: ClassVar[Statement]
    _find_with_memberships: ClassVar[dict[str, Statement]]
    _audits_of: ClassVar[Statement]
    _look_alikes: ClassVar[Statement]
    # The engine's statement kind: a search's statements are compiled for each query's shape.
    _statement: ClassVar[type[Statement]]

    def __init_subclass__(
        cls,
        *,
        statement: type[Statement],
        insert_customer: Executable,
        insert_audit: Executable,
        look_alikes: Executable,
        lock_holders: bool,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls._holders = {names: statement(held) for names, held in holders_statements(lock_holders).items()}
        cls._insert = statement(insert_customer)
        cls._insert_audit = statement(insert_audit)
        cls._update = statement(UPDATE_CUSTOMER)
        cls._find_by = {field: statement(found) for field, found in FIND_BY.items()}
        cls._locked = statement(locked_statement(lock_holders))
        cls._find_with_memberships = {field: statement(found) for field, found in FIND_WITH_MEMBERSHIPS.items()}
        cls._audits_of = statement(AUDITS_OF)
        cls._look_alikes = statement(look_alikes)
        cls._statement = statement

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def holders(self, org_id: int, identifiers: dict[str, str]) -> dict[str, Customer]:
        """The customers holding these identifiers, given as keys (resolution.identifier_keys)."""
        if not identifiers:
            return {}
        names = tuple(name for name in IDENTIFIERS if name in identifiers)
        rows = await self._holders[names].fetch(self.conn, {"org_id": org_id, **identifiers})
        found = [customer_of(row) for row in rows]
        return {
            name: customer
            for name, value in identifiers.items()
            for customer in found
            if customer.key(name) == value
        }

    async def look_alikes(self, org_id: int, skeletons: list[str]) -> list[LookAlike]:
        values = self.skeleton_list(list(dict.fromkeys(skeletons)))
        rows = await self._look_alikes.fetch(self.conn, {"org_id": org_id, "skeletons": values})
        return [LookAlike(row["id"], row["external_id_key"], row["external_id_skeleton"]) for row in rows]

    async def insert(self, customer: CustomerFields, at: datetime) -> Customer:
        values = {"org_id": customer.org_id, **stored_values(customer), "created_at": at, "modified_at": at}
        try:
            (row,) = await self._insert.fetch(self.conn, values)
        except self.unique_violations as exc:
            if not self.unique_violation(exc):
                raise
            raise IdentifierTaken(str(exc)) from exc
        return customer.stored(row["id"])

    async def update(self, customer: Customer, at: datetime) -> None:
        values = {**stored_values(customer), "modified_at": at, "key_org_id": customer.org_id, "key_id": customer.id}
        try:
            await self._update.execute(self.conn, values)
        except self.unique_violations as exc:
            if not self.unique_violation(exc):
                raise
            raise IdentifierTaken(str(exc)) from exc

    @staticmethod
    def skeleton_list(skeletons: list[str]) -> Any:
        """The skeletons as look_alikes_statement's :skeletons takes them on this engine."""
        return skeletons

    @staticmethod
    def unique_violation(exc: Exception) -> bool:
        """Whether an error of `unique_violations` is a unique index's refusal (a race for an
        identifier, resolved again) rather than a fault of the write."""
        return True

    async def record_audit(
        self, caller: Caller, customer: Customer, event_type: str, changes: list[Change], at: datetime,
        warnings: Sequence[Code] = (),
    ) -> None:
        values: dict[str, Any] = {
            "org_id": customer.org_id,
            "customer_id": customer.id,
            "created_at": at,
            "event_type": event_type,
            # The JSON column takes values: the audit's one JSON text, read back (an update is rare).
            "changes": orjson.loads(audit_changes(changes)),
            **audit_context(caller),
            "warnings": audit_warnings(warnings),
        }
        await self._insert_audit.execute(self.conn, values)

    async def find(self, org_id: int, field: str, value: str | int) -> Customer | None:
        rows = await self._find_by[field].fetch(self.conn, {"org_id": org_id, "value": value})
        return customer_of(rows[0]) if rows else None

    async def locked(self, org_id: int, customer_id: int) -> Customer | None:
        rows = await self._locked.fetch(self.conn, {"org_id": org_id, "value": customer_id})
        return customer_of(rows[0]) if rows else None

    async def find_with_memberships(
        self, org_id: int, field: str, value: str | int
    ) -> tuple[Customer, list[Membership]] | None:
        rows = await self._find_with_memberships[field].fetch(self.conn, {"org_id": org_id, "value": value})
        if not rows:
            return None
        return customer_of(rows[0]), memberships_of(rows)

    async def find_many_with_memberships(
        self, org_id: int, field: str, values: list[str | int]
    ) -> dict[str | int, tuple[Customer, list[Membership]]]:
        """The customers holding these values of one identifier, with their memberships, by value:
        one look-up each (an engine with a cheaper way says so)."""
        found = {value: await self.find_with_memberships(org_id, field, value) for value in values}
        return {value: held for value, held in found.items() if held is not None}

    async def audits(self, org_id: int, customer_id: int, limit: int = 100) -> list[dict[str, Any]]:
        rows = await self._audits_of.fetch(self.conn, {"org_id": org_id, "customer_id": customer_id, "limit": limit})
        return [dict(row) for row in rows]

    async def search(self, criteria: Criteria, page: Page, most: int) -> tuple[int, list[tuple[Customer, list[Membership]]]]:
        """How many of the org's customers meet the criteria (up to `most` + 1), and one page of them
        with their memberships, newest registration first (the statements: store.search)."""
        statements = SearchStatements(self._statement, criteria, page, CUSTOMER_COLUMNS, most)
        count, rows = await statements.run(self.conn, page)
        return count, list(held_by_value(rows, "id").values())
