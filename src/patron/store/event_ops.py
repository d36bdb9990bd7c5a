"""Operators' reads and writes of the relay's tables (events.md §4): each sink's backlog, health and
dead letters for `patron events status` and the console's Events page; a replay's events put back
in a sink's queue, a disabled sink enabled again, and the record of who asked and why. Every
statement of an org's rows is scoped by its org_id: one shard on Citus."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, ClassVar

import orjson
from sqlalchemy import ARRAY, BigInteger, Integer, String, and_, bindparam, cast, func, insert, literal_column, null, select, type_coerce, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.expression import BindParameter, ColumnElement, Executable

from patron.events.operations import Candidate, DeadLetter, DeclaredSink, RelaySeen, ReplayRecord, SinkState
from patron.store.db import named_binds
from patron.store.relay import DEAD, RETRY, SinkRow, sink_row
from patron.store.schema import event_attempts, event_relays, event_replays, event_retries, event_sinks, event_streams, events, orgs
from patron.store.statements import PgStatement, SqliteStatement, Statement

_events = events.c
_retries = event_retries.c
_sinks = event_sinks.c
_ORG: BindParameter[int] = bindparam("org_id")
_SINK: BindParameter[str] = bindparam("sink")
# Statuses as literals: the statements are compiled once, with no values of their own.
_IS_DEAD: ColumnElement[str] = literal_column(f"'{DEAD}'")
_IS_RETRY: ColumnElement[str] = literal_column(f"'{RETRY}'")
_ONE: ColumnElement[int] = literal_column("1")
_ZERO: ColumnElement[int] = literal_column("0")
_OF_SINK = (_retries.org_id == _ORG, _retries.sink == _SINK)
# A sink's queue beside the org's events: the same org on both sides, so colocated shards join.
_RETRY_OF_EVENT = and_(_retries.org_id == _events.org_id, _retries.sink == _SINK, _retries.position == _events.position)
_EVENT_OF_RETRY = and_(_events.org_id == _retries.org_id, _events.position == _retries.position)

ORGS = select(orgs.c.id, orgs.c.name, orgs.c.definition).order_by(orgs.c.id)
ORG = select(orgs.c.id, orgs.c.name, orgs.c.definition).where(orgs.c.id == _ORG)
SINKS_OF = select(event_sinks).where(_sinks.org_id == _ORG).order_by(_sinks.sink)
RELAYS_SEEN = (
    select(event_relays.c.relay_id, event_relays.c.started_at, event_relays.c.seen_at)
    .where(event_relays.c.seen_at >= bindparam("since"))
    .order_by(event_relays.c.relay_id)
)
STREAM_OF = select(event_streams.c.last_position, event_streams.c.removed_through).where(event_streams.c.org_id == _ORG)

# What a sink has yet to take: the stream past its position, the events not yet positioned (no
# relay is running, or it is behind), and its outstanding retries with the events behind them.
_PAST = (_events.org_id == _ORG, _events.position > bindparam("after"))
_UNPOSITIONED = (_events.org_id == _ORG, _events.position.is_(None))
OUTSTANDING = (
    select(func.count().label("count"), func.min(_events.created_at).label("oldest"))
    .select_from(event_retries.outerjoin(events, _EVENT_OF_RETRY))
    .where(*_OF_SINK, _retries.status != _IS_DEAD)
)
DEAD_COUNT = select(func.count().label("count")).where(*_OF_SINK, _retries.status == _IS_DEAD)

DEAD_LETTERS = (
    select(_retries.position, _retries.customer_id, _retries.attempts, _retries.last_error, _retries.updated_at,
           _events.event_id, _events.name, _events.created_at)
    .select_from(event_retries.outerjoin(events, _EVENT_OF_RETRY))
    .where(*_OF_SINK, _retries.status == _IS_DEAD)
    .order_by(_retries.updated_at.desc(), _retries.position.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)

# A replay's candidates: the events asked for, each with its row in the sink's queue, if any.
_CANDIDATE = (_events.position, _events.customer_id, _events.sequence, _events.event_id, _events.name,
              _events.created_at, _retries.status)
_WITH_QUEUE = events.outerjoin(event_retries, _RETRY_OF_EVENT)
POSITION_ATTEMPTED = (
    select(event_attempts.c.position)
    .where(event_attempts.c.org_id == _ORG, event_attempts.c.event_id == bindparam("event_id"))
    .limit(_ONE)
)
# Without an attempt to find it by (the sink was never sent it, or its attempts are older than
# the retention): the org's events, read through.
POSITION_STORED = (
    select(_events.position)
    .where(_events.org_id == _ORG, _events.event_id == bindparam("event_id"), _events.position.is_not(None))
    .limit(_ONE)
)
AT_POSITION = select(*_CANDIDATE).select_from(_WITH_QUEUE).where(_events.org_id == _ORG, _events.position == bindparam("position"))
RETRY_AT = select(_retries.position, _retries.customer_id, _retries.sequence, _retries.status).where(
    *_OF_SINK, _retries.position == bindparam("position")
)
IN_RANGE = (
    select(*_CANDIDATE)
    .select_from(_WITH_QUEUE)
    .where(_events.org_id == _ORG, _events.position.is_not(None), _events.created_at >= bindparam("from_at"),
           _events.created_at <= bindparam("to_at"))
    .order_by(_events.position)
    .limit(bindparam("limit"))
)
DEAD_CANDIDATES = (
    select(_retries.position, _retries.customer_id, _retries.sequence, _events.event_id, _events.name,
           _events.created_at, _retries.status)
    .select_from(event_retries.outerjoin(events, _EVENT_OF_RETRY))
    .where(*_OF_SINK, _retries.status == _IS_DEAD)
    .order_by(_retries.position)
    .limit(bindparam("limit"))
)

# Enabling a disabled sink: healthy again, its waiting retries due now.
ENABLE = (
    update(event_sinks)
    .where(_sinks.org_id == _ORG, _sinks.sink == _SINK, _sinks.disabled_at.is_not(None))
    .values(disabled_at=null(), disabled_reason=null(), failing_since=null(), consecutive_failures=_ZERO,
            lease_owner=null(), lease_until=null())
    .returning(_sinks.position)
)
RETRIES_DUE = update(event_retries).where(*_OF_SINK, _retries.status == _IS_RETRY).values(next_attempt_at=bindparam("at"))

REPLAY_COLUMNS = ("sink", "requested_at", "requested_by", "reason", "event_id", "from_at", "to_at", "events")
REPLAYS = (
    select(*(event_replays.c[name] for name in REPLAY_COLUMNS))
    .where(event_replays.c.org_id == _ORG)
    .order_by(event_replays.c.id.desc())
    .limit(bindparam("limit"))
)


def _requeued(positions_in: ColumnElement[bool]) -> Executable:
    """Dead letters put back: due now, their attempts counted afresh."""
    return (
        update(event_retries)
        .where(*_OF_SINK, _retries.status == _IS_DEAD, positions_in)
        .values(status=_IS_RETRY, attempts=_ZERO, next_attempt_at=bindparam("at"), last_error=null(),
                updated_at=bindparam("at"))
        .returning(_retries.position)
    )


def _queued_afresh(insert_into: Any, positions_in: ColumnElement[bool], typed: Any) -> Executable:
    """Events the sink took, queued again as retries due now: the relay sends each customer's
    outstanding events one at a time, in sequence order. `typed`: a value's type where a SELECT's
    list has only a parameter (PostgreSQL must be told it; SQLite keeps times as text)."""
    at = typed(bindparam("at"), _retries.created_at.type)
    columns = ("org_id", "sink", "position", "customer_id", "sequence", "status", "attempts", "next_attempt_at",
               "created_at", "updated_at")
    rows = select(
        _events.org_id, cast(_SINK, String(100)), _events.position, _events.customer_id, _events.sequence,
        _IS_RETRY, cast(_ZERO, Integer), at, at, at,
    ).where(_events.org_id == _ORG, positions_in)
    statement: Executable = insert_into(event_retries).from_select(columns, rows).on_conflict_do_nothing().returning(
        _retries.position
    )
    return statement


class EventOperations:
    """Operators' reads and writes of the relay's tables, in one unit of work."""

    _statements: ClassVar[dict[str, Statement]]

    def __init_subclass__(
        cls, *, statement: type[Statement], insert_into: Any, ids_in: Any, names_in: Any, typed: Any,
        record_replay: Executable, **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        named: ColumnElement[bool] = names_in(_events.name, "names")
        plain: dict[str, Executable] = {
            "orgs": ORGS, "org": ORG, "sinks_of": SINKS_OF, "relays_seen": RELAYS_SEEN, "stream_of": STREAM_OF,
            "outstanding": OUTSTANDING, "dead_count": DEAD_COUNT, "dead_letters": DEAD_LETTERS,
            "position_attempted": POSITION_ATTEMPTED, "position_stored": POSITION_STORED,
            "at_position": AT_POSITION, "retry_at": RETRY_AT, "in_range": IN_RANGE, "dead_candidates": DEAD_CANDIDATES,
            "enable": ENABLE, "retries_due": RETRIES_DUE, "replays": REPLAYS, "record_replay": record_replay,
            "requeue_dead": _requeued(ids_in(_retries.position, "positions")),
            "queue_afresh": _queued_afresh(insert_into, ids_in(_events.position, "positions"), typed),
        }
        # The sink's names when it is sent only some (else no filter: an index-only count).
        for suffix, where in (("all", ()), ("named", (named,))):
            plain[f"past_{suffix}"] = select(func.count().label("count")).where(*_PAST, *where)
            plain[f"first_past_{suffix}"] = (
                select(_events.created_at).where(*_PAST, *where).order_by(_events.position).limit(_ONE)
            )
            plain[f"unpositioned_{suffix}"] = select(
                func.count().label("count"), func.min(_events.created_at).label("oldest")
            ).where(*_UNPOSITIONED, *where)
        cls._statements = {name: statement(executable) for name, executable in plain.items()}

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def _fetch(self, name: str, values: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        return await self._statements[name].fetch(self.conn, values)

    @staticmethod
    def value_list(values: Sequence[Any]) -> Any:
        """A list as the engine's `IN` form takes it."""
        return list(values)

    # Orgs (a reference table on Citus) and the relays running.

    async def orgs(self) -> list[tuple[int, str, dict[str, Any]]]:
        """Every org: its id, name and stored definition."""
        return [(row["id"], row["name"], _document(row["definition"])) for row in await self._fetch("orgs", {})]

    async def org(self, org_id: int) -> tuple[int, str, dict[str, Any]] | None:
        rows = await self._fetch("org", {"org_id": org_id})
        return (rows[0]["id"], rows[0]["name"], _document(rows[0]["definition"])) if rows else None

    async def relays_seen(self, since: datetime) -> list[RelaySeen]:
        return [RelaySeen(row["relay_id"], row["started_at"], row["seen_at"])
                for row in await self._fetch("relays_seen", {"since": since})]

    # Sinks.

    async def sink_rows(self, org_id: int) -> dict[str, SinkRow]:
        return {row["sink"]: sink_row(row) for row in await self._fetch("sinks_of", {"org_id": org_id})}

    async def sink_states(self, org_id: int, declared: Sequence[DeclaredSink]) -> list[SinkState]:
        """Each sink the org file declares, then each it no longer declares that still has a row,
        with what it has yet to take and its dead letters."""
        rows = await self.sink_rows(org_id)
        states: list[SinkState] = []
        for sink in declared:
            row = rows.pop(sink.name, None)
            if row is None:
                states.append(await self._not_started(org_id, sink))
            else:
                states.append(await self._state(row, sink.events, configured=True))
        for row in rows.values():
            states.append(await self._state(row, None, configured=False))
        return states

    async def sink(self, org_id: int, declared: DeclaredSink, *, backlog: bool = True) -> SinkState:
        """One declared sink's state; without its backlog (pending None) when not asked for."""
        rows = await self.sink_rows(org_id)
        row = rows.get(declared.name)
        if row is None:
            return SinkState(org_id, declared.name, declared.kind, configured=True, opened=False)
        if backlog:
            return await self._state(row, declared.events, configured=True)
        return _without_backlog(row)

    async def _not_started(self, org_id: int, sink: DeclaredSink) -> SinkState:
        """A sink no relay has opened yet: the events not yet positioned are pending for it at
        least (a relay that positions them opens it at its next pass)."""
        values: dict[str, Any] = {"org_id": org_id}
        if sink.events is not None:
            values["names"] = self.value_list(sink.events)
        (unpositioned,) = await self._fetch("unpositioned_all" if sink.events is None else "unpositioned_named", values)
        return SinkState(org_id, sink.name, sink.kind, configured=True, opened=False, pending=unpositioned["count"],
                         oldest_pending_at=unpositioned["oldest"])

    async def _state(self, row: SinkRow, names: list[str] | None, *, configured: bool) -> SinkState:
        org_id, sink = row.org_id, row.sink
        suffix = "all" if names is None else "named"
        values: dict[str, Any] = {"org_id": org_id, "after": row.position}
        if names is not None:
            values["names"] = self.value_list(names)
        (past,) = await self._fetch(f"past_{suffix}", values)
        first_past = await self._fetch(f"first_past_{suffix}", values)
        (unpositioned,) = await self._fetch(f"unpositioned_{suffix}", {k: v for k, v in values.items() if k != "after"})
        (outstanding,) = await self._fetch("outstanding", {"org_id": org_id, "sink": sink})
        (dead,) = await self._fetch("dead_count", {"org_id": org_id, "sink": sink})
        oldest = [moment for moment in (
            first_past[0]["created_at"] if first_past else None, unpositioned["oldest"], outstanding["oldest"],
        ) if moment is not None]
        return replace(
            _without_backlog(row), configured=configured, pending=past["count"] + unpositioned["count"] + outstanding["count"],
            oldest_pending_at=min(oldest) if oldest else None, dead_letters=dead["count"],
        )

    async def dead_letters(self, org_id: int, sink: str, limit: int, offset: int = 0) -> list[DeadLetter]:
        """The sink's dead letters, the most recently given up first."""
        rows = await self._fetch("dead_letters", {"org_id": org_id, "sink": sink, "limit": limit, "offset": offset})
        return [
            DeadLetter(row["position"], row["customer_id"], row["event_id"], row["name"], row["created_at"],
                       row["attempts"], row["last_error"], row["updated_at"])
            for row in rows
        ]

    async def stream(self, org_id: int) -> tuple[int, int]:
        """The org's last position given, and the last removed by retention."""
        rows = await self._fetch("stream_of", {"org_id": org_id})
        return (rows[0]["last_position"], rows[0]["removed_through"]) if rows else (0, 0)

    # A replay's candidates.

    async def candidate_event(self, org_id: int, sink: str, event_id: str) -> list[Candidate]:
        """The event of this eventId, as the sink has it ([] when it is not stored nor a dead letter)."""
        found = await self._fetch("position_attempted", {"org_id": org_id, "event_id": event_id})
        if not found:
            found = await self._fetch("position_stored", {"org_id": org_id, "event_id": event_id})
        if not found:
            return []
        position = found[0]["position"]
        rows = await self._fetch("at_position", {"org_id": org_id, "sink": sink, "position": position})
        if rows:
            return [_candidate(rows[0])]
        # Its event is gone: only a dead letter of it may be left.
        return [
            Candidate(row["position"], row["customer_id"], row["sequence"], event_id, None, None, _queued(row["status"]),
                      stored=False)
            for row in await self._fetch("retry_at", {"org_id": org_id, "sink": sink, "position": position})
        ]

    async def candidates_in_range(self, org_id: int, sink: str, from_at: datetime, to_at: datetime, limit: int) -> list[Candidate]:
        """The org's positioned events created in [from_at, to_at], at most `limit`, in stream order."""
        rows = await self._fetch("in_range", {"org_id": org_id, "sink": sink, "from_at": from_at, "to_at": to_at,
                                              "limit": limit})
        return [_candidate(row) for row in rows]

    async def dead_candidates(self, org_id: int, sink: str, limit: int) -> list[Candidate]:
        rows = await self._fetch("dead_candidates", {"org_id": org_id, "sink": sink, "limit": limit})
        return [_candidate(row, stored=row["event_id"] is not None) for row in rows]

    # A replay's writes.

    async def requeue(self, org_id: int, sink: str, replayed: Sequence[Candidate], at: datetime) -> int:
        """Put the events back in the sink's queue, due at `at`: dead letters turned back into
        retries, taken events queued afresh; how many went back (a row the relay or retention
        changed meanwhile is left as it is)."""
        dead = sorted(c.position for c in replayed if c.queued == "dead")
        taken = sorted(c.position for c in replayed if c.queued is None)
        count = 0
        if dead:
            count += len(await self._fetch("requeue_dead", {"org_id": org_id, "sink": sink, "at": at,
                                                             "positions": self.value_list(dead)}))
        if taken:
            count += len(await self._fetch("queue_afresh", {"org_id": org_id, "sink": sink, "at": at,
                                                             "positions": self.value_list(taken)}))
        return count

    async def enable(self, org_id: int, sink: str, at: datetime) -> bool:
        """Enable a disabled sink (healthy again, its waiting retries due now); whether it was disabled."""
        if not await self._fetch("enable", {"org_id": org_id, "sink": sink}):
            return False
        await self._statements["retries_due"].execute(self.conn, {"org_id": org_id, "sink": sink, "at": at})
        return True

    async def record_replay(self, org_id: int, record: ReplayRecord) -> None:
        await self._statements["record_replay"].execute(self.conn, {
            "org_id": org_id, **{name: getattr(record, name) for name in REPLAY_COLUMNS},
        })

    async def replays(self, org_id: int, limit: int) -> list[ReplayRecord]:
        """The org's latest replays, newest first."""
        rows = await self._fetch("replays", {"org_id": org_id, "limit": limit})
        return [ReplayRecord(**{name: row[name] for name in REPLAY_COLUMNS}) for row in rows]


def _without_backlog(row: SinkRow) -> SinkState:
    return SinkState(
        row.org_id, row.sink, row.kind, configured=True, opened=True, position=row.position,
        failing_since=row.failing_since, consecutive_failures=row.consecutive_failures,
        last_success_at=row.last_success_at, last_failure_at=row.last_failure_at, last_error=row.last_error,
        disabled_at=row.disabled_at, disabled_reason=row.disabled_reason,
    )


def _document(definition: Any) -> dict[str, Any]:
    return orjson.loads(definition) if isinstance(definition, (str, bytes)) else dict(definition)


def _queued(status: str | None) -> Any:
    if status is None:
        return None
    return "dead" if status == DEAD else "waiting"


def _candidate(row: Mapping[str, Any], stored: bool = True) -> Candidate:
    return Candidate(row["position"], row["customer_id"], row["sequence"], row["event_id"], row["name"],
                     row["created_at"], _queued(row["status"]), stored=stored)


_REPLAY_VALUES = named_binds(("org_id", *REPLAY_COLUMNS))


class PgEventOperations(
    EventOperations,
    statement=PgStatement,
    insert_into=pg_insert,
    ids_in=lambda column, name: column == func.any(cast(bindparam(name), ARRAY(BigInteger))),
    names_in=lambda column, name: column == func.any(cast(bindparam(name), ARRAY(String))),
    typed=cast,
    record_replay=insert(event_replays).values(_REPLAY_VALUES),
):
    pass


def _sqlite_in(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    return column.in_(select(func.json_each(bindparam(name)).table_valued("value").c.value))


class SqliteEventOperations(
    EventOperations,
    statement=SqliteStatement,
    insert_into=sqlite_insert,
    ids_in=_sqlite_in,
    names_in=_sqlite_in,
    typed=type_coerce,
    record_replay=insert(event_replays).values(
        {**_REPLAY_VALUES, "id": select(func.coalesce(func.max(event_replays.c.id), 0) + 1).scalar_subquery()}
    ),
):
    @staticmethod
    def value_list(values: Sequence[Any]) -> Any:
        return orjson.dumps(list(values)).decode()
