"""Customers and their audit trail: every query scoped by org_id."""

from __future__ import annotations

import dataclasses
import itertools
import operator
import sqlite3
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Select,
    Text,
    and_,
    bindparam,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from patron.loyalty.model import LedgerEntry, Membership
from patron.registration.fields import local_text
from patron.registration.model import IDENTIFIERS, Change, Customer
from patron.registration.service import Caller, IdentifierTaken, NewCustomer
from patron.store.db import inserted_columns, is_citus, is_sqlite, json_text, named_binds
from patron.store.loyalty import INSERT_MEMBERSHIPS, MEMBERSHIP_COLUMNS
from patron.store.schema import customer_audits, customers, memberships, points_ledger
from patron.store.statements import Connection, DriverStatement, SqliteForm

_CUSTOMER_COLUMNS = [column.name for column in customers.columns if column.name not in ("created_at", "modified_at")]
_SELECT_CUSTOMER = select(*(customers.c[name] for name in _CUSTOMER_COLUMNS))


_STORED_COLUMNS = [name for name in _CUSTOMER_COLUMNS if name not in ("org_id", "id")]
_JSON_COLUMNS = ("custom_fields", "extended_fields", "subscriptions", "comm_channels")
# Named fields are kept as [name, value] pairs: a JSONB object would not keep their order.
_NAMED_FIELDS = ("custom_fields", "extended_fields")


def _customer(row: Mapping[str, Any]) -> Customer:
    values = {name: row[name] for name in _CUSTOMER_COLUMNS}
    for name in _NAMED_FIELDS:
        values[name] = dict(values[name])
    return Customer(**values)


def _stored_form(columns: list[str] | tuple[str, ...]) -> Callable[[Customer], list[Any]]:
    """Reads these columns of a customer as the database is given them (named fields as pairs)."""
    read, named = operator.attrgetter(*columns), [columns.index(name) for name in _NAMED_FIELDS]

    def values(customer: Customer) -> list[Any]:
        stored = list(read(customer))
        for index in named:
            stored[index] = list(stored[index].items())
        return stored

    return values


_stored_values = _stored_form(_STORED_COLUMNS)


def _values(customer: Customer) -> dict[str, Any]:
    return dict(zip(_STORED_COLUMNS, _stored_values(customer)))


def _audit_changes(changes: list[Change], tz: ZoneInfo) -> str:
    """Changes as the audit log keeps them, as JSON text: [{"field", "previous", "current"}, ...],
    times as the API writes them, in the org's timezone: orjson hands back only the times."""
    written = orjson.dumps(changes, default=lambda moment: _local_time(moment, tz), option=orjson.OPT_PASSTHROUGH_DATETIME)
    return written.decode()


def _local_time(value: object, tz: ZoneInfo) -> str | None:
    if not isinstance(value, datetime):
        raise TypeError(f"{type(value).__name__} is not a value an audit record keeps")
    return local_text(value, tz)


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
_USER_CONTEXT = ("entity_type", "entity_id", "entity_source", "entity_source_id")
# Who registered each customer, and when: one statement may hold several requests' customers.
_REGISTERED_BY = ("request_id", "till_code", "api_client_key", *(f"context_{key}" for key in _USER_CONTEXT))
_TIMES = ("registered_on", "updated_on")
# A customer's row in the document: its registration's position, then these, in this order.
_ROW = tuple(name for name in _STORED_COLUMNS if name not in _TIMES)
_MEMBERSHIP_ROW = ("program_id", "slab_serial", "tier_expires_on", "lifetime_points", "loyalty_points")
_ENTRY_ROW = ("program_id", "kind", "currency", "amount")
_ROW_TYPES = {"program_id": "bigint", "slab_serial": "int", "tier_expires_on": "date", "lifetime_points": "bigint",
              "loyalty_points": "bigint", "amount": "bigint"}


def _from_row(alias: str, names: tuple[str, ...], start: int = 0) -> str:
    """Each value of a JSON row as its column: JSON columns as they are, the rest as text or cast."""
    return ", ".join(
        f"{alias}.v->{i} AS {name}" if name in _JSON_COLUMNS
        else f"CAST({alias}.v->>{i} AS {_ROW_TYPES[name]}) AS {name}" if name in _ROW_TYPES
        else f"{alias}.v->>{i} AS {name}"
        for i, name in enumerate(names, start)
    )


_INSERT_CUSTOMERS = f"INSERT INTO customers (org_id, id, {', '.join(_STORED_COLUMNS)}, created_at, modified_at)"
_NEXT_CUSTOMER_ID = "nextval((SELECT CAST(pg_get_serial_sequence('customers', 'id') AS regclass)))"
_PG_REGISTER_NEW = DriverStatement(text(f"""
WITH registration AS (
    SELECT r.position AS registration, CAST(r.v->>0 AS timestamp) AS at, {_from_row("r", _REGISTERED_BY, 1)}
    FROM jsonb_array_elements(CAST(:registrations AS jsonb)) WITH ORDINALITY AS r(v, position)
), candidate AS (
    SELECT {_NEXT_CUSTOMER_ID} AS id, c.position, CAST(c.v->>0 AS bigint) AS registration,
        {_from_row("c", _ROW, 1)}, {", ".join(f"c.{name}" for name in _TIMES)}, c.changes,
        c.v->{len(_ROW) + 1} AS joined, c.v->{len(_ROW) + 2} AS credited
    FROM ROWS FROM (
        jsonb_array_elements(CAST(:customers AS jsonb)),
        {", ".join(f"unnest(CAST(:{name} AS timestamp[]))" for name in _TIMES)},
        unnest(CAST(:changes AS text[]))
    ) WITH ORDINALITY AS c(v, {", ".join(_TIMES)}, changes, position)
), new_customer AS (
    {_INSERT_CUSTOMERS}
    SELECT :org_id, id, {", ".join(_STORED_COLUMNS)}, at, at
    FROM candidate JOIN registration USING (registration)
    ORDER BY position
    ON CONFLICT DO NOTHING
    RETURNING id
), written AS (
    SELECT candidate.id, candidate.position, candidate.changes, candidate.joined, candidate.credited, registration.*
    FROM candidate JOIN new_customer USING (id) JOIN registration USING (registration)
), audit AS (
    INSERT INTO customer_audits (org_id, customer_id, created_at, event_type, {", ".join(_REGISTERED_BY)}, changes)
    SELECT :org_id, id, at, 'CREATE', {", ".join(_REGISTERED_BY)}, CAST(changes AS json)
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
    if name in _JSON_COLUMNS:
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
        INSERT INTO customer_audits (org_id, customer_id, created_at, event_type, {", ".join(_REGISTERED_BY)}, changes)
        SELECT p_org_id, ids[c.position], {at}, 'CREATE',
            {", ".join(f"{registration}->>{i}" for i in range(1, len(_REGISTERED_BY) + 1))},
            CAST(p_changes[c.position] AS json)
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
        INSERT INTO customer_audits (org_id, customer_id, created_at, event_type, {", ".join(_REGISTERED_BY)}, changes)
        VALUES (p_org_id, new_id, at, 'CREATE', {", ".join(f"r->>{i}" for i in range(1, len(_REGISTERED_BY) + 1))},
            CAST(p_changes[n] AS json));
        FOR m IN SELECT value FROM jsonb_array_elements(c->{len(_ROW) + 1}) LOOP
            INSERT INTO memberships (org_id, customer_id, {", ".join(_MEMBERSHIP_ROW)}, enrolled_at)
            VALUES (p_org_id, new_id, {", ".join(_json_value("m", i, name) for i, name in enumerate(_MEMBERSHIP_ROW))}, at);
        END LOOP;
        FOR e IN SELECT value FROM jsonb_array_elements(c->{len(_ROW) + 2}) LOOP
            INSERT INTO points_ledger (org_id, customer_id, {", ".join(_ENTRY_ROW)}, created_at, request_id)
            VALUES (p_org_id, new_id, {", ".join(_json_value("e", i, name) for i, name in enumerate(_ENTRY_ROW))}, at, r->>1);
        END LOOP;
        out_position := n;
        out_id := new_id;
        RETURN NEXT;
    END LOOP;
END
$function$
"""


_CITUS_REGISTER_NEW = DriverStatement(text(f"""
SELECT out_position AS position, out_id AS id FROM {REGISTER_NEW_FUNCTION}(
    :org_id, CAST(:registrations AS jsonb), CAST(:customers AS jsonb),
    CAST(:registered_on AS timestamp[]), CAST(:updated_on AS timestamp[]), CAST(:changes AS text[])
)
"""))


def _registration_row(registration: Registration) -> list[Any]:
    by = _audit_context(registration.caller)
    return [registration.at, *(by[name] for name in _REGISTERED_BY)]


_membership_values = operator.attrgetter(*_MEMBERSHIP_ROW)
_entry_values = operator.attrgetter(*_ENTRY_ROW)


_row_values = _stored_form(_ROW)


def _customer_row(registration: int, new: NewCustomer) -> list[Any]:
    return [
        registration,
        *_row_values(new.customer),
        [_membership_values(membership) for membership in new.memberships],
        [_entry_values(entry) for entry in new.entries],
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
        "changes": [_audit_changes(new.changes, registration.caller.org.tz) for _, registration, new in rows],
    }


_FIND_BY = {
    field: DriverStatement(
        _SELECT_CUSTOMER.where(customers.c.org_id == bindparam("org_id"), customers.c[field] == bindparam("value"))
    )
    for field in ("id", "mobile", "email", "external_id", "referral_code")
}


# Customers with their memberships in one statement: one row per membership, or one row with
# no membership, ordered by customer and programme.
_WITH_MEMBERSHIPS = select(
    *(customers.c[name] for name in _CUSTOMER_COLUMNS),
    *(memberships.c[name].label(f"m_{name}") for name in MEMBERSHIP_COLUMNS),
).select_from(
    customers.outerjoin(
        memberships, and_(memberships.c.org_id == customers.c.org_id, memberships.c.customer_id == customers.c.id)
    )
)
_LOOKUP_FIELDS = ("id", "mobile", "email", "external_id")
_FIND_WITH_MEMBERSHIPS = {
    field: DriverStatement(
        _WITH_MEMBERSHIPS.where(customers.c.org_id == bindparam("org_id"), customers.c[field] == bindparam("value"))
        .order_by(memberships.c.program_id)
    )
    for field in _LOOKUP_FIELDS
}
# PostgreSQL: the customers holding any of several values of one identifier. Each value is one
# look-up in its unique index, whatever the statistics say: a generic plan of `= ANY (values)`
# trusts them, and on a table that has grown since they were taken it was seen to scan the org.
# (LIMIT 1 keeps the planner from turning the look-ups into a join; each finds one at most.)
_FIND_ANY_WITH_MEMBERSHIPS = {
    field: DriverStatement(text(f"""
        SELECT {", ".join(f"c.{name}" for name in _CUSTOMER_COLUMNS)},
            {", ".join(f"m.{name} AS m_{name}" for name in MEMBERSHIP_COLUMNS)}
        FROM unnest(CAST(:values AS {"bigint" if field == "id" else "text"}[])) AS v(value)
        CROSS JOIN LATERAL (
            SELECT * FROM customers WHERE customers.org_id = :org_id AND customers.{field} = v.value LIMIT 1
        ) AS c
        LEFT JOIN memberships AS m ON m.org_id = c.org_id AND m.customer_id = c.id
        ORDER BY c.id, m.program_id
    """))
    for field in _LOOKUP_FIELDS
}


# Citus cannot push a LIMIT down into a lateral subquery over a function's rows; it routes this
# form to the org's shard, where the worker plans it with the values themselves.
_CITUS_FIND_ANY_WITH_MEMBERSHIPS = {
    field: DriverStatement(
        _WITH_MEMBERSHIPS.where(
            customers.c.org_id == bindparam("org_id"),
            customers.c[field] == func.any(func.cast(bindparam("values"), ARRAY(BigInteger if field == "id" else Text))),
        ).order_by(customers.c.id, memberships.c.program_id)
    )
    for field in _LOOKUP_FIELDS
}


_AUDITS_OF = DriverStatement(
    select(customer_audits)
    .where(customer_audits.c.org_id == bindparam("org_id"), customer_audits.c.customer_id == bindparam("customer_id"))
    # Newest first. A customer's CREATE record is its oldest whatever its id: on Citus it may be
    # written on the org's worker (ids from that worker's range), its updates on the coordinator.
    .order_by((customer_audits.c.event_type == literal_column("'CREATE'")).asc(), customer_audits.c.id.desc())
    .limit(bindparam("limit"))
)


# Statements built once and executed with a dict of values (driver statements on PostgreSQL).
_INSERT_CUSTOMER = DriverStatement(
    insert(customers)
    .values(named_binds(("org_id", *_STORED_COLUMNS, "created_at", "modified_at")))
    .returning(customers.c.id)
)
_UPDATE_CUSTOMER = DriverStatement(
    update(customers)
    .where(customers.c.org_id == bindparam("key_org_id"), customers.c.id == bindparam("key_id"))
    .values(named_binds((*_STORED_COLUMNS, "modified_at")))
)
_INSERT_AUDIT = DriverStatement(insert(customer_audits).values(named_binds(inserted_columns(customer_audits))))
# SQLite has no sequences: a row's id is max(id) + 1, drawn in its own INSERT (one statement, not
# two) and safe under the write lock the unit holds.
_FIRST_CUSTOMER_ID = 100001
_SQLITE_INSERT_CUSTOMER = DriverStatement(
    insert(customers)
    .values({
        **named_binds(("org_id", *_STORED_COLUMNS, "created_at", "modified_at")),
        "id": select(func.coalesce(func.max(customers.c.id), _FIRST_CUSTOMER_ID - 1) + 1).scalar_subquery(),
    })
    .returning(customers.c.id)
)
_SQLITE_INSERT_AUDIT = DriverStatement(
    insert(customer_audits).values({
        **named_binds(inserted_columns(customer_audits)),
        "id": select(func.coalesce(func.max(customer_audits.c.id), 0) + 1).scalar_subquery(),
    })
)


# SQLite: a registration's new customers, written by the file's writer (store.sqlite) in one job:
# the values are made ready on the event loop, and the job draws ids once (max + 1, under the write
# lock) and writes each table's rows with executemany. A customer whose identifier is taken by then
# writes nothing (ON CONFLICT DO NOTHING, as on PostgreSQL), and its id goes to the next one.
_SQLITE_NEW_CUSTOMER = SqliteForm(
    sqlite_insert(customers)
    .values(named_binds(("org_id", "id", *_STORED_COLUMNS, "created_at", "modified_at")))
    .on_conflict_do_nothing()
)
_SQLITE_NEW_AUDIT = SqliteForm(
    insert(customer_audits).values(named_binds(("id", *inserted_columns(customer_audits)))),
    # The audit's changes arrive as the JSON text the audit keeps.
    stored=frozenset({"changes"}),
)
_SQLITE_NEW_ENTRY = SqliteForm(insert(points_ledger).values(named_binds(("id", *inserted_columns(points_ledger)))))
_SQLITE_LAST_IDS = (
    f"SELECT (SELECT coalesce(max(id), {_FIRST_CUSTOMER_ID - 1}) FROM customers),"
    " (SELECT coalesce(max(id), 0) FROM customer_audits), (SELECT coalesce(max(id), 0) FROM points_ledger)"
)


@dataclasses.dataclass
class _SqliteNew:
    """One new customer's rows as SQLite is given them, ids left to the job."""

    customer: list[Any]
    audit: list[Any]
    joined: list[list[Any]]
    credited: list[list[Any]]


def sqlite_register_new(registrations: list[Registration]) -> Callable[[sqlite3.Connection], list[list[int | None]]]:
    """The job that writes these registrations' new customers (of one org) on SQLite, with their
    audit records, memberships and ledger entries: each one's new id or None, by registration."""
    prepared = [[_sqlite_rows(new, registration) for new in registration.new_customers] for registration in registrations]

    def write(conn: sqlite3.Connection) -> list[list[int | None]]:
        last_customer, last_audit, last_entry = conn.execute(_SQLITE_LAST_IDS).fetchone()
        audits, joined, credited = [], [], []
        answers: list[list[int | None]] = []
        for registration in prepared:
            ids: list[int | None] = []
            for new in registration:
                new.customer[_CUSTOMER_ID] = last_customer + 1
                if conn.execute(_SQLITE_NEW_CUSTOMER.sql, new.customer).rowcount == 0:
                    ids.append(None)
                    continue
                last_customer += 1
                ids.append(last_customer)
                last_audit += 1
                new.audit[_AUDIT_ID], new.audit[_AUDIT_CUSTOMER] = last_audit, last_customer
                audits.append(new.audit)
                for row in new.joined:
                    row[_MEMBERSHIP_CUSTOMER] = last_customer
                    joined.append(row)
                for row in new.credited:
                    last_entry += 1
                    row[_ENTRY_ID], row[_ENTRY_CUSTOMER] = last_entry, last_customer
                    credited.append(row)
            answers.append(ids)
        conn.executemany(_SQLITE_NEW_AUDIT.sql, audits)
        conn.executemany(INSERT_MEMBERSHIPS.sqlite.sql, joined)
        conn.executemany(_SQLITE_NEW_ENTRY.sql, credited)
        return answers

    return write


_CUSTOMER_ID = _SQLITE_NEW_CUSTOMER.names.index("id")
_AUDIT_ID, _AUDIT_CUSTOMER = (_SQLITE_NEW_AUDIT.names.index(name) for name in ("id", "customer_id"))
_MEMBERSHIP_CUSTOMER = INSERT_MEMBERSHIPS.sqlite.names.index("customer_id")
_ENTRY_ID, _ENTRY_CUSTOMER = (_SQLITE_NEW_ENTRY.names.index(name) for name in ("id", "customer_id"))


def _sqlite_rows(new: NewCustomer, registration: Registration) -> _SqliteNew:
    customer, at, caller = new.customer, registration.at, registration.caller
    values = {"org_id": customer.org_id, "id": None, **_values(customer), "created_at": at, "modified_at": at}
    audit = {
        "id": None,
        "org_id": customer.org_id,
        "customer_id": None,
        "created_at": at,
        "event_type": "CREATE",
        "changes": _audit_changes(new.changes, caller.org.tz),
        **_audit_context(caller),
    }
    joined = [
        {**{name: getattr(m, name) for name in MEMBERSHIP_COLUMNS}, "customer_id": None, "enrolled_at": at}
        for m in new.memberships
    ]
    credited = [
        {"id": None, "customer_id": None, "created_at": at, "request_id": caller.request_id, **_entry_columns(e)}
        for e in new.entries
    ]
    return _SqliteNew(
        list(_SQLITE_NEW_CUSTOMER.arguments(values)),
        list(_SQLITE_NEW_AUDIT.arguments(audit)),
        [list(INSERT_MEMBERSHIPS.sqlite.arguments(row)) for row in joined],
        [list(_SQLITE_NEW_ENTRY.arguments(row)) for row in credited],
    )


def _entry_columns(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "org_id": entry.org_id,
        "program_id": entry.program_id,
        "kind": entry.kind.value,
        "currency": entry.currency,
        "amount": entry.amount,
    }


def _holders_statement(names: tuple[str, ...], lock: bool) -> Select[Any]:
    statement = _SELECT_CUSTOMER.where(
        customers.c.org_id == bindparam("org_id"), or_(*(customers.c[name] == bindparam(name) for name in names))
    )
    if lock:
        # Locked until the unit ends: an update is made to the customer as it is now, not to a
        # copy that a concurrent request is replacing (which would lose that request's change).
        # In id order, so that units locking the same customers take them in one order and
        # cannot deadlock. (On SQLite the unit already holds the database's one write lock.)
        statement = statement.order_by(customers.c.id).with_for_update()
    return statement


# The customers holding some identifiers, by which identifiers are sent and whether to lock them.
_HOLDERS = {
    (names, lock): DriverStatement(_holders_statement(names, lock))
    for size in range(1, len(IDENTIFIERS) + 1)
    for names in itertools.combinations(IDENTIFIERS, size)
    for lock in (False, True)
}


# A unique index refused a write: through SQLAlchemy's connection, or the driver's.
_UNIQUE_VIOLATIONS = (IntegrityError, asyncpg.UniqueViolationError, sqlite3.IntegrityError)


def _memberships_of(rows: list[Mapping[str, Any]]) -> list[Membership]:
    """The memberships on one customer's rows of a look-up joined to them (none: one row of nulls)."""
    return [
        Membership(**{name: row[f"m_{name}"] for name in MEMBERSHIP_COLUMNS})
        for row in rows
        if row["m_program_id"] is not None
    ]


@dataclasses.dataclass(frozen=True)
class Lookup:
    """One request's look-up: an org's customers by one identifier, one value or several."""

    org_id: int
    field: str
    values: tuple[str | int, ...]


@dataclasses.dataclass(frozen=True)
class Registration:
    """One request's new customers, with who registered them and when: what one statement may
    write together with other requests' registrations of the same org."""

    new_customers: list[NewCustomer]
    caller: Caller
    at: datetime


def _audit_context(caller: Caller) -> dict[str, Any]:
    return {
        "request_id": caller.request_id,
        "till_code": caller.till_code,
        "api_client_key": caller.api_client_key,
        **{f"context_{key}": caller.user_context.get(key) for key in _USER_CONTEXT},
    }


class CustomerStore:
    """The customers of the orgs, read and written inside one transaction (`conn`)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def holders(self, org_id: int, identifiers: dict[str, str]) -> dict[str, Customer]:
        if not identifiers:
            return {}
        names = tuple(name for name in IDENTIFIERS if name in identifiers)
        statement = _HOLDERS[(names, not is_sqlite(self.conn))]
        found = [_customer(row) for row in await statement.fetch(self.conn, {"org_id": org_id, **identifiers})]
        return {
            name: customer
            for name, value in identifiers.items()
            for customer in found
            if customer.identifier(name) == value
        }

    async def insert(self, customer: Customer, at: datetime) -> Customer:
        values = {"org_id": customer.org_id, **_values(customer), "created_at": at, "modified_at": at}
        try:
            statement = _SQLITE_INSERT_CUSTOMER if is_sqlite(self.conn) else _INSERT_CUSTOMER
            (row,) = await statement.fetch(self.conn, values)
            new_id = row["id"]
        except _UNIQUE_VIOLATIONS as exc:
            raise IdentifierTaken(str(exc)) from exc
        customer.id = new_id
        return customer

    async def register_new(self, registrations: list[Registration]) -> list[list[int | None]]:
        """PostgreSQL: write the registrations' new customers (of one org), each with its audit
        record, memberships and ledger entries, unless one of its identifiers is taken by then, by a
        customer of an earlier registration included; each one's new id or None, by registration.
        (SQLite: sqlite_register_new, a job for the file's writer.)"""
        ids = iter(await self._pg_register_new(registrations))
        return [[next(ids) for _ in registration.new_customers] for registration in registrations]

    async def _pg_register_new(self, registrations: list[Registration]) -> list[int | None]:
        """Each new customer's id, or None where it was not written, in the order given."""
        parameters = register_new_parameters(registrations)
        if parameters is None:
            return []
        statement = _CITUS_REGISTER_NEW if is_citus(self.conn) else _PG_REGISTER_NEW
        written = {row["position"]: row["id"] for row in await statement.fetch(self.conn, parameters)}
        count = sum(len(registration.new_customers) for registration in registrations)
        return [written.get(position) for position in range(1, count + 1)]

    async def update(self, customer: Customer, at: datetime) -> None:
        values = {**_values(customer), "modified_at": at, "key_org_id": customer.org_id, "key_id": customer.id}
        try:
            await _UPDATE_CUSTOMER.execute(self.conn, values)
        except _UNIQUE_VIOLATIONS as exc:
            raise IdentifierTaken(str(exc)) from exc

    async def record_audit(
        self, caller: Caller, customer: Customer, event_type: str, changes: list[Change], at: datetime
    ) -> None:
        values: dict[str, Any] = {
            "org_id": customer.org_id,
            "customer_id": customer.id,
            "created_at": at,
            "event_type": event_type,
            # The JSON column takes values: the audit's one JSON text, read back (an update is rare).
            "changes": orjson.loads(_audit_changes(changes, caller.org.tz)),
            **_audit_context(caller),
        }
        await (_SQLITE_INSERT_AUDIT if is_sqlite(self.conn) else _INSERT_AUDIT).execute(self.conn, values)

    async def find(self, org_id: int, field: str, value: str | int) -> Customer | None:
        rows = await _FIND_BY[field].fetch(self.conn, {"org_id": org_id, "value": value})
        return _customer(rows[0]) if rows else None

    async def find_with_memberships(
        self, org_id: int, field: str, value: str | int
    ) -> tuple[Customer, list[Membership]] | None:
        rows = await _FIND_WITH_MEMBERSHIPS[field].fetch(self.conn, {"org_id": org_id, "value": value})
        if not rows:
            return None
        return _customer(rows[0]), _memberships_of(rows)

    async def find_many_with_memberships(
        self, org_id: int, field: str, values: list[str | int]
    ) -> dict[str | int, tuple[Customer, list[Membership]]]:
        """The customers holding these values of one identifier, with their memberships, by value."""
        if not values:
            return {}
        if is_sqlite(self.conn):
            found = {value: await self.find_with_memberships(org_id, field, value) for value in values}
            return {value: held for value, held in found.items() if held is not None}
        statements = _CITUS_FIND_ANY_WITH_MEMBERSHIPS if is_citus(self.conn) else _FIND_ANY_WITH_MEMBERSHIPS
        rows = await statements[field].fetch(self.conn, {"org_id": org_id, "values": values})
        held: dict[str | int, tuple[Customer, list[Membership]]] = {}
        for _, customer_rows in itertools.groupby(rows, key=lambda row: row["id"]):
            first, *rest = customer_rows
            held[first[field]] = (_customer(first), _memberships_of([first, *rest]))
        return held

    async def audits(self, org_id: int, customer_id: int, limit: int = 100) -> list[dict[str, Any]]:
        rows = await _AUDITS_OF.fetch(self.conn, {"org_id": org_id, "customer_id": customer_id, "limit": limit})
        return [dict(row) for row in rows]
