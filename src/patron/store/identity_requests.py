"""Identity change requests (member-care.md §2): every statement scoped by org_id, the rules once,
compiled for each engine by the subclasses below; one PENDING request per customer and identifier
is the partial unique index's rule, which a write that loses the race hears as PendingRequestRaced."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import asyncpg
from sqlalchemy import bindparam, func, insert, literal_column, select, update
from sqlalchemy.sql.expression import Executable

from patron.customers.identity_requests import PENDING, SUPERSEDED, IdentityRequest, PendingRequestRaced
from patron.store.db import inserted_columns, named_binds
from patron.store.schema import identity_change_requests as requests
from patron.store.statements import PgStatement, SqliteStatement, Statement, is_sqlite_unique_violation

COLUMNS = [column.name for column in requests.columns]
_SELECT = select(requests)
_OF_ORG = requests.c.org_id == bindparam("org_id")
# Statuses as literals in the SQL: asyncpg's statements take only the values they are given.
_PENDING = requests.c.status == literal_column(f"'{PENDING}'")

GET = _SELECT.where(_OF_ORG, requests.c.id == bindparam("id"))
SUPERSEDE = (
    update(requests)
    .where(
        _OF_ORG,
        requests.c.customer_id == bindparam("customer_id"),
        requests.c.identifier == bindparam("identifier"),
        _PENDING,
    )
    .values(status=literal_column(f"'{SUPERSEDED}'"), decided_at=bindparam("at"), decision_reason=bindparam("reason"))
    .returning(*requests.columns)
)
# Only a PENDING request is settled: of two reviewers deciding one request, the second settles nothing.
DECIDE = (
    update(requests)
    .where(_OF_ORG, requests.c.id == bindparam("id"), _PENDING)
    .values(
        status=bindparam("status"),
        decided_at=bindparam("at"),
        decided_by=bindparam("decided_by"),
        decision_reason=bindparam("reason"),
    )
    .returning(*requests.columns)
)
# The review queue, oldest first (the index on org_id, status, id).
PENDING_OF_ORG = (
    _SELECT.where(_OF_ORG, _PENDING).order_by(requests.c.id).limit(bindparam("limit")).offset(bindparam("offset"))
)
COUNT_PENDING = select(func.count().label("n")).select_from(requests).where(_OF_ORG, _PENDING)
OF_CUSTOMER = (
    _SELECT.where(_OF_ORG, requests.c.customer_id == bindparam("customer_id"))
    .order_by(requests.c.id.desc())
    .limit(bindparam("limit"))
)
# The customer's pending request for one identifier (the partial unique index's), read in the
# unit that holds the customer's lock: no other unit writes it meanwhile.
PENDING_OF_CUSTOMER = _SELECT.where(
    _OF_ORG,
    requests.c.customer_id == bindparam("customer_id"),
    requests.c.identifier == bindparam("identifier"),
    _PENDING,
)
# A caller's pending requests (the partial index on org_id, requester).
COUNT_PENDING_OF_REQUESTER = (
    select(func.count().label("n"))
    .select_from(requests)
    .where(_OF_ORG, requests.c.requester == bindparam("requester"), _PENDING)
)
INSERTED = named_binds(inserted_columns(requests))


def request_of(row: Mapping[str, Any]) -> IdentityRequest:
    return IdentityRequest(**{name: row[name] for name in COLUMNS})


class IdentityRequestStore:
    """The requests of the orgs, read and written inside one unit of work (`conn`). A subclass
    names its engine's statement kind, its insert (ids) and its driver's unique violations
    (`unique_violation`: whether an error of that class is one)."""

    unique_violations: ClassVar[tuple[type[Exception], ...]]
    _get: ClassVar[Statement]
    _supersede: ClassVar[Statement]
    _insert: ClassVar[Statement]
    _decide: ClassVar[Statement]
    _pending_of_org: ClassVar[Statement]
    _count_pending: ClassVar[Statement]
    _of_customer: ClassVar[Statement]
    _pending_of_customer: ClassVar[Statement]
    _count_pending_of_requester: ClassVar[Statement]

    def __init_subclass__(cls, *, statement: type[Statement], insert_request: Executable, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._get = statement(GET)
        cls._supersede = statement(SUPERSEDE)
        cls._insert = statement(insert_request)
        cls._decide = statement(DECIDE)
        cls._pending_of_org = statement(PENDING_OF_ORG)
        cls._count_pending = statement(COUNT_PENDING)
        cls._of_customer = statement(OF_CUSTOMER)
        cls._pending_of_customer = statement(PENDING_OF_CUSTOMER)
        cls._count_pending_of_requester = statement(COUNT_PENDING_OF_REQUESTER)

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def supersede(
        self, org_id: int, customer_id: int, identifier: str, at: datetime, reason: str
    ) -> list[IdentityRequest]:
        values = {"org_id": org_id, "customer_id": customer_id, "identifier": identifier, "at": at, "reason": reason}
        return [request_of(row) for row in await self._supersede.fetch(self.conn, values)]

    async def insert(self, request: IdentityRequest) -> IdentityRequest:
        values = {name: getattr(request, name) for name in INSERTED}
        try:
            (row,) = await self._insert.fetch(self.conn, values)
        except self.unique_violations as exc:
            if not self.unique_violation(exc):
                raise
            raise PendingRequestRaced(str(exc)) from exc
        return request_of(row)

    async def get(self, org_id: int, request_id: int) -> IdentityRequest | None:
        rows = await self._get.fetch(self.conn, {"org_id": org_id, "id": request_id})
        return request_of(rows[0]) if rows else None

    async def decide(
        self, org_id: int, request_id: int, status: str, at: datetime, decided_by: str, reason: str
    ) -> IdentityRequest | None:
        values = {"org_id": org_id, "id": request_id, "status": status, "at": at, "decided_by": decided_by, "reason": reason}
        rows = await self._decide.fetch(self.conn, values)
        return request_of(rows[0]) if rows else None

    @staticmethod
    def unique_violation(exc: Exception) -> bool:
        # asyncpg's UniqueViolationError is a unique index's refusal and nothing else.
        return True

    async def pending(self, org_id: int, limit: int, offset: int) -> list[IdentityRequest]:
        rows = await self._pending_of_org.fetch(self.conn, {"org_id": org_id, "limit": limit, "offset": offset})
        return [request_of(row) for row in rows]

    async def count_pending(self, org_id: int) -> int:
        (row,) = await self._count_pending.fetch(self.conn, {"org_id": org_id})
        return int(row["n"])

    async def of_customer(self, org_id: int, customer_id: int, limit: int) -> list[IdentityRequest]:
        rows = await self._of_customer.fetch(self.conn, {"org_id": org_id, "customer_id": customer_id, "limit": limit})
        return [request_of(row) for row in rows]

    async def pending_of(self, org_id: int, customer_id: int, identifier: str) -> IdentityRequest | None:
        values = {"org_id": org_id, "customer_id": customer_id, "identifier": identifier}
        rows = await self._pending_of_customer.fetch(self.conn, values)
        return request_of(rows[0]) if rows else None

    async def count_pending_of(self, org_id: int, requester: str) -> int:
        (row,) = await self._count_pending_of_requester.fetch(self.conn, {"org_id": org_id, "requester": requester})
        return int(row["n"])


class PgIdentityRequests(
    IdentityRequestStore,
    statement=PgStatement,
    insert_request=insert(requests).values(INSERTED).returning(*requests.columns),
):
    unique_violations = (asyncpg.UniqueViolationError,)


class SqliteIdentityRequests(
    IdentityRequestStore,
    statement=SqliteStatement,
    # max(id) + 1 under the write lock the unit holds, as SQLite's other ids are drawn.
    insert_request=insert(requests)
    .values({**INSERTED, "id": select(func.coalesce(func.max(requests.c.id), 0) + 1).scalar_subquery()})
    .returning(*requests.columns),
):
    # Every constraint's violation is an IntegrityError: only a unique index's is a race.
    unique_violations = (sqlite3.IntegrityError,)
    unique_violation = staticmethod(is_sqlite_unique_violation)
