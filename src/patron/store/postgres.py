"""PostgreSQL's store (Citus's too): new customers in one statement (a function Citus delegates to
the org's worker), look-ups of many values in one, updates that lock the customers they read, and
concurrent requests of an org sharing statements (store.shared)."""

from __future__ import annotations

import itertools
import operator
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import ARRAY, BigInteger, Text, bindparam, func, insert, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from patron.customers.model import Caller, LookAlike, NewCustomer
from patron.customers.search.query import SearchTimedOut
from patron.store import customers as customers_module
from patron.store.console import PgConsole
from patron.store.customers import (
    CUSTOMER_COLUMNS,
    INSERTED_CUSTOMER,
    JSON_COLUMNS,
    LOOKUP_FIELDS,
    REGISTERED_BY,
    STORED_COLUMNS,
    WITH_MEMBERSHIPS,
    CustomerStore,
    Lookup,
    Registration,
    audit_context,
    held_by_value,
    key_column,
    look_alikes_statement,
    stored_form,
)
from patron.store.db import UNOBSERVED, DriverPool, StoreObserver, inserted_columns, is_citus, json_text, named_binds
from patron.store.event_ops import PgEventOperations
from patron.store.events import INSERTED_EVENT, UNPOSITIONED, EventStore
from patron.store.identity_requests import PgIdentityRequests
from patron.store.loyalty import LEDGER_VALUES, MEMBERSHIP_COLUMNS, REFERRAL_VALUES, LoyaltyStore
from patron.store.relay import PgDeliveries
from patron.store.schema import customer_audits, customers, event_streams, events, memberships, points_ledger, referrals
from patron.store.shared import SharedStatements
from patron.store.statements import PgStatement
from patron.store.unit import Found, StoreUnit

# PostgreSQL: new customers with their audit records, memberships and ledger entries in one
# statement: one round trip, atomic without a transaction around it. Ids are drawn first so that
# every part can refer to its customer; ON CONFLICT DO NOTHING covers every unique index, so a
# customer with an identifier already taken is not written, nor is anything of it (nor is the
# later of two customers in one statement that share an identifier: rows go in in position order).
# The sequence is named once per statement (a subquery), not looked up in the catalogue for every row.
#
# The customers arrive as one JSON document, a row of values each, their memberships and ledger
# entries nested in it: the driver sends a document for a fraction of what it costs to send the
# same values as one array per column (it checks every element of an array in Python, about half
# a microsecond each; a batch customer's 40 values cost it 20 µs, the document 1 µs). Times go as
# arrays all the same, as PostgreSQL reads binary times for less than it parses their text, and
# audit changes as text, as the audit keeps them in json, which a jsonb document would parse twice.
_TIMES = ("registered_on", "updated_on")
# A customer's row in the document: its registration's position, then these, in this order.
_ROW = tuple(name for name in STORED_COLUMNS if name not in _TIMES)
_MEMBERSHIP_ROW = ("program_id", "slab_serial", "tier_expires_on", "lifetime_points", "loyalty_points")
_ENTRY_ROW = ("program_id", "kind", "currency", "amount")
_ROW_TYPES = {"program_id": "bigint", "slab_serial": "int", "tier_expires_on": "date", "lifetime_points": "bigint",
              "loyalty_points": "bigint", "amount": "bigint", "event_sequence": "bigint"}
# A registration's row: when, who (the audit's columns), and what its events say made the change.
_REGISTRATION_ROW = (*REGISTERED_BY, "origin", "console_user")
# Where a registration row's values are, counted from 0 (its time first).
_REQUEST_ID, _ORIGIN, _CONSOLE_USER = (1 + _REGISTRATION_ROW.index(name) for name in ("request_id", "origin", "console_user"))
# A customer's row ends with its memberships, its ledger entries, its warnings and its events,
# each event as [eventId, eventName, data], numbered from 1 in order.
_JOINED, _CREDITED, _WARNED, _EVENTS = (len(_ROW) + n for n in (1, 2, 3, 4))
_EVENT_COLUMNS = "org_id, customer_id, event_id, sequence, name, created_at, request_id, origin, console_user, data"


def _from_row(alias: str, names: tuple[str, ...], start: int = 0) -> str:
    """Each value of a JSON row as its column: JSON columns as they are, the rest as text or cast."""
    return ", ".join(
        f"{alias}.v->{i} AS {name}" if name in JSON_COLUMNS
        else f"CAST({alias}.v->>{i} AS {_ROW_TYPES[name]}) AS {name}" if name in _ROW_TYPES
        else f"{alias}.v->>{i} AS {name}"
        for i, name in enumerate(names, start)
    )


# A customer row's warning codes as the audit keeps them: null when there are none.
_WARNINGS = "CAST(NULLIF({}, CAST('[]' AS jsonb)) AS json)"
_INSERT_CUSTOMERS = f"INSERT INTO customers (org_id, id, {', '.join(STORED_COLUMNS)}, created_at, modified_at)"
_NEXT_CUSTOMER_ID = "nextval((SELECT CAST(pg_get_serial_sequence('customers', 'id') AS regclass)))"
_PG_REGISTER_NEW = PgStatement(text(f"""
WITH registration AS (
    SELECT r.position AS registration, CAST(r.v->>0 AS timestamp) AS at, {_from_row("r", _REGISTRATION_ROW, 1)}
    FROM jsonb_array_elements(CAST(:registrations AS jsonb)) WITH ORDINALITY AS r(v, position)
), candidate AS (
    SELECT {_NEXT_CUSTOMER_ID} AS id, c.position, CAST(c.v->>0 AS bigint) AS registration,
        {_from_row("c", _ROW, 1)}, {", ".join(f"c.{name}" for name in _TIMES)}, c.changes,
        c.v->{_JOINED} AS joined, c.v->{_CREDITED} AS credited, c.v->{_WARNED} AS warned, c.v->{_EVENTS} AS evented
    FROM ROWS FROM (
        jsonb_array_elements(CAST(:customers AS jsonb)),
        {", ".join(f"unnest(CAST(:{name} AS timestamp[]))" for name in _TIMES)},
        unnest(CAST(:changes AS text[]))
    ) WITH ORDINALITY AS c(v, {", ".join(_TIMES)}, changes, position)
), new_customer AS (
    {_INSERT_CUSTOMERS}
    SELECT :org_id, id, {", ".join(STORED_COLUMNS)}, at, at
    FROM candidate JOIN registration USING (registration)
    ORDER BY position
    ON CONFLICT DO NOTHING
    RETURNING id
), written AS (
    SELECT candidate.id, candidate.position, candidate.changes, candidate.joined, candidate.credited,
        candidate.warned, candidate.evented, registration.*
    FROM candidate JOIN new_customer USING (id) JOIN registration USING (registration)
), audit AS (
    INSERT INTO customer_audits (org_id, customer_id, created_at, event_type, {", ".join(REGISTERED_BY)}, changes, warnings)
    SELECT :org_id, id, at, 'CREATE', {", ".join(REGISTERED_BY)}, CAST(changes AS json), {_WARNINGS.format("warned")}
    FROM written
), joined AS (
    INSERT INTO memberships (org_id, customer_id, {", ".join(_MEMBERSHIP_ROW)}, enrolled_at)
    SELECT :org_id, written.id, m.*, written.at
    FROM written CROSS JOIN LATERAL (
        SELECT {_from_row("j", _MEMBERSHIP_ROW)} FROM jsonb_array_elements(written.joined) AS j(v)
    ) AS m
), ledger AS (
    INSERT INTO points_ledger (org_id, customer_id, {", ".join(_ENTRY_ROW)}, created_at, request_id)
    SELECT :org_id, written.id, e.*, written.at, written.request_id
    FROM written CROSS JOIN LATERAL (
        SELECT {_from_row("k", _ENTRY_ROW)} FROM jsonb_array_elements(written.credited) AS k(v)
    ) AS e
), outbox AS (
    INSERT INTO events ({_EVENT_COLUMNS})
    SELECT :org_id, written.id, ev.v->>0, ev.position, ev.v->>1, written.at, written.request_id, written.origin,
        written.console_user, CAST(ev.v->2 AS json)
    FROM written CROSS JOIN LATERAL jsonb_array_elements(written.evented) WITH ORDINALITY AS ev(v, position)
)
SELECT position, id FROM written
"""))


# Citus: the same writes as a function that Citus delegates, by its org_id argument, to the worker
# holding the org's shards (store.citus distributes it beside the customers). There each write is
# a plain statement on that org, run locally: one round trip from Patron, one worker, one-phase
# commit. A single statement cannot do that on Citus: it plans each part of a writable CTE as a
# subplan of its own, and an INSERT ... SELECT from the document through the coordinator.
# Arguments and rows are those of _PG_REGISTER_NEW; the answer is each customer written, by position.
REGISTER_NEW_FUNCTION = "patron_register_new"
REGISTER_NEW_SIGNATURE = f"{REGISTER_NEW_FUNCTION}(bigint, jsonb, jsonb, timestamp[], timestamp[], text[])"


def _json_value(alias: str, index: int, name: str) -> str:
    if name in JSON_COLUMNS:
        return f"{alias}->{index}"
    if name in _ROW_TYPES:
        return f"CAST({alias}->>{index} AS {_ROW_TYPES[name]})"
    return f"{alias}->>{index}"


# From this many customers in one call, the function writes each table with one statement over
# all of them (about 4 ms, whatever the number) rather than one statement a row (about 0.5 ms a
# customer): measured on a local cluster, 1.9 against 8.9 ms for one customer, 5.9 against 4.9 for
# ten, 49 against 8.4 for a hundred.
SET_WRITE_FROM = 8


def register_new_function() -> str:
    """The CREATE OR REPLACE FUNCTION statement of REGISTER_NEW_FUNCTION (Citus)."""
    registration = "(p_registrations -> (CAST(c.v->>0 AS int) - 1))"
    at = f"CAST({registration}->>0 AS timestamp)"
    each_customer = "FROM jsonb_array_elements(p_customers) WITH ORDINALITY AS c(v, position)"
    return f"""
CREATE OR REPLACE FUNCTION {REGISTER_NEW_FUNCTION}(
    p_org_id bigint, p_registrations jsonb, p_customers jsonb,
    p_registered_on timestamp[], p_updated_on timestamp[], p_changes text[]
) RETURNS TABLE (out_position bigint, out_id bigint) LANGUAGE plpgsql AS $function$
#variable_conflict use_column
DECLARE
    c jsonb; r jsonb; m jsonb; e jsonb; n int := 0; new_id bigint; at timestamp;
    ids bigint[]; written bigint[];
BEGIN
    IF jsonb_array_length(p_customers) >= {SET_WRITE_FROM} THEN
        -- Ids drawn first, so that every table's rows can name their customer; a customer whose
        -- identifier is taken keeps its id unused, and nothing of it is written.
        ids := ARRAY(SELECT nextval(CAST(pg_get_serial_sequence('customers', 'id') AS regclass))
                     FROM generate_series(1, jsonb_array_length(p_customers)));
        WITH new_customer AS (
            INSERT INTO customers (org_id, id, {", ".join(_ROW)}, {", ".join(_TIMES)}, created_at, modified_at)
            SELECT p_org_id, ids[c.position], {", ".join(_json_value("c.v", i, name) for i, name in enumerate(_ROW, 1))},
                p_registered_on[c.position], p_updated_on[c.position], {at}, {at}
            {each_customer}
            ORDER BY c.position
            ON CONFLICT DO NOTHING
            RETURNING id
        ) SELECT array_agg(id) INTO written FROM new_customer;
        INSERT INTO customer_audits (org_id, customer_id, created_at, event_type, {", ".join(REGISTERED_BY)}, changes, warnings)
        SELECT p_org_id, ids[c.position], {at}, 'CREATE',
            {", ".join(f"{registration}->>{i}" for i in range(1, len(REGISTERED_BY) + 1))},
            CAST(p_changes[c.position] AS json), {_WARNINGS.format(f"c.v->{len(_ROW) + 3}")}
        {each_customer}
        WHERE ids[c.position] = ANY (written);
        INSERT INTO memberships (org_id, customer_id, {", ".join(_MEMBERSHIP_ROW)}, enrolled_at)
        SELECT p_org_id, ids[c.position], {", ".join(_json_value("j.v", i, name) for i, name in enumerate(_MEMBERSHIP_ROW))}, {at}
        {each_customer} CROSS JOIN LATERAL jsonb_array_elements(c.v->{len(_ROW) + 1}) AS j(v)
        WHERE ids[c.position] = ANY (written);
        INSERT INTO points_ledger (org_id, customer_id, {", ".join(_ENTRY_ROW)}, created_at, request_id)
        SELECT p_org_id, ids[c.position], {", ".join(_json_value("k.v", i, name) for i, name in enumerate(_ENTRY_ROW))},
            {at}, {registration}->>1
        {each_customer} CROSS JOIN LATERAL jsonb_array_elements(c.v->{len(_ROW) + 2}) AS k(v)
        WHERE ids[c.position] = ANY (written);
        INSERT INTO events ({_EVENT_COLUMNS})
        SELECT p_org_id, ids[c.position], ev.v->>0, ev.position, ev.v->>1, {at}, {registration}->>{_REQUEST_ID},
            {registration}->>{_ORIGIN}, {registration}->>{_CONSOLE_USER}, CAST(ev.v->2 AS json)
        {each_customer} CROSS JOIN LATERAL jsonb_array_elements(c.v->{_EVENTS}) WITH ORDINALITY AS ev(v, position)
        WHERE ids[c.position] = ANY (written);
        RETURN QUERY SELECT CAST(p AS bigint), ids[p] FROM generate_subscripts(ids, 1) AS p WHERE ids[p] = ANY (written);
        RETURN;
    END IF;
    FOR c IN SELECT value FROM jsonb_array_elements(p_customers) LOOP
        n := n + 1;
        r := p_registrations -> (CAST(c->>0 AS int) - 1);
        at := CAST(r->>0 AS timestamp);
        new_id := NULL;
        INSERT INTO customers (org_id, {", ".join(_ROW)}, {", ".join(_TIMES)}, created_at, modified_at)
        VALUES (p_org_id, {", ".join(_json_value("c", i, name) for i, name in enumerate(_ROW, 1))},
            p_registered_on[n], p_updated_on[n], at, at)
        ON CONFLICT DO NOTHING
        RETURNING id INTO new_id;
        CONTINUE WHEN new_id IS NULL;
        INSERT INTO customer_audits (org_id, customer_id, created_at, event_type, {", ".join(REGISTERED_BY)}, changes, warnings)
        VALUES (p_org_id, new_id, at, 'CREATE', {", ".join(f"r->>{i}" for i in range(1, len(REGISTERED_BY) + 1))},
            CAST(p_changes[n] AS json), {_WARNINGS.format(f"c->{len(_ROW) + 3}")});
        FOR m IN SELECT value FROM jsonb_array_elements(c->{len(_ROW) + 1}) LOOP
            INSERT INTO memberships (org_id, customer_id, {", ".join(_MEMBERSHIP_ROW)}, enrolled_at)
            VALUES (p_org_id, new_id, {", ".join(_json_value("m", i, name) for i, name in enumerate(_MEMBERSHIP_ROW))}, at);
        END LOOP;
        FOR e IN SELECT value FROM jsonb_array_elements(c->{len(_ROW) + 2}) LOOP
            INSERT INTO points_ledger (org_id, customer_id, {", ".join(_ENTRY_ROW)}, created_at, request_id)
            VALUES (p_org_id, new_id, {", ".join(_json_value("e", i, name) for i, name in enumerate(_ENTRY_ROW))}, at, r->>1);
        END LOOP;
        INSERT INTO events ({_EVENT_COLUMNS})
        SELECT p_org_id, new_id, ev.v->>0, ev.position, ev.v->>1, at, r->>{_REQUEST_ID}, r->>{_ORIGIN}, r->>{_CONSOLE_USER},
            CAST(ev.v->2 AS json)
        FROM jsonb_array_elements(c->{_EVENTS}) WITH ORDINALITY AS ev(v, position);
        out_position := n;
        out_id := new_id;
        RETURN NEXT;
    END LOOP;
END
$function$
"""


_CITUS_REGISTER_NEW = PgStatement(text(f"""
SELECT out_position AS position, out_id AS id FROM {REGISTER_NEW_FUNCTION}(
    :org_id, CAST(:registrations AS jsonb), CAST(:customers AS jsonb),
    CAST(:registered_on AS timestamp[]), CAST(:updated_on AS timestamp[]), CAST(:changes AS text[])
)
"""))


def _registration_row(registration: Registration) -> list[Any]:
    by = audit_context(registration.caller)
    written = registration.caller.written(registration.at)
    return [registration.at, *(by[name] for name in REGISTERED_BY), written.origin, written.console_user]


_membership_values = operator.attrgetter(*_MEMBERSHIP_ROW)
_entry_values = operator.attrgetter(*_ENTRY_ROW)


_row_values = stored_form(_ROW)


def _customer_row(registration: int, new: NewCustomer) -> list[Any]:
    return [
        registration,
        *_row_values(new.customer),
        [_membership_values(membership) for membership in new.memberships],
        [_entry_values(entry) for entry in new.entries],
        [int(code) for code in new.warnings],
        [[event.event_id, event.name.value, event.data] for event in new.events],
    ]


def register_new_parameters(registrations: list[Registration]) -> dict[str, Any] | None:
    """What the PostgreSQL statement that writes these registrations' new customers is given
    (None when they have none); customers are numbered from 1 in the order given."""
    # A customer's row names its registration by number, counted from 1 as ORDINALITY counts.
    rows = [
        (number, registration, new)
        for number, registration in enumerate(registrations, start=1)
        for new in registration.new_customers
    ]
    if not rows:
        return None
    org_id = rows[0][2].customer.org_id
    if any(new.customer.org_id != org_id for _, _, new in rows):
        raise ValueError("one statement writes the customers of one org")
    return {
        "org_id": org_id,
        "registrations": json_text([_registration_row(registration) for registration in registrations]),
        "customers": json_text([_customer_row(number, new) for number, _, new in rows]),
        **{name: [getattr(new.customer, name) for _, _, new in rows] for name in _TIMES},
        "changes": [customers_module.audit_changes(new.changes) for _, registration, new in rows],
    }


# PostgreSQL: the customers holding any of several values of one identifier. Each value is one
# look-up in its unique index, whatever the statistics say: a generic plan of `= ANY (values)`
# trusts them, and on a table that has grown since they were taken it was seen to scan the org.
# (LIMIT 1 keeps the planner from turning the look-ups into a join; each finds one at most.)
_FIND_ANY_WITH_MEMBERSHIPS = {
    field: PgStatement(text(f"""
        SELECT {", ".join(f"c.{name}" for name in CUSTOMER_COLUMNS)},
            {", ".join(f"m.{name} AS m_{name}" for name in MEMBERSHIP_COLUMNS)}
        FROM unnest(CAST(:values AS {"bigint" if field == "id" else "text"}[])) AS v(value)
        CROSS JOIN LATERAL (
            SELECT * FROM customers WHERE customers.org_id = :org_id AND customers.{key_column(field)} = v.value LIMIT 1
        ) AS c
        LEFT JOIN memberships AS m ON m.org_id = c.org_id AND m.customer_id = c.id
        ORDER BY c.id, m.program_id
    """))
    for field in LOOKUP_FIELDS
}


# Citus cannot push a LIMIT down into a lateral subquery over a function's rows; it routes this
# form to the org's shard, where the worker plans it with the values themselves.
_CITUS_FIND_ANY_WITH_MEMBERSHIPS = {
    field: PgStatement(
        WITH_MEMBERSHIPS.where(
            customers.c.org_id == bindparam("org_id"),
            customers.c[key_column(field)] == func.any(func.cast(bindparam("values"), ARRAY(BigInteger if field == "id" else Text))),
        ).order_by(customers.c.id, memberships.c.program_id)
    )
    for field in LOOKUP_FIELDS
}




class PgCustomers(
    CustomerStore,
    statement=PgStatement,
    insert_customer=insert(customers).values(INSERTED_CUSTOMER).returning(customers.c.id),
    insert_audit=insert(customer_audits).values(named_binds(inserted_columns(customer_audits))),
    # The partial index's condition, repeated: a generic plan of `= ANY (...)` cannot prove it.
    look_alikes=look_alikes_statement(
        lambda skeleton: skeleton.is_not(None) & (skeleton == func.any(func.cast(bindparam("skeletons"), ARRAY(Text))))
    ),
    lock_holders=True,
):
    unique_violations = (asyncpg.UniqueViolationError,)

    async def register_new(self, registrations: list[Registration]) -> list[list[int | None]]:
        """Write the registrations' new customers (of one org), each with its audit record,
        memberships and ledger entries, unless one of its identifiers is taken by then, by a
        customer of an earlier registration included; each one's new id or None, by registration."""
        parameters = register_new_parameters(registrations)
        if parameters is None:
            return [[] for _ in registrations]
        statement = _CITUS_REGISTER_NEW if is_citus(self.conn) else _PG_REGISTER_NEW
        written = {row["position"]: row["id"] for row in await statement.fetch(self.conn, parameters)}
        ids = (written.get(position) for position in itertools.count(1))
        return [[next(ids) for _ in registration.new_customers] for registration in registrations]

    async def find_many_with_memberships(
        self, org_id: int, field: str, values: list[str | int]
    ) -> dict[str | int, tuple[Any, Any]]:
        if not values:
            return {}
        statements = _CITUS_FIND_ANY_WITH_MEMBERSHIPS if is_citus(self.conn) else _FIND_ANY_WITH_MEMBERSHIPS
        rows = await statements[field].fetch(self.conn, {"org_id": org_id, "values": values})
        return held_by_value(rows, field)


class PgLoyalty(
    LoyaltyStore,
    statement=PgStatement,
    insert_ledger=insert(points_ledger).values(LEDGER_VALUES),
    record_referral=pg_insert(referrals).values(REFERRAL_VALUES).on_conflict_do_nothing().returning(referrals.c.referee_id),
):
    pass


class PgEvents(
    EventStore,
    statement=PgStatement,
    insert_event=insert(events).values(INSERTED_EVENT),
    unpositioned=UNPOSITIONED.with_for_update(),
    unpositioned_of=UNPOSITIONED.limit(None).where(
        events.c.customer_id == func.any(func.cast(bindparam("customer_ids"), ARRAY(BigInteger)))
    ).with_for_update(),
    open_stream=pg_insert(event_streams).values(org_id=bindparam("org_id")).on_conflict_do_nothing(),
):
    pass


class _Deadlined:
    """A connection whose every statement is stopped by the server at one deadline."""

    def __init__(self, conn: asyncpg.Connection, deadline: float, timeout: float) -> None:
        self.conn, self.deadline, self.timeout = conn, deadline, timeout

    async def _before(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise SearchTimedOut(self.timeout)
        # SET LOCAL, as a function: it ends with the transaction, and takes a parameter. No parallel
        # workers: a search that reads every customer of an org takes one core, not all of them; no
        # JIT: compiling a statement that reads a whole org costs more CPU than it saves.
        await self.conn.execute(
            "SELECT set_config('statement_timeout', $1, true), set_config('max_parallel_workers_per_gather', '0', true),"
            " set_config('jit', 'off', true)",
            f"{max(1, int(left * 1000))}ms",
        )

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        await self._before()
        return await self.conn.fetch(sql, *args)

    async def execute(self, sql: str, *args: Any) -> Any:
        raise TypeError("a search only reads")

    async def executemany(self, sql: str, args: Any) -> Any:
        raise TypeError("a search only reads")


class PostgresStorage:
    """PostgreSQL as registrations and look-ups use it: every unit of work on a connection of the
    driver's pool; new customers and look-ups outside units, shared with other concurrent requests
    of the org (store.shared)."""

    def __init__(self, driver: DriverPool, observer: StoreObserver = UNOBSERVED) -> None:
        self.driver = driver
        self.registrations: SharedStatements[Registration, list[int | None]] = SharedStatements(
            self._register, lambda registration: len(registration.new_customers),
            on_statement=lambda requests: observer.statement_shared("register", requests),
        )
        self.lookups: SharedStatements[Lookup, Found] = SharedStatements(
            self._look_up, lambda lookup: len(lookup.values),
            on_statement=lambda requests: observer.statement_shared("look_up", requests),
        )

    def unit_of_work(self, *, readonly: bool = False) -> AbstractAsyncContextManager[StoreUnit]:
        return self._unit(single_statement=readonly)

    @asynccontextmanager
    async def _unit(self, *, single_statement: bool) -> AsyncIterator[StoreUnit]:
        """Committed when the block ends, rolled back on any exception. A unit of single
        self-atomic statements (a look-up, the registration's one statement) runs without BEGIN and
        COMMIT, two round trips fewer."""
        async with self.driver.connection() as conn:
            if single_statement:
                yield StoreUnit(PgCustomers(conn), PgLoyalty(conn), PgIdentityRequests(conn), PgEvents(conn), PgDeliveries(conn),
                                PgEventOperations(conn), PgConsole(conn))
                return
            async with conn.transaction():
                yield StoreUnit(PgCustomers(conn), PgLoyalty(conn), PgIdentityRequests(conn), PgEvents(conn), PgDeliveries(conn),
                                PgEventOperations(conn), PgConsole(conn))

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[StoreUnit]:
        """A read-only unit on one snapshot (REPEATABLE READ): what a console page shows together is of one moment."""
        async with self.driver.connection() as conn:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                yield StoreUnit(PgCustomers(conn), PgLoyalty(conn), PgIdentityRequests(conn), PgEvents(conn), PgDeliveries(conn),
                                PgEventOperations(conn), PgConsole(conn))

    @asynccontextmanager
    async def search_unit(self, timeout: float) -> AsyncIterator[StoreUnit]:
        """A search's unit: one read-only snapshot for its count and its page, each statement
        given what is left of the deadline as its statement_timeout, so that the server itself
        stops working on it then (on Citus, the coordinator cancels the shard's query with it)."""
        conn: asyncpg.Connection
        try:
            async with self.driver.connection() as conn:
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    deadlined = _Deadlined(conn, time.monotonic() + timeout, timeout)
                    yield StoreUnit(PgCustomers(deadlined), PgLoyalty(deadlined), PgIdentityRequests(deadlined),
                                    PgEvents(deadlined), PgDeliveries(deadlined), PgEventOperations(deadlined),
                                    PgConsole(deadlined))
        except asyncpg.QueryCanceledError as exc:
            raise SearchTimedOut(timeout) from exc

    async def insert_new(self, new_customers: list[NewCustomer], caller: Caller, at: datetime) -> list[int | None]:
        return await self.registrations.run(caller.org.org_id, Registration(new_customers, caller, at))

    async def look_alikes(self, org_id: int, skeletons: list[str]) -> list[LookAlike]:
        async with self._unit(single_statement=True) as unit:
            return await unit.customers.look_alikes(org_id, skeletons)

    async def find_with_memberships(self, org_id: int, field: str, values: list[str | int]) -> Found:
        """The org's customers holding these values of one identifier, with their memberships, by value."""
        if not values:
            return {}
        return await self.lookups.run((org_id, field), Lookup(org_id, field, tuple(values)))

    async def close(self) -> None:
        await self.driver.close()

    async def _register(self, registrations: list[Registration]) -> list[list[int | None]]:
        async with self._unit(single_statement=True) as unit:
            return await unit.customers.register_new(registrations)  # type: ignore[attr-defined]

    async def _look_up(self, lookups: list[Lookup]) -> list[Found]:
        """Look-ups of one org and identifier, answered from one statement."""
        org_id, field = lookups[0].org_id, lookups[0].field
        if any((lookup.org_id, lookup.field) != (org_id, field) for lookup in lookups):
            raise ValueError("one statement looks up one org's customers by one identifier")
        values = list(dict.fromkeys(value for lookup in lookups for value in lookup.values))
        async with self._unit(single_statement=True) as unit:
            found = await unit.customers.find_many_with_memberships(org_id, field, values)
        return [{value: found[value] for value in lookup.values if value in found} for lookup in lookups]
