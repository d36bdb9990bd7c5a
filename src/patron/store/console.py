"""The member-care console's SQL (customers.ports.ConsoleRepository): sessions, a customer page's
ledger and referrals, the review queue's names and the org overview's counts; every query of an
org's data scoped by org_id (one value, so one shard on Citus), compiled for each engine by the
subclasses at the end."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Literal

import orjson
from sqlalchemy import ARRAY, BigInteger, and_, bindparam, case, delete, func, insert, literal_column, or_, select, update
from sqlalchemy.sql.expression import ColumnElement, Executable

from patron.customers.ports import ConsoleSession, LedgerLine, NewSession, Referral
from patron.store.db import named_binds
from patron.store.schema import console_sessions, console_users, customer_audits, customers, memberships, points_ledger, referrals
from patron.store.statements import PgStatement, SqliteStatement, Statement

_sessions = console_sessions.c
_ORG = customers.c.org_id == bindparam("org_id")
_ONE: ColumnElement[int] = literal_column("1")

START_SESSION = insert(console_sessions).values(
    named_binds(("id", "login", "org_id", "session_generation", "csrf_token", "created_at", "expires_at"))
)
# A session counts only while it has not ended nor expired, and its user is enabled, of the same
# org, and still at the generation the session was started at (a new password, or a removal from
# the org file, moves the user's generation on).
LIVE_SESSION = (
    select(_sessions.login, _sessions.org_id, _sessions.csrf_token, _sessions.expires_at, console_users.c.name,
           console_users.c.access_group)
    .select_from(console_sessions.join(console_users, console_users.c.login == _sessions.login))
    .where(
        _sessions.id == bindparam("id"),
        _sessions.ended_at.is_(None),
        _sessions.expires_at > bindparam("now"),
        console_users.c.enabled.is_(True),
        console_users.c.org_id == _sessions.org_id,
        console_users.c.session_generation == _sessions.session_generation,
    )
)
END_SESSION = (
    update(console_sessions)
    .where(_sessions.id == bindparam("id"), _sessions.ended_at.is_(None))
    .values(ended_at=bindparam("now"))
)
# In one statement on the login's index.
PURGE_SESSIONS = delete(console_sessions).where(
    _sessions.login == bindparam("login"),
    or_(_sessions.ended_at.is_not(None), _sessions.expires_at <= bindparam("now"),
        _sessions.created_at < bindparam("started_before")),
)

LEDGER = (
    select(points_ledger.c.created_at, points_ledger.c.program_id, points_ledger.c.kind, points_ledger.c.currency,
           points_ledger.c.amount)
    .where(points_ledger.c.org_id == bindparam("org_id"), points_ledger.c.customer_id == bindparam("customer_id"))
    .order_by(points_ledger.c.id.desc())
    .limit(bindparam("limit"))
)


def _referral(other: str) -> Any:
    """The referrals of one side, with the other side's name (its customer may be gone)."""
    return select(referrals.c[other].label("customer_id"), referrals.c.created_at, customers.c.firstname,
                  customers.c.lastname).select_from(
        referrals.outerjoin(customers, and_(customers.c.org_id == referrals.c.org_id, customers.c.id == referrals.c[other]))
    )


REFERRED_BY = _referral("referrer_id").where(
    referrals.c.org_id == bindparam("org_id"), referrals.c.referee_id == bindparam("customer_id")
)
REFERRED = (
    _referral("referee_id")
    .where(referrals.c.org_id == bindparam("org_id"), referrals.c.referrer_id == bindparam("customer_id"))
    .order_by(referrals.c.created_at.desc())
    .limit(bindparam("limit"))
)


def _registered_by(column: str) -> Executable:
    count = func.count().label("n")
    return (
        select(customers.c[column].label("value"), count)
        .where(_ORG, customers.c.registered_on >= bindparam("since"))
        .group_by(customers.c[column])
        .order_by(count.desc(), customers.c[column])
    )


def per_day(days: int) -> Executable:
    """Customers registered in each of `days` ranges [b{i}, b{i+1}): the days are the org's local days,
    given as UTC moments, so one range of the (org_id, registered_on) index answers them all."""
    column = customers.c.registered_on
    bounds = [bindparam(f"b{i}", type_=column.type) for i in range(days + 1)]
    counts = [
        func.count(case((and_(column >= low, column < high), _ONE))).label(f"d{i}")
        for i, (low, high) in enumerate(zip(bounds, bounds[1:]))
    ]
    return select(*counts).where(_ORG, column >= bounds[0], column < bounds[-1])


BY_TYPE = select(customers.c.type, func.count().label("n")).where(_ORG).group_by(customers.c.type)
BY_SLAB = (
    select(memberships.c.program_id, memberships.c.slab_serial, func.count().label("n"))
    .where(memberships.c.org_id == bindparam("org_id"))
    .group_by(memberships.c.program_id, memberships.c.slab_serial)
    .order_by(memberships.c.program_id, memberships.c.slab_serial)
)
# The column `warnings` is a JSON list of code numbers; the caller counts them.
WARNINGS_SINCE = select(customer_audits.c.warnings).where(
    customer_audits.c.org_id == bindparam("org_id"),
    customer_audits.c.created_at >= bindparam("since"),
    customer_audits.c.event_type.in_((literal_column("'CREATE'"), literal_column("'UPDATE'"))),
    customer_audits.c.warnings.is_not(None),
)


class ConsoleStore:
    """The console's reads and writes inside one unit of work (`conn`). A subclass names its
    engine's statement kind and how a list of customer ids is matched."""

    _statement: ClassVar[type[Statement]]
    _start_session: ClassVar[Statement]
    _live_session: ClassVar[Statement]
    _end_session: ClassVar[Statement]
    _purge_sessions: ClassVar[Statement]
    _names: ClassVar[Statement]
    _ledger: ClassVar[Statement]
    _referred_by: ClassVar[Statement]
    _referred: ClassVar[Statement]
    _by: ClassVar[dict[str, Statement]]
    _by_type: ClassVar[Statement]
    _by_slab: ClassVar[Statement]
    _warnings_since: ClassVar[Statement]
    _per_day: ClassVar[dict[int, Statement]]

    def __init_subclass__(cls, *, statement: type[Statement], ids_in: ColumnElement[bool], **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._statement = statement
        cls._start_session = statement(START_SESSION)
        cls._live_session = statement(LIVE_SESSION)
        cls._end_session = statement(END_SESSION)
        cls._purge_sessions = statement(PURGE_SESSIONS)
        cls._names = statement(select(customers.c.id, customers.c.firstname, customers.c.lastname).where(_ORG, ids_in))
        cls._ledger = statement(LEDGER)
        cls._referred_by = statement(REFERRED_BY)
        cls._referred = statement(REFERRED)
        cls._by = {column: statement(_registered_by(column)) for column in ("source", "registered_till")}
        cls._by_type = statement(BY_TYPE)
        cls._by_slab = statement(BY_SLAB)
        cls._warnings_since = statement(WARNINGS_SINCE)
        cls._per_day = {}

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @staticmethod
    def id_list(ids: list[int]) -> Any:
        return ids

    # Sessions: the id is the SHA-256 of the cookie's secret.

    async def start_session(self, session: NewSession) -> None:
        await self._start_session.execute(self.conn, {
            "id": session.session_id, "login": session.login, "org_id": session.org_id,
            "session_generation": session.generation, "csrf_token": session.csrf_token,
            "created_at": session.created_at, "expires_at": session.expires_at,
        })

    async def live_session(self, session_id: str, now: datetime) -> ConsoleSession | None:
        rows = await self._live_session.fetch(self.conn, {"id": session_id, "now": now})
        if not rows:
            return None
        row = rows[0]
        return ConsoleSession(row["login"], row["org_id"], row["name"], row["access_group"], row["csrf_token"], row["expires_at"])

    async def end_session(self, session_id: str, now: datetime) -> None:
        await self._end_session.execute(self.conn, {"id": session_id, "now": now})

    async def purge_sessions(self, login: str, now: datetime, started_before: datetime) -> None:
        await self._purge_sessions.execute(self.conn, {"login": login, "now": now, "started_before": started_before})

    # A customer's page, and the names the review queue shows.

    async def customer_names(self, org_id: int, customer_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        if not customer_ids:
            return {}
        rows = await self._names.fetch(self.conn, {"org_id": org_id, "ids": self.id_list(list(customer_ids))})
        return {row["id"]: (row["firstname"], row["lastname"]) for row in rows}

    async def ledger(self, org_id: int, customer_id: int, limit: int) -> list[LedgerLine]:
        rows = await self._ledger.fetch(self.conn, {"org_id": org_id, "customer_id": customer_id, "limit": limit})
        return [LedgerLine(row["created_at"], row["program_id"], row["kind"], row["currency"], row["amount"]) for row in rows]

    async def referred_by(self, org_id: int, customer_id: int) -> Referral | None:
        rows = await self._referred_by.fetch(self.conn, {"org_id": org_id, "customer_id": customer_id})
        return _referral_of(rows[0]) if rows else None

    async def referred(self, org_id: int, customer_id: int, limit: int) -> list[Referral]:
        rows = await self._referred.fetch(self.conn, {"org_id": org_id, "customer_id": customer_id, "limit": limit})
        return [_referral_of(row) for row in rows]

    # The overview: counts over the org's rows, each one statement.

    async def registrations_per_day(self, org_id: int, bounds: Sequence[datetime]) -> list[int]:
        if len(bounds) < 2:
            return []
        days = len(bounds) - 1
        statement = self._per_day.get(days)
        if statement is None:
            statement = self._per_day[days] = self._statement(per_day(days))
        (row,) = await statement.fetch(self.conn, {"org_id": org_id, **{f"b{i}": bound for i, bound in enumerate(bounds)}})
        return [int(row[f"d{i}"] or 0) for i in range(days)]

    async def registrations_by(
        self, org_id: int, column: Literal["source", "registered_till"], since: datetime
    ) -> list[tuple[str | None, int]]:
        rows = await self._by[column].fetch(self.conn, {"org_id": org_id, "since": since})
        return [(row["value"], int(row["n"])) for row in rows]

    async def customers_by_type(self, org_id: int) -> dict[str, int]:
        rows = await self._by_type.fetch(self.conn, {"org_id": org_id})
        return {row["type"]: int(row["n"]) for row in rows}

    async def members_by_slab(self, org_id: int) -> list[tuple[int, int, int]]:
        rows = await self._by_slab.fetch(self.conn, {"org_id": org_id})
        return [(int(row["program_id"]), int(row["slab_serial"]), int(row["n"])) for row in rows]

    async def warnings_since(self, org_id: int, since: datetime) -> list[list[int]]:
        rows = await self._warnings_since.fetch(self.conn, {"org_id": org_id, "since": since})
        # asyncpg gives a json column as its text; SQLite's dialect reads it.
        listed = (orjson.loads(row["warnings"]) if isinstance(row["warnings"], str) else row["warnings"] for row in rows)
        return [[code for code in codes if isinstance(code, int)] for codes in listed if codes]


def _referral_of(row: Mapping[str, Any]) -> Referral:
    return Referral(row["customer_id"], row["firstname"] or "", row["lastname"] or "", row["created_at"])


class PgConsole(
    ConsoleStore,
    statement=PgStatement,
    ids_in=customers.c.id == func.any(func.cast(bindparam("ids"), ARRAY(BigInteger))),
):
    pass


class SqliteConsole(
    ConsoleStore,
    statement=SqliteStatement,
    # SQLite has no arrays: the ids go as one JSON list.
    ids_in=customers.c.id.in_(select(func.json_each(bindparam("ids")).table_valued("value").c.value)),
):
    @staticmethod
    def id_list(ids: list[int]) -> Any:
        return orjson.dumps(ids).decode()
