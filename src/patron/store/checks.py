"""The invariant checker's queries: rows that break a rule of the data, every query scoped by org_id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import and_, exists, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from patron.customers.model import IDENTIFIERS, NON_LOYALTY
from patron.loyalty.model import POINTS
from patron.store.schema import (
    customer_audits,
    customers,
    memberships,
    orgs,
    points_ledger,
    referrals,
)

# Identifier columns that must name one customer per org. Emails are compared as Patron compares
# them (case-insensitively), so that a stored case variant shows even though the unique index,
# which is on the exact value, let it in.
_IDENTIFIER_COLUMNS = (*IDENTIFIERS, "referral_code")
_CASE_INSENSITIVE = frozenset({"email"})
# Customers read at once where a check looks at every customer of an org.
_PAGE = 10_000


def _customer_exists(org_id: int, customer_id: Any) -> Any:
    return exists().where(customers.c.org_id == org_id, customers.c.id == customer_id)


class CheckStore:
    """Read-only queries for `patron check`; each is one statement, so each sees one snapshot."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def org_exists(self, org_id: int) -> bool:
        return await self.conn.scalar(select(literal(True)).where(orgs.c.id == org_id)) is not None

    async def shared_identifiers(self, org_id: int) -> list[tuple[str, str, list[int]]]:
        """(identifier, value, customer ids) for every value held by more than one customer."""
        shared = []
        for name in _IDENTIFIER_COLUMNS:
            column = customers.c[name]
            value = func.lower(column) if name in _CASE_INSENSITIVE else column
            repeated = (
                select(value)
                .where(customers.c.org_id == org_id, column.is_not(None))
                .group_by(value)
                .having(func.count() > 1)
            )
            rows = await self.conn.execute(
                select(value.label("value"), customers.c.id)
                .where(customers.c.org_id == org_id, value.in_(repeated))
                .order_by(value, customers.c.id)
            )
            holders: dict[str, list[int]] = {}
            for row in rows:
                holders.setdefault(row.value, []).append(row.id)
            shared += [(name, held, ids) for held, ids in holders.items()]
        return shared

    async def identifier_values(self, org_id: int, name: str) -> AsyncIterator[tuple[int, str]]:
        """(customer id, value) of every customer of the org holding this identifier, read a page
        at a time (by id), so that an org of millions is never held in memory at once."""
        column = customers.c[name]
        after = 0
        while True:
            rows = (
                await self.conn.execute(
                    select(customers.c.id, column)
                    .where(customers.c.org_id == org_id, customers.c.id > after, column.is_not(None))
                    .order_by(customers.c.id)
                    .limit(_PAGE)
                )
            ).all()
            for row in rows:
                yield row.id, row[1]
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    async def holders_of(self, org_id: int, name: str, values: list[str]) -> dict[str, list[int]]:
        """The customers holding each of these values of one identifier (emails in any case)."""
        column = customers.c[name]
        value = func.lower(column) if name in _CASE_INSENSITIVE else column
        held: dict[str, list[int]] = {}
        for start in range(0, len(values), 500):
            rows = await self.conn.execute(
                select(value.label("value"), customers.c.id)
                .where(customers.c.org_id == org_id, value.in_(values[start : start + 500]))
                .order_by(customers.c.id)
            )
            for row in rows:
                held.setdefault(row.value, []).append(row.id)
        return held

    async def points_out_of_step(self, org_id: int) -> list[Any]:
        """Memberships whose balances differ from the sum of their points ledger rows."""
        earned = (
            select(
                points_ledger.c.customer_id,
                points_ledger.c.program_id,
                func.sum(points_ledger.c.amount).label("total"),
            )
            .where(points_ledger.c.org_id == org_id, points_ledger.c.currency == POINTS)
            .group_by(points_ledger.c.customer_id, points_ledger.c.program_id)
            .subquery()
        )
        total = func.coalesce(earned.c.total, 0)
        statement = (
            select(
                memberships.c.customer_id,
                memberships.c.program_id,
                memberships.c.lifetime_points,
                memberships.c.loyalty_points,
                total.label("ledger_total"),
            )
            .select_from(
                memberships.outerjoin(
                    earned,
                    and_(
                        earned.c.customer_id == memberships.c.customer_id,
                        earned.c.program_id == memberships.c.program_id,
                    ),
                )
            )
            .where(
                memberships.c.org_id == org_id,
                (memberships.c.lifetime_points != total) | (memberships.c.loyalty_points != total),
            )
            .order_by(memberships.c.customer_id, memberships.c.program_id)
        )
        return list(await self.conn.execute(statement))

    async def ledger_rows_without_owner(self, org_id: int) -> list[Any]:
        """Ledger rows whose customer, or whose membership of the programme, does not exist."""
        has_membership = exists().where(
            memberships.c.org_id == org_id,
            memberships.c.customer_id == points_ledger.c.customer_id,
            memberships.c.program_id == points_ledger.c.program_id,
        )
        statement = (
            select(
                points_ledger.c.id,
                points_ledger.c.customer_id,
                points_ledger.c.program_id,
                _customer_exists(org_id, points_ledger.c.customer_id).label("customer_exists"),
            )
            .where(points_ledger.c.org_id == org_id, ~has_membership)
            .order_by(points_ledger.c.id)
        )
        return list(await self.conn.execute(statement))

    async def memberships_without_customer(self, org_id: int) -> list[Any]:
        statement = (
            select(memberships.c.customer_id, memberships.c.program_id)
            .where(memberships.c.org_id == org_id, ~_customer_exists(org_id, memberships.c.customer_id))
            .order_by(memberships.c.customer_id, memberships.c.program_id)
        )
        return list(await self.conn.execute(statement))

    async def customers_without_creation_audit(self, org_id: int) -> list[int]:
        created = exists().where(
            customer_audits.c.org_id == org_id,
            customer_audits.c.customer_id == customers.c.id,
            customer_audits.c.event_type == "CREATE",
        )
        statement = select(customers.c.id).where(customers.c.org_id == org_id, ~created).order_by(customers.c.id)
        return list(await self.conn.scalars(statement))

    async def broken_referrals(self, org_id: int) -> list[Any]:
        """Referrals whose referee or referrer does not exist, or that refer a customer to itself."""
        referee_exists = _customer_exists(org_id, referrals.c.referee_id)
        referrer_exists = _customer_exists(org_id, referrals.c.referrer_id)
        statement = (
            select(
                referrals.c.referee_id,
                referrals.c.referrer_id,
                referee_exists.label("referee_exists"),
                referrer_exists.label("referrer_exists"),
            )
            .where(
                referrals.c.org_id == org_id,
                or_(~referee_exists, ~referrer_exists, referrals.c.referee_id == referrals.c.referrer_id),
            )
            .order_by(referrals.c.referee_id, referrals.c.referrer_id)
        )
        return list(await self.conn.execute(statement))

    async def referees_referred_again(self, org_id: int) -> list[Any]:
        """Referees with more than one referral (the primary key forbids it; the checker does not
        take that on trust, as a restored or hand-edited database may lack the key)."""
        statement = (
            select(referrals.c.referee_id, func.count().label("times"))
            .where(referrals.c.org_id == org_id)
            .group_by(referrals.c.referee_id)
            .having(func.count() > 1)
            .order_by(referrals.c.referee_id)
        )
        return list(await self.conn.execute(statement))

    async def non_loyalty_members(self, org_id: int) -> list[Any]:
        statement = (
            select(customers.c.id, memberships.c.program_id)
            .join(
                memberships,
                and_(memberships.c.org_id == customers.c.org_id, memberships.c.customer_id == customers.c.id),
            )
            .where(customers.c.org_id == org_id, customers.c.type == NON_LOYALTY)
            .order_by(customers.c.id, memberships.c.program_id)
        )
        return list(await self.conn.execute(statement))
