"""The relay's side of the outbox (events.md §2, §4): the relays running and their leases of each
org's stream and each sink, a sink's progress and health, its retries, the events waiting behind
them and its dead letters, every delivery attempt, and what retention removes of them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import orjson
from sqlalchemy import ARRAY, BigInteger, bindparam, delete, func, insert, literal_column, null, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.expression import ColumnElement, Executable

from patron.events.model import StoredEvent
from patron.store.db import named_binds
from patron.store.events import STREAM_COLUMNS, stored_event
from patron.store.schema import event_attempts, event_relays, event_retries, event_sinks, event_streams, events, orgs
from patron.store.statements import PgStatement, SqliteStatement, Statement

# An event_retries row's status: waiting for its next attempt, waiting behind an earlier event of
# its customer that waits for one, or given up (a dead letter).
RETRY, BEHIND, DEAD = "retry", "behind", "dead"


@dataclass(frozen=True)
class Lease:
    """Who holds a stream's or a sink's lease, and until when (both None: no one)."""

    owner: str | None
    until: datetime | None

    def free_for(self, relay_id: str, now: datetime) -> bool:
        """Whether `relay_id` may take it: no one holds it, it lapsed, or it holds it already."""
        return self.owner is None or self.owner == relay_id or self.until is None or self.until < now


@dataclass(frozen=True)
class Stream:
    org_id: int
    last_position: int
    removed_through: int
    lease: Lease


@dataclass(frozen=True)
class SinkRow:
    """A sink's row: how far through its org's stream it was handed every event, and its health."""

    org_id: int
    sink: str
    kind: str
    position: int
    lease: Lease
    failing_since: datetime | None
    consecutive_failures: int
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    disabled_at: datetime | None
    disabled_reason: str | None


@dataclass(frozen=True)
class RetryRow:
    """An event a sink did not take at its first attempt (status RETRY, BEHIND or DEAD)."""

    position: int
    customer_id: int
    sequence: int
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt, as event_attempts keeps it."""

    event_id: str
    position: int
    attempted_at: datetime
    attempt: int
    # delivered | retry | dead | disabled: what the relay made of the sink's answer.
    result: str
    status_code: int | None
    error: str | None
    latency_ms: int
    answer: str | None


@dataclass(frozen=True)
class Progress:
    """What a sink's worker writes after a batch: its new position and its health."""

    position: int
    consecutive_failures: int
    failing_since: datetime | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None


class LeaseLost(Exception):
    """Another relay holds the lease now (this one's lapsed): nothing of the unit is written."""


_sinks = event_sinks.c
_retries = event_retries.c
_EARLIER = event_retries.alias("earlier")
# Statuses as literals: the statements are compiled once, with no values of their own.
_IS_RETRY: ColumnElement[str] = literal_column(f"'{RETRY}'")
_IS_BEHIND: ColumnElement[str] = literal_column(f"'{BEHIND}'")
_IS_DEAD: ColumnElement[str] = literal_column(f"'{DEAD}'")
_ONE: ColumnElement[int] = literal_column("1")


_streams = event_streams.c
_OF_SINK = (_retries.org_id == bindparam("org_id"), _retries.sink == bindparam("sink"))


def _outstanding(status: Any) -> ColumnElement[bool]:
    """Waiting for a retry, or behind one: not given up."""
    return status != _IS_DEAD


def _free_or_mine(table: Any) -> ColumnElement[bool]:
    """A lease `owner` may take: no one's, lapsed by `now`, or its own already."""
    return or_(table.c.lease_owner.is_(None), table.c.lease_owner == bindparam("owner"), table.c.lease_until < bindparam("now"))

LIVE_RELAYS = select(event_relays.c.relay_id).where(event_relays.c.seen_at >= bindparam("since"))
FORGET_RELAY = delete(event_relays).where(event_relays.c.relay_id == bindparam("relay_id"))
FORGET_LAPSED_RELAYS = delete(event_relays).where(event_relays.c.seen_at < bindparam("before"))
# Every org's definition fingerprint, so that the relay re-reads only the orgs whose file changed.
ORG_FINGERPRINTS = select(orgs.c.id, orgs.c.definition_sha256, orgs.c.updated_at)
ORG_DEFINITION = select(orgs.c.definition).where(orgs.c.id == bindparam("org_id"))

STREAMS = select(_streams.org_id, _streams.last_position, _streams.removed_through, _streams.lease_owner,
                 _streams.lease_until)
# The orgs with events not yet positioned (the partial index holds only those).
UNPOSITIONED_ORGS = select(events.c.org_id).where(events.c.position.is_(None)).distinct()
TAKE_STREAM = (
    update(event_streams)
    .where(_streams.org_id == bindparam("org_id"), _free_or_mine(event_streams))
    .values(lease_owner=bindparam("owner"), lease_until=bindparam("until"))
    .returning(_streams.org_id)
)
RENEW_STREAMS = (
    update(event_streams).where(_streams.lease_owner == bindparam("owner"))
    .values(lease_until=bindparam("until")).returning(_streams.org_id)
)
RELEASE_STREAMS = (
    update(event_streams).where(_streams.lease_owner == bindparam("owner")).values(lease_owner=null(), lease_until=null())
)

SINKS = select(event_sinks)
SINKS_OF = select(event_sinks).where(_sinks.org_id == bindparam("org_id"))
TAKE_SINK = (
    update(event_sinks)
    .where(_sinks.org_id == bindparam("org_id"), _sinks.sink == bindparam("sink"), _sinks.disabled_at.is_(None),
           _free_or_mine(event_sinks))
    .values(lease_owner=bindparam("owner"), lease_until=bindparam("until"))
    .returning(*event_sinks.columns)
)
RENEW_SINKS = (
    update(event_sinks).where(_sinks.lease_owner == bindparam("owner"))
    .values(lease_until=bindparam("until")).returning(_sinks.org_id, _sinks.sink)
)
RELEASE_SINK = (
    update(event_sinks)
    .where(_sinks.org_id == bindparam("org_id"), _sinks.sink == bindparam("sink"), _sinks.lease_owner == bindparam("owner"))
    .values(lease_owner=null(), lease_until=null())
)
RELEASE_SINKS = (
    update(event_sinks).where(_sinks.lease_owner == bindparam("owner")).values(lease_owner=null(), lease_until=null())
)
# A batch's outcome, written only while the worker's relay still holds the sink (else LeaseLost).
SAVE_PROGRESS = (
    update(event_sinks)
    .where(_sinks.org_id == bindparam("org_id"), _sinks.sink == bindparam("sink"), _sinks.lease_owner == bindparam("owner"))
    .values(
        position=bindparam("to_position"),
        consecutive_failures=bindparam("failures"),
        failing_since=bindparam("failing"),
        last_success_at=func.coalesce(bindparam("success_at", type_=_sinks.last_success_at.type), _sinks.last_success_at),
        last_failure_at=func.coalesce(bindparam("failure_at", type_=_sinks.last_failure_at.type), _sinks.last_failure_at),
        last_error=func.coalesce(bindparam("error", type_=_sinks.last_error.type), _sinks.last_error),
    )
    .returning(_sinks.sink)
)
DISABLE_SINK = (
    update(event_sinks)
    .where(_sinks.org_id == bindparam("org_id"), _sinks.sink == bindparam("sink"))
    .values(disabled_at=bindparam("at"), disabled_reason=bindparam("reason"), lease_owner=null(), lease_until=null())
)

RETRY_COLUMNS = ("position", "customer_id", "sequence", "status", "attempts", "next_attempt_at", "last_error")
HELD_POSITIONS = select(_retries.position).where(
    *_OF_SINK, _retries.position > bindparam("after"), _retries.position <= bindparam("through")
)
# The retries due now, oldest first, along the index that orders them.
DUE_RETRIES = (
    select(*(_retries[name] for name in RETRY_COLUMNS))
    .where(*_OF_SINK, _retries.status == _IS_RETRY, _retries.next_attempt_at <= bindparam("now"))
    .order_by(_retries.next_attempt_at, _retries.position)
    .limit(bindparam("limit"))
)
NEXT_DUE = select(func.min(_retries.next_attempt_at).label("next_due")).where(*_OF_SINK, _retries.status == _IS_RETRY)
SETTLE_RETRY = (
    update(event_retries)
    .where(_retries.org_id == bindparam("org_id"), _retries.sink == bindparam("sink"),
           _retries.position == bindparam("key_position"))
    .values(status=bindparam("status"), attempts=bindparam("attempts"), next_attempt_at=bindparam("next_at"),
            last_error=bindparam("error"), updated_at=bindparam("at"))
)
DELETE_RETRY = delete(event_retries).where(*_OF_SINK, _retries.position == bindparam("position"))
# The customer's next event waiting behind the one just settled: due now.
PROMOTE_NEXT = (
    update(event_retries)
    .where(
        _retries.org_id == bindparam("org_id"), _retries.sink == bindparam("sink"),
        _retries.position == (
            select(_EARLIER.c.position)
            .where(_EARLIER.c.org_id == bindparam("org_id"), _EARLIER.c.sink == bindparam("sink"),
                   _EARLIER.c.customer_id == bindparam("customer_id"), _EARLIER.c.status == _IS_BEHIND)
            .order_by(_EARLIER.c.sequence)
            .limit(_ONE)
            .scalar_subquery()
        ),
    )
    .values(status=_IS_RETRY, next_attempt_at=bindparam("at"), updated_at=bindparam("at"))
)
# A sink back after failing: every retry of it due now, not at its schedule's next step.
ALL_DUE_NOW = (
    update(event_retries)
    .where(_retries.org_id == bindparam("org_id"), _retries.sink == bindparam("sink"), _retries.status == _IS_RETRY)
    .values(next_attempt_at=bindparam("at"))
)
RETRY_VALUES = named_binds(("org_id", "sink", "position", "customer_id", "sequence", "status", "attempts",
                            "next_attempt_at", "last_error", "created_at", "updated_at"))
ATTEMPT_VALUES = named_binds(("org_id", "sink", "event_id", "position", "attempted_at", "attempt", "result",
                              "status_code", "error", "latency_ms", "answer"))

OLDEST_OUTSTANDING = select(func.min(_retries.position).label("oldest")).where(*_OF_SINK, _outstanding(_retries.status))
# The last position of an event committed before a moment (a new sink starts after it).
LAST_BEFORE = (
    select(events.c.position)
    .where(events.c.org_id == bindparam("org_id"), events.c.position.is_not(None),
           events.c.created_at < bindparam("before"))
    .order_by(events.c.position.desc())
    .limit(_ONE)
)
# Retention: a few rows at a time, so that no statement holds locks (or SQLite's writer) for long.
# The rows are found first, along the index that orders them by age, then removed by key: a
# self-join in one DELETE was planned (a generic plan made while the table was empty) as a scan of
# the org's attempts for each one, and took minutes.
OLD_ATTEMPTS = (
    select(event_attempts.c.id)
    .where(event_attempts.c.org_id == bindparam("org_id"), event_attempts.c.sink == bindparam("sink"),
           event_attempts.c.attempted_at < bindparam("before"))
    .order_by(event_attempts.c.attempted_at)
    .limit(bindparam("most"))
)
OLD_DEAD_LETTERS = (
    select(_retries.position)
    .where(*_OF_SINK, _retries.status == _IS_DEAD, _retries.updated_at < bindparam("before"))
    .limit(bindparam("most"))
)

def _lease(row: Mapping[str, Any]) -> Lease:
    return Lease(row["lease_owner"], row["lease_until"])


def sink_row(row: Mapping[str, Any]) -> SinkRow:
    return SinkRow(
        org_id=row["org_id"], sink=row["sink"], kind=row["kind"], position=row["position"], lease=_lease(row),
        failing_since=row["failing_since"], consecutive_failures=row["consecutive_failures"],
        last_success_at=row["last_success_at"], last_failure_at=row["last_failure_at"], last_error=row["last_error"],
        disabled_at=row["disabled_at"], disabled_reason=row["disabled_reason"],
    )


def retry_row(row: Mapping[str, Any]) -> RetryRow:
    return RetryRow(**{name: row[name] for name in RETRY_COLUMNS})


class DeliveryStore:
    """The relay's reads and writes of the outbox, in one unit of work (one engine's connection)."""

    _statements: ClassVar[dict[str, Statement]]

    def __init_subclass__(
        cls, *, statement: type[Statement], heartbeat: Executable, open_stream: Executable, open_sink: Executable,
        insert_retry: Executable, insert_attempt: Executable, id_in: Any, **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        in_customers: ColumnElement[bool] = id_in(_retries.customer_id, "customer_ids")
        in_positions: ColumnElement[bool] = id_in(events.c.position, "positions")
        plain = {
            "live_relays": LIVE_RELAYS, "forget_relay": FORGET_RELAY, "forget_lapsed_relays": FORGET_LAPSED_RELAYS,
            "org_fingerprints": ORG_FINGERPRINTS, "org_definition": ORG_DEFINITION,
            "unpositioned_orgs": UNPOSITIONED_ORGS, "take_stream": TAKE_STREAM,
            "renew_streams": RENEW_STREAMS, "release_streams": RELEASE_STREAMS,
            "sinks": SINKS, "sinks_of": SINKS_OF, "take_sink": TAKE_SINK, "renew_sinks": RENEW_SINKS,
            "release_sink": RELEASE_SINK, "release_sinks": RELEASE_SINKS, "save_progress": SAVE_PROGRESS,
            "disable_sink": DISABLE_SINK,
            "held_positions": HELD_POSITIONS, "due_retries": DUE_RETRIES, "next_due": NEXT_DUE,
            "settle_retry": SETTLE_RETRY, "delete_retry": DELETE_RETRY, "promote_next": PROMOTE_NEXT,
            "all_due_now": ALL_DUE_NOW,
            "oldest_outstanding": OLDEST_OUTSTANDING, "last_before": LAST_BEFORE, "old_attempts": OLD_ATTEMPTS,
            "old_dead_letters": OLD_DEAD_LETTERS,
            "remove_attempts": delete(event_attempts).where(
                event_attempts.c.org_id == bindparam("org_id"), id_in(event_attempts.c.id, "ids")
            ),
            "remove_retries": delete(event_retries).where(*_OF_SINK, id_in(_retries.position, "positions")),
            "heartbeat": heartbeat, "open_stream": open_stream, "open_sink": open_sink,
            "insert_retry": insert_retry, "insert_attempt": insert_attempt,
            "outstanding_customers": select(_retries.customer_id).distinct().where(
                *_OF_SINK, _outstanding(_retries.status), in_customers
            ),
            # Each customer's earliest outstanding event at the sink (along the customers' index).
            "earliest_outstanding": select(_retries.customer_id, func.min(_retries.sequence).label("sequence"))
            .where(*_OF_SINK, _outstanding(_retries.status), in_customers)
            .group_by(_retries.customer_id),
            "streams_of": STREAMS.where(id_in(_streams.org_id, "org_ids")),
            "events_at": select(*(events.c[name] for name in STREAM_COLUMNS))
            .where(events.c.org_id == bindparam("org_id"), in_positions)
            .order_by(events.c.position),
        }
        cls._statements = {name: statement(executable) for name, executable in plain.items()}

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def _fetch(self, name: str, values: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        return await self._statements[name].fetch(self.conn, values)

    async def _execute(self, name: str, values: Mapping[str, Any]) -> None:
        await self._statements[name].execute(self.conn, values)

    @staticmethod
    def id_list(ids: Sequence[int]) -> Any:
        """Ids as the engine's `IN` form takes them."""
        return list(ids)

    # The relays running.

    async def heartbeat(self, relay_id: str, started_at: datetime, now: datetime) -> None:
        await self._execute("heartbeat", {"relay_id": relay_id, "started_at": started_at, "seen_at": now})

    async def live_relays(self, since: datetime) -> list[str]:
        return [row["relay_id"] for row in await self._fetch("live_relays", {"since": since})]

    async def forget_relay(self, relay_id: str) -> None:
        await self._execute("forget_relay", {"relay_id": relay_id})

    async def forget_lapsed_relays(self, before: datetime) -> None:
        await self._execute("forget_lapsed_relays", {"before": before})

    # Orgs: their files say which sinks they have.

    async def org_fingerprints(self) -> dict[int, tuple[str, datetime]]:
        """Each org's definition fingerprint, and when its file was last applied."""
        return {row["id"]: (row["definition_sha256"], row["updated_at"]) for row in await self._fetch("org_fingerprints", {})}

    async def org_definition(self, org_id: int) -> dict[str, Any] | None:
        rows = await self._fetch("org_definition", {"org_id": org_id})
        if not rows:
            return None
        definition = rows[0]["definition"]
        return orjson.loads(definition) if isinstance(definition, (str, bytes)) else definition

    # Streams: positioned by the holder of their lease.

    async def streams_of(self, org_ids: Sequence[int]) -> list[Stream]:
        if not org_ids:
            return []
        return [
            Stream(row["org_id"], row["last_position"], row["removed_through"], _lease(row))
            for row in await self._fetch("streams_of", {"org_ids": self.id_list(sorted(set(org_ids)))})
        ]

    async def unpositioned_orgs(self) -> set[int]:
        return {row["org_id"] for row in await self._fetch("unpositioned_orgs", {})}

    async def take_stream(self, org_id: int, owner: str, now: datetime, until: datetime) -> bool:
        """Take (or keep) the org's stream lease unless another relay holds it; whether it did.
        On PostgreSQL the stream's row stays locked until the unit ends."""
        await self._execute("open_stream", {"org_id": org_id})
        return bool(await self._fetch("take_stream", {"org_id": org_id, "owner": owner, "now": now, "until": until}))

    async def renew_streams(self, owner: str, until: datetime) -> set[int]:
        return {row["org_id"] for row in await self._fetch("renew_streams", {"owner": owner, "until": until})}

    async def release_streams(self, owner: str) -> None:
        await self._execute("release_streams", {"owner": owner})

    # Sinks.

    async def sinks(self, org_id: int | None = None) -> list[SinkRow]:
        rows = await (self._fetch("sinks", {}) if org_id is None else self._fetch("sinks_of", {"org_id": org_id}))
        return [sink_row(row) for row in rows]

    async def last_position_before(self, org_id: int, before: datetime) -> int:
        """The last position of the org's events committed before `before` (0: none)."""
        rows = await self._fetch("last_before", {"org_id": org_id, "before": before})
        return int(rows[0]["position"]) if rows else 0

    async def open_sink(self, org_id: int, sink: str, kind: str, position: int) -> None:
        """The sink's row, starting at `position`, unless it has one already."""
        await self._execute("open_sink", {"org_id": org_id, "sink": sink, "kind": kind, "position": position})

    async def take_sink(self, org_id: int, sink: str, owner: str, now: datetime, until: datetime) -> SinkRow | None:
        """Take (or keep) the sink's lease unless another relay holds it or it is disabled: its row then."""
        rows = await self._fetch("take_sink", {"org_id": org_id, "sink": sink, "owner": owner, "now": now, "until": until})
        return sink_row(rows[0]) if rows else None

    async def renew_sinks(self, owner: str, until: datetime) -> set[tuple[int, str]]:
        rows = await self._fetch("renew_sinks", {"owner": owner, "until": until})
        return {(row["org_id"], row["sink"]) for row in rows}

    async def release_sink(self, org_id: int, sink: str, owner: str) -> None:
        await self._execute("release_sink", {"org_id": org_id, "sink": sink, "owner": owner})

    async def release_sinks(self, owner: str) -> None:
        await self._execute("release_sinks", {"owner": owner})

    async def save_progress(self, org_id: int, sink: str, owner: str, progress: Progress) -> None:
        """The sink's new position and health; LeaseLost (the unit then rolls back) when another
        relay has taken the sink since."""
        rows = await self._fetch("save_progress", {
            "org_id": org_id, "sink": sink, "owner": owner, "to_position": progress.position,
            "failures": progress.consecutive_failures, "failing": progress.failing_since,
            "success_at": progress.last_success_at, "failure_at": progress.last_failure_at, "error": progress.last_error,
        })
        if not rows:
            raise LeaseLost(f"{org_id}/{sink}")

    async def disable_sink(self, org_id: int, sink: str, at: datetime, reason: str) -> None:
        await self._execute("disable_sink", {"org_id": org_id, "sink": sink, "at": at, "reason": reason[:200]})

    # Retries, the events behind them, and dead letters.

    async def outstanding_customers(self, org_id: int, sink: str, customer_ids: Sequence[int]) -> set[int]:
        """Which of these customers have an event waiting for a retry (or behind one) at this sink."""
        if not customer_ids:
            return set()
        rows = await self._fetch("outstanding_customers", {
            "org_id": org_id, "sink": sink, "customer_ids": self.id_list(sorted(set(customer_ids))),
        })
        return {row["customer_id"] for row in rows}

    async def held_positions(self, org_id: int, sink: str, after: int, through: int) -> set[int]:
        """Positions in (after, through] that already have a row at this sink (a replay, a batch
        written before its relay stopped): the retries own them, a batch skips them."""
        rows = await self._fetch("held_positions", {"org_id": org_id, "sink": sink, "after": after, "through": through})
        return {row["position"] for row in rows}

    async def add_retries(self, org_id: int, sink: str, rows: Sequence[RetryRow], at: datetime) -> None:
        await self._statements["insert_retry"].execute_many(self.conn, [
            {"org_id": org_id, "sink": sink, **{name: getattr(row, name) for name in RETRY_COLUMNS},
             "created_at": at, "updated_at": at}
            for row in rows
        ])

    async def due_retries(self, org_id: int, sink: str, now: datetime, limit: int) -> list[RetryRow]:
        """The retries due now, oldest first, each its customer's earliest outstanding event (a
        replay may have put an earlier one back, which goes first): at most one per customer, so
        that they go concurrently and each customer's in order. Two statements, not a correlated
        one: each keeps to its index whatever plan a table's statistics once suggested."""
        due = [retry_row(row) for row in await self._fetch("due_retries", {
            "org_id": org_id, "sink": sink, "now": now, "limit": limit,
        })]
        if not due:
            return []
        earliest = {row["customer_id"]: row["sequence"] for row in await self._fetch("earliest_outstanding", {
            "org_id": org_id, "sink": sink, "customer_ids": self.id_list(sorted({row.customer_id for row in due})),
        })}
        return [row for row in due if earliest.get(row.customer_id) == row.sequence]

    async def next_due(self, org_id: int, sink: str) -> datetime | None:
        rows = await self._fetch("next_due", {"org_id": org_id, "sink": sink})
        return rows[0]["next_due"] if rows else None

    async def settle_retries(self, org_id: int, sink: str, settled: Sequence[RetryRow], at: datetime) -> None:
        """Retry rows attempted again: each with its new status, attempts, next attempt and error."""
        await self._statements["settle_retry"].execute_many(self.conn, [
            {"org_id": org_id, "sink": sink, "key_position": row.position, "status": row.status,
             "attempts": row.attempts, "next_at": row.next_attempt_at, "error": row.last_error, "at": at}
            for row in settled
        ])

    async def delete_retries(self, org_id: int, sink: str, positions: Sequence[int]) -> None:
        await self._statements["delete_retry"].execute_many(self.conn, [
            {"org_id": org_id, "sink": sink, "position": position} for position in positions
        ])

    async def promote_next(self, org_id: int, sink: str, customer_ids: Sequence[int], at: datetime) -> None:
        """Each customer's next event waiting behind: due now (its earlier one was settled)."""
        await self._statements["promote_next"].execute_many(self.conn, [
            {"org_id": org_id, "sink": sink, "customer_id": customer_id, "at": at} for customer_id in customer_ids
        ])

    async def all_due_now(self, org_id: int, sink: str, at: datetime) -> None:
        await self._execute("all_due_now", {"org_id": org_id, "sink": sink, "at": at})

    async def events_at(self, org_id: int, positions: Sequence[int]) -> list[StoredEvent]:
        if not positions:
            return []
        rows = await self._fetch("events_at", {"org_id": org_id, "positions": self.id_list(sorted(set(positions)))})
        return [stored_event(row) for row in rows]

    async def add_attempts(self, org_id: int, sink: str, attempts: Sequence[Attempt]) -> None:
        await self._statements["insert_attempt"].execute_many(self.conn, await self._attempt_rows(org_id, sink, attempts))

    async def _attempt_rows(self, org_id: int, sink: str, attempts: Sequence[Attempt]) -> list[dict[str, Any]]:
        return [
            {"org_id": org_id, "sink": sink, "event_id": a.event_id, "position": a.position,
             "attempted_at": a.attempted_at, "attempt": a.attempt, "result": a.result, "status_code": a.status_code,
             "error": a.error[:1024] if a.error else None, "latency_ms": a.latency_ms,
             "answer": a.answer[:1024] if a.answer else None}
            for a in attempts
        ]

    async def oldest_outstanding(self, org_id: int, sink: str) -> int | None:
        """The position of the sink's oldest event waiting for a retry (or behind one), if any."""
        (outstanding,) = await self._fetch("oldest_outstanding", {"org_id": org_id, "sink": sink})
        oldest: int | None = outstanding["oldest"]
        return oldest

    # Retention (CONF_EVENT_RETENTION_DAYS), in small batches: how many rows each call removed.

    async def remove_old_attempts(self, org_id: int, sink: str, before: datetime, most: int) -> int:
        old = await self._fetch("old_attempts", {"org_id": org_id, "sink": sink, "before": before, "most": most})
        if old:
            await self._execute("remove_attempts", {"org_id": org_id, "ids": self.id_list([row["id"] for row in old])})
        return len(old)

    async def remove_old_dead_letters(self, org_id: int, sink: str, before: datetime, most: int) -> int:
        old = await self._fetch("old_dead_letters", {"org_id": org_id, "sink": sink, "before": before, "most": most})
        if old:
            await self._execute("remove_retries", {
                "org_id": org_id, "sink": sink, "positions": self.id_list([row["position"] for row in old]),
            })
        return len(old)


def _pg_any(column: Any, name: str) -> ColumnElement[bool]:
    return column == func.any(func.cast(bindparam(name), ARRAY(BigInteger)))


def _sqlite_in(column: Any, name: str) -> ColumnElement[bool]:
    return column.in_(select(func.json_each(bindparam(name)).table_valued("value").c.value))


class PgDeliveries(
    DeliveryStore,
    statement=PgStatement,
    heartbeat=pg_insert(event_relays).values(named_binds(("relay_id", "started_at", "seen_at")))
    .on_conflict_do_update(index_elements=["relay_id"], set_={"seen_at": bindparam("seen_at")}),
    open_stream=pg_insert(event_streams).values(org_id=bindparam("org_id")).on_conflict_do_nothing(),
    open_sink=pg_insert(event_sinks).values(named_binds(("org_id", "sink", "kind", "position"))).on_conflict_do_nothing(),
    insert_retry=pg_insert(event_retries).values(RETRY_VALUES).on_conflict_do_nothing(),
    insert_attempt=insert(event_attempts).values(ATTEMPT_VALUES),
    id_in=_pg_any,
):
    pass


# SQLite: a batch's attempts take the ids after the latest, read once under the unit's write lock.
_LAST_ATTEMPT_ID = select(func.coalesce(func.max(event_attempts.c.id), 0).label("last"))


class SqliteDeliveries(
    DeliveryStore,
    statement=SqliteStatement,
    heartbeat=sqlite_insert(event_relays).values(named_binds(("relay_id", "started_at", "seen_at")))
    .on_conflict_do_update(index_elements=["relay_id"], set_={"seen_at": bindparam("seen_at")}),
    open_stream=sqlite_insert(event_streams).values(org_id=bindparam("org_id")).on_conflict_do_nothing(),
    open_sink=sqlite_insert(event_sinks).values(named_binds(("org_id", "sink", "kind", "position"))).on_conflict_do_nothing(),
    insert_retry=sqlite_insert(event_retries).values(RETRY_VALUES).on_conflict_do_nothing(),
    insert_attempt=insert(event_attempts).values({**ATTEMPT_VALUES, "id": bindparam("id")}),
    id_in=_sqlite_in,
):
    _last_attempt_id = SqliteStatement(_LAST_ATTEMPT_ID)

    @staticmethod
    def id_list(ids: Sequence[int]) -> Any:
        return orjson.dumps(list(ids)).decode()

    async def _attempt_rows(self, org_id: int, sink: str, attempts: Sequence[Attempt]) -> list[dict[str, Any]]:
        rows = await super()._attempt_rows(org_id, sink, attempts)
        if rows:
            (last,) = await self._last_attempt_id.fetch(self.conn, {})
            for number, row in enumerate(rows, start=last["last"] + 1):
                row["id"] = number
        return rows
