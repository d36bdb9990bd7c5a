"""Memberships, the points ledger and referrals: every query scoped by org_id. Each engine's store
(store.postgres, store.sqlite) compiles these statements, with its own ledger insert and referral
record, for its driver."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.sql.expression import Executable

from patron.loyalty.model import LedgerEntry, Membership
from patron.store.db import inserted_columns, named_binds
from patron.store.schema import memberships, points_ledger, referrals
from patron.store.statements import Statement

MEMBERSHIP_COLUMNS = [c.name for c in memberships.columns if c.name != "enrolled_at"]
MEMBERSHIPS_OF = (
    select(*(memberships.c[name] for name in MEMBERSHIP_COLUMNS))
    .where(memberships.c.org_id == bindparam("org_id"), memberships.c.customer_id == bindparam("customer_id"))
    .order_by(memberships.c.program_id)
)
INSERT_MEMBERSHIPS = insert(memberships).values(named_binds(inserted_columns(memberships)))
LEDGER_VALUES = named_binds(inserted_columns(points_ledger))
CREDIT = (
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
    .returning(memberships.c.loyalty_points)
)
# A referee's first referral is written, and returns its row; a second writes nothing (each engine's
# INSERT ... ON CONFLICT DO NOTHING RETURNING referee_id).
REFERRAL_VALUES = named_binds(inserted_columns(referrals))


def entry_columns(entry: LedgerEntry) -> dict[str, Any]:
    """A ledger entry's columns, but for the row's id, time and request."""
    return {
        "org_id": entry.org_id,
        "customer_id": entry.customer_id,
        "program_id": entry.program_id,
        "kind": entry.kind.value,
        "currency": entry.currency,
        "amount": entry.amount,
    }


class LoyaltyStore:
    """Memberships, ledger and referrals, read and written in one unit of work (`conn`): the rules
    are the same on every engine; a subclass names its statement kind, its ledger insert and its
    referral record."""

    _memberships_of: ClassVar[Statement]
    _insert_memberships: ClassVar[Statement]
    _credit: ClassVar[Statement]
    _insert_ledger: ClassVar[Statement]
    _record_referral: ClassVar[Statement]

    def __init_subclass__(
        cls, *, statement: type[Statement], insert_ledger: Executable, record_referral: Executable, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls._memberships_of = statement(MEMBERSHIPS_OF)
        cls._insert_memberships = statement(INSERT_MEMBERSHIPS)
        cls._credit = statement(CREDIT)
        cls._insert_ledger = statement(insert_ledger)
        cls._record_referral = statement(record_referral)

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def memberships(self, org_id: int, customer_id: int) -> list[Membership]:
        rows = await self._memberships_of.fetch(self.conn, {"org_id": org_id, "customer_id": customer_id})
        return [Membership(**dict(row)) for row in rows]

    async def join(self, joined: list[Membership], at: datetime) -> None:
        if joined:
            rows = [{name: getattr(m, name) for name in MEMBERSHIP_COLUMNS} | {"enrolled_at": at} for m in joined]
            await self._insert_memberships.execute_many(self.conn, rows)

    async def append(self, entries: list[LedgerEntry], request_id: str, at: datetime) -> None:
        rows = [{**entry_columns(e), "created_at": at, "request_id": request_id} for e in entries]
        await self._insert_ledger.execute_many(self.conn, rows)

    async def credit(self, org_id: int, customer_id: int, program_id: int, points: int) -> int | None:
        """Add points to an existing membership's balances (its ledger row is appended alongside):
        its points after, or None when it has no such membership."""
        rows = await self._credit.fetch(
            self.conn, {"key_org_id": org_id, "key_customer_id": customer_id, "key_program_id": program_id, "points": points}
        )
        return rows[0]["loyalty_points"] if rows else None

    async def record_referral(self, org_id: int, referee_id: int, referrer_id: int, at: datetime) -> bool:
        """True when this is the referee's first referral; a customer is referred only once."""
        values = {"org_id": org_id, "referee_id": referee_id, "referrer_id": referrer_id, "created_at": at}
        return len(await self._record_referral.fetch(self.conn, values)) == 1
