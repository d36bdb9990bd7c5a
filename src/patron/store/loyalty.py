"""Memberships, the points ledger and referrals: every query scoped by org_id."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from patron.loyalty.model import LedgerEntry, Membership
from patron.store.db import inserted_columns, is_sqlite, named_binds
from patron.store.statements import Connection, DriverStatement
from patron.store.schema import memberships, points_ledger, referrals

MEMBERSHIP_COLUMNS = [c.name for c in memberships.columns if c.name != "enrolled_at"]
_MEMBERSHIPS_OF = DriverStatement(
    select(*(memberships.c[name] for name in MEMBERSHIP_COLUMNS))
    .where(memberships.c.org_id == bindparam("org_id"), memberships.c.customer_id == bindparam("customer_id"))
    .order_by(memberships.c.program_id)
)


# Built once, executed with values (driver statements on PostgreSQL; see store.customers).
INSERT_MEMBERSHIPS = DriverStatement(
    insert(memberships).values(named_binds(inserted_columns(memberships)))
)
_INSERT_LEDGER = DriverStatement(insert(points_ledger).values(named_binds(inserted_columns(points_ledger))))
# SQLite has no sequences: each row's id is max(id) + 1, drawn in its INSERT, under the write lock.
_SQLITE_INSERT_LEDGER = DriverStatement(
    insert(points_ledger).values(
        {
            **named_binds(inserted_columns(points_ledger)),
            "id": select(func.coalesce(func.max(points_ledger.c.id), 0) + 1).scalar_subquery(),
        }
    )
)
_CREDIT = DriverStatement(
    update(memberships)
    .where(
        memberships.c.org_id == bindparam("key_org_id"),
        memberships.c.customer_id == bindparam("key_customer_id"),
        memberships.c.program_id == bindparam("key_program_id"),
    )
    .values(
        lifetime_points=memberships.c.lifetime_points + bindparam("points"),
        loyalty_points=memberships.c.loyalty_points + bindparam("points"),
    )
)
# A referee's first referral is written; a second writes nothing (and returns no row).
_REFERRAL_VALUES = named_binds(inserted_columns(referrals))
_PG_RECORD_REFERRAL = DriverStatement(
    pg_insert(referrals).values(_REFERRAL_VALUES).on_conflict_do_nothing().returning(referrals.c.referee_id)
)
_SQLITE_RECORD_REFERRAL = DriverStatement(
    sqlite_insert(referrals).values(_REFERRAL_VALUES).on_conflict_do_nothing().returning(referrals.c.referee_id)
)


class LoyaltyStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def memberships(self, org_id: int, customer_id: int) -> list[Membership]:
        rows = await _MEMBERSHIPS_OF.fetch(self.conn, {"org_id": org_id, "customer_id": customer_id})
        return [Membership(**dict(row)) for row in rows]

    async def join(self, joined: list[Membership], at: datetime) -> None:
        if joined:
            rows = [{name: getattr(m, name) for name in MEMBERSHIP_COLUMNS} | {"enrolled_at": at} for m in joined]
            await INSERT_MEMBERSHIPS.execute_many(self.conn, rows)

    async def append(self, entries: list[LedgerEntry], request_id: str, at: datetime) -> None:
        if not entries:
            return
        rows = [
            {
                "org_id": e.org_id,
                "customer_id": e.customer_id,
                "program_id": e.program_id,
                "kind": e.kind.value,
                "currency": e.currency,
                "amount": e.amount,
                "created_at": at,
                "request_id": request_id,
            }
            for e in entries
        ]
        await (_SQLITE_INSERT_LEDGER if is_sqlite(self.conn) else _INSERT_LEDGER).execute_many(self.conn, rows)

    async def credit(self, org_id: int, customer_id: int, program_id: int, points: int) -> None:
        """Add points to an existing membership's balances (its ledger row is appended alongside)."""
        await _CREDIT.execute(
            self.conn, {"key_org_id": org_id, "key_customer_id": customer_id, "key_program_id": program_id, "points": points}
        )

    async def record_referral(self, org_id: int, referee_id: int, referrer_id: int, at: datetime) -> bool:
        """True when this is the referee's first referral; a customer is referred only once."""
        values = {"org_id": org_id, "referee_id": referee_id, "referrer_id": referrer_id, "created_at": at}
        statement = _SQLITE_RECORD_REFERRAL if is_sqlite(self.conn) else _PG_RECORD_REFERRAL
        return len(await statement.fetch(self.conn, values)) == 1
