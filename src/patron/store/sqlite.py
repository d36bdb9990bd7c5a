"""SQLite's store: the repositories on the file's writer and reader (store.sqlite_file), ids drawn
as max(id) + 1 under the write lock, and a request's new customers written as one job of the writer."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from patron.customers.model import Caller, LookAlike, NewCustomer
from patron.store import customers as customers_module
from patron.store.console import SqliteConsole
from patron.store.customers import (
    FIRST_CUSTOMER_ID,
    INSERTED_CUSTOMER,
    STORED_COLUMNS,
    CustomerStore,
    Registration,
    audit_context,
    audit_warnings,
    look_alikes_statement,
    stored_values,
)
from patron.store.db import inserted_columns, named_binds
from patron.store.event_ops import SqliteEventOperations
from patron.store.events import INSERTED_EVENT, UNPOSITIONED, EventStore, event_rows
from patron.store.identity_requests import SqliteIdentityRequests
from patron.store.loyalty import INSERT_MEMBERSHIPS, LEDGER_VALUES, MEMBERSHIP_COLUMNS, REFERRAL_VALUES, LoyaltyStore, entry_columns
from patron.store.relay import SqliteDeliveries
from patron.store.schema import customer_audits, customers, event_streams, events, points_ledger, referrals
from patron.store.sqlite_file import READER_MMAP_BYTES, SqliteConnection, SqliteFile, connect
from patron.store.statements import SqliteStatement, is_sqlite_unique_violation
from patron.store.unit import Found, StoreUnit


def _next_id(table: Any, first: int) -> Any:
    """A new row's id: max(id) + 1, drawn in its own INSERT (one statement, not two) and safe under
    the write lock the unit holds."""
    return select(func.coalesce(func.max(table.c.id), first - 1) + 1).scalar_subquery()


class SqliteCustomers(
    CustomerStore,
    statement=SqliteStatement,
    insert_customer=insert(customers)
    .values({**INSERTED_CUSTOMER, "id": _next_id(customers, FIRST_CUSTOMER_ID)})
    .returning(customers.c.id),
    insert_audit=insert(customer_audits).values(
        {**named_binds(inserted_columns(customer_audits)), "id": _next_id(customer_audits, 1)}
    ),
    # SQLite has no arrays: the skeletons go as one JSON list, each looked up in the index (SQLite
    # sees the partial index's condition in the IN; spelt out, it would range over it instead).
    look_alikes=look_alikes_statement(
        lambda skeleton: skeleton.in_(select(func.json_each(bindparam("skeletons")).table_valued("value").c.value))
    ),
    # The unit already holds the file's one write lock.
    lock_holders=False,
):
    # Every constraint's violation is an IntegrityError: only a unique index's is a race.
    unique_violations = (sqlite3.IntegrityError,)
    unique_violation = staticmethod(is_sqlite_unique_violation)

    @staticmethod
    def skeleton_list(skeletons: list[str]) -> Any:
        return orjson.dumps(skeletons).decode()


class SqliteLoyalty(
    LoyaltyStore,
    statement=SqliteStatement,
    insert_ledger=insert(points_ledger).values({**LEDGER_VALUES, "id": _next_id(points_ledger, 1)}),
    record_referral=sqlite_insert(referrals)
    .values(REFERRAL_VALUES)
    .on_conflict_do_nothing()
    .returning(referrals.c.referee_id),
):
    pass


class SqliteEvents(
    EventStore,
    statement=SqliteStatement,
    insert_event=insert(events).values({**INSERTED_EVENT, "id": _next_id(events, 1)}),
    unpositioned=UNPOSITIONED,
    unpositioned_of=UNPOSITIONED.limit(None).where(
        events.c.customer_id.in_(select(func.json_each(bindparam("customer_ids")).table_valued("value").c.value))
    ),
    open_stream=sqlite_insert(event_streams).values(org_id=bindparam("org_id")).on_conflict_do_nothing(),
):
    @staticmethod
    def id_list(ids: list[int]) -> Any:
        return orjson.dumps(ids).decode()


class SqliteStorage:
    """SQLite as registrations and look-ups use it: units of work on the writer's turn (updates),
    a request's new customers as one job of the writer, and look-ups on the reader."""

    def __init__(self, file: SqliteFile) -> None:
        self.file = file
        self._snapshot: SqliteConnection | None = None
        self._snapshot_turn = asyncio.Lock()

    def unit_of_work(self, *, readonly: bool = False) -> AbstractAsyncContextManager[StoreUnit]:
        return self._unit(readonly)

    @asynccontextmanager
    async def search_unit(self, timeout: float) -> AsyncIterator[StoreUnit]:
        """A search's unit, on the file's searcher: off the event loop, stopped at its deadline."""
        async with self.file.searcher.search(timeout) as conn:
            yield StoreUnit(SqliteCustomers(conn), SqliteLoyalty(conn), SqliteIdentityRequests(conn), SqliteEvents(conn),
                            SqliteDeliveries(conn), SqliteEventOperations(conn), SqliteConsole(conn))

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[StoreUnit]:
        """A read-only unit in one read transaction (one snapshot of the file, which in WAL mode never
        waits for the writer), on a connection of its own: the reader's is shared, and must never be
        left inside a transaction while its holder awaits. Snapshots take turns on it; each is a
        page's few reads by key, run in place as the reader's are."""
        async with self._snapshot_turn:
            if self._snapshot is None:
                writer = self.file.writer
                self._snapshot = SqliteConnection(
                    connect(writer.path, timeout=writer.timeout, synchronous=writer.synchronous, mmap_bytes=READER_MMAP_BYTES)
                )
            conn = self._snapshot
            conn.raw.execute("BEGIN")
            try:
                yield StoreUnit(SqliteCustomers(conn), SqliteLoyalty(conn), SqliteIdentityRequests(conn), SqliteEvents(conn),
                                SqliteDeliveries(conn), SqliteEventOperations(conn), SqliteConsole(conn))
            finally:
                if conn.raw.in_transaction:
                    conn.raw.execute("ROLLBACK")

    @asynccontextmanager
    async def _unit(self, readonly: bool) -> AsyncIterator[StoreUnit]:
        if readonly:
            reader = self.file.reader
            yield StoreUnit(SqliteCustomers(reader), SqliteLoyalty(reader), SqliteIdentityRequests(reader), SqliteEvents(reader),
                            SqliteDeliveries(reader), SqliteEventOperations(reader), SqliteConsole(reader))
            return
        async with self.file.writer.unit() as conn:
            yield StoreUnit(SqliteCustomers(conn), SqliteLoyalty(conn), SqliteIdentityRequests(conn), SqliteEvents(conn),
                            SqliteDeliveries(conn), SqliteEventOperations(conn), SqliteConsole(conn))

    async def insert_new(self, new_customers: list[NewCustomer], caller: Caller, at: datetime) -> list[int | None]:
        (ids,) = await self.file.writer.run(sqlite_register_new([Registration(new_customers, caller, at)]))
        return ids

    async def look_alikes(self, org_id: int, skeletons: list[str]) -> list[LookAlike]:
        return await SqliteCustomers(self.file.reader).look_alikes(org_id, skeletons)

    async def find_with_memberships(self, org_id: int, field: str, values: list[str | int]) -> Found:
        """The org's customers holding these values of one identifier, with their memberships, by value."""
        return await SqliteCustomers(self.file.reader).find_many_with_memberships(org_id, field, values)

    async def close(self) -> None:
        if self._snapshot is not None:
            self._snapshot.raw.close()
            self._snapshot = None
        await self.file.close()


# A registration's new customers, written by the file's writer (store.sqlite_file) in one job:
# the values are made ready on the event loop, and the job draws ids once (max + 1, under the write
# lock) and writes each table's rows with executemany. A customer whose identifier is taken by then
# writes nothing (ON CONFLICT DO NOTHING, as on PostgreSQL), and its id goes to the next one.
_SQLITE_NEW_CUSTOMER = SqliteStatement(
    sqlite_insert(customers)
    .values(named_binds(("org_id", "id", *STORED_COLUMNS, "created_at", "modified_at")))
    .on_conflict_do_nothing()
)
_SQLITE_NEW_AUDIT = SqliteStatement(
    insert(customer_audits).values(named_binds(("id", *inserted_columns(customer_audits)))),
    # The audit's changes arrive as the JSON text the audit keeps.
    stored=frozenset({"changes"}),
)
_SQLITE_NEW_MEMBERSHIP = SqliteStatement(INSERT_MEMBERSHIPS)
_SQLITE_NEW_ENTRY = SqliteStatement(insert(points_ledger).values(named_binds(("id", *inserted_columns(points_ledger)))))
_SQLITE_NEW_EVENT = SqliteStatement(insert(events).values(named_binds(("id", *INSERTED_EVENT))))
_SQLITE_LAST_IDS = (
    f"SELECT (SELECT coalesce(max(id), {FIRST_CUSTOMER_ID - 1}) FROM customers),"
    " (SELECT coalesce(max(id), 0) FROM customer_audits), (SELECT coalesce(max(id), 0) FROM points_ledger),"
    " (SELECT coalesce(max(id), 0) FROM events)"
)


@dataclasses.dataclass
class _SqliteNew:
    """One new customer's rows as SQLite is given them, ids left to the job."""

    customer: list[Any]
    audit: list[Any]
    joined: list[list[Any]]
    credited: list[list[Any]]
    evented: list[list[Any]]


def sqlite_register_new(registrations: list[Registration]) -> Callable[[sqlite3.Connection], list[list[int | None]]]:
    """The job that writes these registrations' new customers (of one org) on SQLite, with their
    audit records, memberships and ledger entries: each one's new id or None, by registration."""
    prepared = [[_sqlite_rows(new, registration) for new in registration.new_customers] for registration in registrations]

    def write(conn: sqlite3.Connection) -> list[list[int | None]]:
        last_customer, last_audit, last_entry, last_event = conn.execute(_SQLITE_LAST_IDS).fetchone()
        audits, joined, credited, evented = [], [], [], []
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
                for row in new.evented:
                    last_event += 1
                    row[_EVENT_ID], row[_EVENT_CUSTOMER] = last_event, last_customer
                    evented.append(row)
            answers.append(ids)
        conn.executemany(_SQLITE_NEW_AUDIT.sql, audits)
        conn.executemany(_SQLITE_NEW_MEMBERSHIP.sql, joined)
        conn.executemany(_SQLITE_NEW_ENTRY.sql, credited)
        conn.executemany(_SQLITE_NEW_EVENT.sql, evented)
        return answers

    return write


_CUSTOMER_ID = _SQLITE_NEW_CUSTOMER.names.index("id")
_AUDIT_ID, _AUDIT_CUSTOMER = (_SQLITE_NEW_AUDIT.names.index(name) for name in ("id", "customer_id"))
_MEMBERSHIP_CUSTOMER = _SQLITE_NEW_MEMBERSHIP.names.index("customer_id")
_ENTRY_ID, _ENTRY_CUSTOMER = (_SQLITE_NEW_ENTRY.names.index(name) for name in ("id", "customer_id"))
_EVENT_ID, _EVENT_CUSTOMER = (_SQLITE_NEW_EVENT.names.index(name) for name in ("id", "customer_id"))


def _sqlite_rows(new: NewCustomer, registration: Registration) -> _SqliteNew:
    customer, at, caller = new.customer, registration.at, registration.caller
    values = {"org_id": customer.org_id, "id": None, **stored_values(customer), "created_at": at, "modified_at": at}
    audit = {
        "id": None,
        "org_id": customer.org_id,
        "customer_id": None,
        "created_at": at,
        "event_type": "CREATE",
        "changes": customers_module.audit_changes(new.changes),
        **audit_context(caller),
        "warnings": audit_warnings(new.warnings),
    }
    joined = [
        {**{name: getattr(m, name) for name in MEMBERSHIP_COLUMNS}, "customer_id": None, "enrolled_at": at}
        for m in new.memberships
    ]
    credited = [
        {**entry_columns(e), "id": None, "customer_id": None, "created_at": at, "request_id": caller.request_id}
        for e in new.entries
    ]
    evented = event_rows(caller.written(at), 0, 1, new.events)
    return _SqliteNew(
        list(_SQLITE_NEW_CUSTOMER.arguments(values)),
        list(_SQLITE_NEW_AUDIT.arguments(audit)),
        [list(_SQLITE_NEW_MEMBERSHIP.arguments(row)) for row in joined],
        [list(_SQLITE_NEW_ENTRY.arguments(row)) for row in credited],
        [list(_SQLITE_NEW_EVENT.arguments({**row, "id": None})) for row in evented],
    )
