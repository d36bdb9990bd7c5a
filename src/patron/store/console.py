"""The member-care console's SQL: sessions, a customer's page, the review queue's count and the
org overview; every query of an org's data scoped by org_id (one value, so one shard on Citus)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from patron.store.schema import (
    console_sessions,
    console_users,
    customer_audits,
    customers,
    memberships,
    points_ledger,
    referrals,
)


@dataclass(frozen=True)
class SessionRow:
    """A live session and its user, as the user is now."""

    login: str
    org_id: int
    name: str
    access_group: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class Referral:
    customer_id: int
    firstname: str
    lastname: str
    at: datetime


# A session counts only while it has not ended nor expired, and its user is enabled, of the same
# org, and still at the generation the session was started at (a new password, or a removal from
# the org file, moves the user's generation on).
_LIVE_SESSION = (
    select(
        console_sessions.c.login,
        console_sessions.c.org_id,
        console_sessions.c.csrf_token,
        console_sessions.c.expires_at,
        console_users.c.name,
        console_users.c.access_group,
    )
    .select_from(console_sessions.join(console_users, console_users.c.login == console_sessions.c.login))
)


class ConsoleStore:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    # Sessions: the id is the SHA-256 of the cookie's secret.

    async def start_session(
        self, session_id: str, login: str, org_id: int, generation: int, csrf_token: str, at: datetime, expires_at: datetime
    ) -> None:
        await self.conn.execute(
            insert(console_sessions).values(
                id=session_id,
                login=login,
                org_id=org_id,
                session_generation=generation,
                csrf_token=csrf_token,
                created_at=at,
                expires_at=expires_at,
            )
        )

    async def live_session(self, session_id: str, now: datetime) -> SessionRow | None:
        row = (
            await self.conn.execute(
                _LIVE_SESSION.where(
                    console_sessions.c.id == session_id,
                    console_sessions.c.ended_at.is_(None),
                    console_sessions.c.expires_at > now,
                    console_users.c.enabled.is_(True),
                    console_users.c.org_id == console_sessions.c.org_id,
                    console_users.c.session_generation == console_sessions.c.session_generation,
                )
            )
        ).first()
        if row is None:
            return None
        return SessionRow(row.login, row.org_id, row.name, row.access_group, row.csrf_token, row.expires_at)

    async def end_session(self, session_id: str, now: datetime) -> None:
        await self.conn.execute(
            update(console_sessions)
            .where(console_sessions.c.id == session_id, console_sessions.c.ended_at.is_(None))
            .values(ended_at=now)
        )

    async def purge_sessions(self, login: str, now: datetime, started_before: datetime) -> None:
        """Delete the user's sessions that are over: ended, expired, or started before
        `started_before` (older than a session now lasts), in one statement on the login's index."""
        await self.conn.execute(
            delete(console_sessions).where(
                console_sessions.c.login == login,
                or_(
                    console_sessions.c.ended_at.is_not(None),
                    console_sessions.c.expires_at <= now,
                    console_sessions.c.created_at < started_before,
                ),
            )
        )

    # A customer's page (the customer and their memberships are customer/get's look-up).

    async def customer_names(self, org_id: int, customer_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        if not customer_ids:
            return {}
        rows = await self.conn.execute(
            select(customers.c.id, customers.c.firstname, customers.c.lastname).where(
                customers.c.org_id == org_id, customers.c.id.in_(list(customer_ids))
            )
        )
        return {row.id: (row.firstname, row.lastname) for row in rows}

    async def ledger(self, org_id: int, customer_id: int, limit: int = 100) -> list[dict[str, Any]]:
        rows = await self.conn.execute(
            select(points_ledger)
            .where(points_ledger.c.org_id == org_id, points_ledger.c.customer_id == customer_id)
            .order_by(points_ledger.c.id.desc())
            .limit(limit)
        )
        return [dict(row) for row in rows.mappings()]

    async def referred_by(self, org_id: int, customer_id: int) -> Referral | None:
        row = (
            await self.conn.execute(
                select(referrals.c.referrer_id, referrals.c.created_at, customers.c.firstname, customers.c.lastname)
                .select_from(
                    referrals.outerjoin(
                        customers, and_(customers.c.org_id == referrals.c.org_id, customers.c.id == referrals.c.referrer_id)
                    )
                )
                .where(referrals.c.org_id == org_id, referrals.c.referee_id == customer_id)
            )
        ).first()
        if row is None:
            return None
        return Referral(row.referrer_id, row.firstname or "", row.lastname or "", row.created_at)

    async def referred(self, org_id: int, customer_id: int, limit: int = 100) -> list[Referral]:
        rows = await self.conn.execute(
            select(referrals.c.referee_id, referrals.c.created_at, customers.c.firstname, customers.c.lastname)
            .select_from(
                referrals.outerjoin(
                    customers, and_(customers.c.org_id == referrals.c.org_id, customers.c.id == referrals.c.referee_id)
                )
            )
            .where(referrals.c.org_id == org_id, referrals.c.referrer_id == customer_id)
            .order_by(referrals.c.created_at.desc())
            .limit(limit)
        )
        return [Referral(row.referee_id, row.firstname or "", row.lastname or "", row.created_at) for row in rows]

    # The overview: counts over the org's rows, each one statement.

    async def registrations_per_day(self, org_id: int, bounds: Sequence[datetime]) -> list[int]:
        """Customers registered in each [bounds[i], bounds[i+1]): the days are the org's local days,
        given as UTC moments, so one range of the (org_id, registered_on) index answers them all."""
        if len(bounds) < 2:
            return []
        column = customers.c.registered_on
        counts = [
            func.count(case((and_(column >= low, column < high), 1))).label(f"d{i}")
            for i, (low, high) in enumerate(zip(bounds, bounds[1:]))
        ]
        row = (
            await self.conn.execute(
                select(*counts).where(customers.c.org_id == org_id, column >= bounds[0], column < bounds[-1])
            )
        ).one()
        return [int(value or 0) for value in row]

    async def registrations_by(self, org_id: int, column_name: str, since: datetime) -> list[tuple[str | None, int]]:
        """Customers registered since `since`, by source or registered_till, most first."""
        column = customers.c[column_name]
        count = func.count().label("n")
        rows = await self.conn.execute(
            select(column, count)
            .where(customers.c.org_id == org_id, customers.c.registered_on >= since)
            .group_by(column)
            .order_by(count.desc(), column)
        )
        return [(row[0], int(row[1])) for row in rows]

    async def customers_by_type(self, org_id: int) -> dict[str, int]:
        rows = await self.conn.execute(
            select(customers.c.type, func.count()).where(customers.c.org_id == org_id).group_by(customers.c.type)
        )
        return {row[0]: int(row[1]) for row in rows}

    async def members_by_slab(self, org_id: int) -> list[tuple[int, int, int]]:
        """(programme id, slab serial, members) of the org's memberships."""
        rows = await self.conn.execute(
            select(memberships.c.program_id, memberships.c.slab_serial, func.count())
            .where(memberships.c.org_id == org_id)
            .group_by(memberships.c.program_id, memberships.c.slab_serial)
            .order_by(memberships.c.program_id, memberships.c.slab_serial)
        )
        return [(int(row[0]), int(row[1]), int(row[2])) for row in rows]

    async def warnings_since(self, org_id: int, since: datetime) -> list[Any]:
        """The warning codes of each CREATE and UPDATE audit record since `since` that has any (the
        column `warnings`: a JSON list of code numbers); the caller counts them."""
        warnings = customer_audits.c.warnings
        rows = await self.conn.execute(
            select(warnings).where(
                customer_audits.c.org_id == org_id,
                customer_audits.c.created_at >= since,
                customer_audits.c.event_type.in_(("CREATE", "UPDATE")),
                warnings.is_not(None),
            )
        )
        return [row[0] for row in rows]
