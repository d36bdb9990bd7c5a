"""The outbox (events.md §2): events written in the transaction of their change, each customer's
numbered on from its latest; and each org's stream, the positions the relay gives them once they
have committed, read in that order by the sinks and the feed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar

import orjson
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.sql.expression import Executable

from patron.events.model import Event, StoredEvent, Written
from patron.store.db import inserted_columns, named_binds
from patron.store.schema import customers, event_streams, events
from patron.store.statements import Statement

EVENT_COLUMNS = inserted_columns(events)
INSERTED_EVENT = named_binds(name for name in EVENT_COLUMNS if name != "position")
# An existing customer's events take the sequences after its latest, moved on in the statement
# that reads it: the row's lock orders concurrent writers, so no two events share a number.
ADVANCE_SEQUENCE = (
    update(customers)
    .where(customers.c.org_id == bindparam("org_id"), customers.c.id == bindparam("customer_id"))
    .values(event_sequence=customers.c.event_sequence + bindparam("count"))
    .returning(customers.c.event_sequence)
)
STREAM_COLUMNS = ("org_id", "position", "event_id", "customer_id", "sequence", "name", "created_at", "request_id",
                  "origin", "console_user", "data")
READ_STREAM = (
    select(*(events.c[name] for name in STREAM_COLUMNS))
    .where(events.c.org_id == bindparam("org_id"), events.c.position > bindparam("after"))
    .order_by(events.c.position)
    .limit(bindparam("limit"))
)
# The relay's batch of events to give positions, oldest first, locked until its unit ends so that
# a second relay (its lease lapsed meanwhile) waits, and then finds them positioned.
UNPOSITIONED = (
    select(events.c.id, events.c.customer_id, events.c.sequence)
    .where(events.c.org_id == bindparam("org_id"), events.c.position.is_(None))
    .order_by(events.c.id)
    .limit(bindparam("limit"))
)
STREAM_OF = select(event_streams.c.last_position, event_streams.c.removed_through).where(
    event_streams.c.org_id == bindparam("org_id")
)
MOVE_STREAM_ON = (
    update(event_streams)
    .where(event_streams.c.org_id == bindparam("org_id"))
    .values(last_position=event_streams.c.last_position + bindparam("count"))
    .returning(event_streams.c.last_position)
)
SET_POSITION = (
    update(events)
    .where(events.c.org_id == bindparam("key_org_id"), events.c.id == bindparam("key_id"))
    .values(position=bindparam("position"))
)
# Retention (CONF_EVENT_RETENTION_DAYS) removes the oldest positions first, a few at a time: the
# stream's next candidates, read along its (org_id, position) index...
OLDEST_POSITIONED = (
    select(events.c.position, events.c.created_at)
    .where(events.c.org_id == bindparam("org_id"), events.c.position <= bindparam("through"))
    .order_by(events.c.position)
    .limit(bindparam("most"))
)
# ...removed through the last of them that expired, so that what is left of the stream is whole
# from removed_through on: a cursor at or past it misses nothing, an older one is told (410).
REMOVE_THROUGH = (
    delete(events)
    .where(events.c.org_id == bindparam("org_id"), events.c.position <= bindparam("last"))
    .returning(events.c.position)
)
MARK_REMOVED = (
    update(event_streams)
    .where(event_streams.c.org_id == bindparam("org_id"), event_streams.c.removed_through < bindparam("last"))
    .values(removed_through=bindparam("last"))
)


def event_rows(written: Written, customer_id: int, first_sequence: int, of_customer: list[Event]) -> list[dict[str, Any]]:
    """A customer's events as the outbox keeps them, numbered from `first_sequence`."""
    return [
        {
            "org_id": written.org_id,
            "event_id": event.event_id,
            "customer_id": customer_id,
            "sequence": first_sequence + number,
            "name": event.name.value,
            "created_at": written.at,
            "request_id": written.request_id,
            "origin": written.origin,
            "console_user": written.console_user,
            "data": event.data,
        }
        for number, event in enumerate(of_customer)
    ]


def stored_event(row: Mapping[str, Any]) -> StoredEvent:
    data = row["data"]
    return StoredEvent(**{name: row[name] for name in STREAM_COLUMNS if name != "data"},
                       data=orjson.loads(data) if isinstance(data, (str, bytes)) else data)


def stream_order(batch: list[tuple[int, int, int]]) -> list[int]:
    """Event ids (of rows (id, customer_id, sequence) in id order) in the order their positions go:
    by id, but each customer's in sequence order, so that no consumer sees a later event of a
    customer before an earlier one (ids need not follow sequences: on Citus a customer's first
    events take their ids on its worker, later ones on the coordinator)."""
    slots: dict[int, list[tuple[int, int]]] = {}
    for event_id, customer_id, sequence in batch:
        slots.setdefault(customer_id, []).append((sequence, event_id))
    ordered = {customer_id: iter(sorted(events_of)) for customer_id, events_of in slots.items()}
    return [next(ordered[customer_id])[1] for _, customer_id, _ in batch]


class EventStore:
    """An org's events in one unit of work: appended with their changes; positioned and read by
    the relay and the feed."""

    _insert: ClassVar[Statement]
    _advance: ClassVar[Statement]
    _read: ClassVar[Statement]
    _unpositioned: ClassVar[Statement]
    _unpositioned_of: ClassVar[Statement]
    _stream_of: ClassVar[Statement]
    _open_stream: ClassVar[Statement]
    _move_on: ClassVar[Statement]
    _set_position: ClassVar[Statement]
    _oldest_positioned: ClassVar[Statement]
    _remove_through: ClassVar[Statement]
    _mark_removed: ClassVar[Statement]

    def __init_subclass__(
        cls, *, statement: type[Statement], insert_event: Executable, unpositioned: Executable,
        unpositioned_of: Executable, open_stream: Executable, **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls._insert = statement(insert_event)
        cls._advance = statement(ADVANCE_SEQUENCE)
        cls._read = statement(READ_STREAM)
        cls._unpositioned = statement(unpositioned)
        cls._unpositioned_of = statement(unpositioned_of)
        cls._stream_of = statement(STREAM_OF)
        cls._open_stream = statement(open_stream)
        cls._move_on = statement(MOVE_STREAM_ON)
        cls._set_position = statement(SET_POSITION)
        cls._oldest_positioned = statement(OLDEST_POSITIONED)
        cls._remove_through = statement(REMOVE_THROUGH)
        cls._mark_removed = statement(MARK_REMOVED)

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def append(self, written: Written, appended: list[Event]) -> None:
        if not appended:
            return
        by_customer: dict[int, list[Event]] = {}
        for event in appended:
            if event.customer_id is None:
                raise ValueError("an existing customer's event names its customer")
            by_customer.setdefault(event.customer_id, []).append(event)
        rows: list[dict[str, Any]] = []
        for customer_id, of_customer in by_customer.items():
            values = {"org_id": written.org_id, "customer_id": customer_id, "count": len(of_customer)}
            (advanced,) = await self._advance.fetch(self.conn, values)
            first = advanced["event_sequence"] - len(of_customer) + 1
            rows += event_rows(written, customer_id, first, of_customer)
        await self._insert.execute_many(self.conn, rows)

    async def append_new(self, written: Written, appended: list[Event]) -> None:
        """Write a customer's first events, numbered from 1: the unit has just written it, with
        their count as its event_sequence."""
        if appended:
            customer_id = appended[0].customer_id
            if customer_id is None or any(event.customer_id != customer_id for event in appended):
                raise ValueError("a new customer's first events name it, and it alone")
            await self._insert.execute_many(self.conn, event_rows(written, customer_id, 1, appended))

    async def position_pending(self, org_id: int, most: int = 1000) -> int:
        """Give the org's committed events without a position the next positions of its stream, in
        stream_order; how many. Run by one relay at a time per org (its lease), in a unit."""
        batch = [(row["id"], row["customer_id"], row["sequence"])
                 for row in await self._unpositioned.fetch(self.conn, {"org_id": org_id, "limit": most})]
        if not batch:
            return 0
        # Every earlier event of the batch's customers goes with it, wherever its id falls.
        customers_of = sorted({customer_id for _, customer_id, _ in batch})
        earlier = await self._unpositioned_of.fetch(
            self.conn, {"org_id": org_id, "customer_ids": self.id_list(customers_of)}
        )
        known = {event_id for event_id, _, _ in batch}
        batch += [(row["id"], row["customer_id"], row["sequence"]) for row in earlier if row["id"] not in known]
        batch.sort()
        await self._open_stream.execute(self.conn, {"org_id": org_id})
        (moved,) = await self._move_on.fetch(self.conn, {"org_id": org_id, "count": len(batch)})
        first = moved["last_position"] - len(batch) + 1
        await self._set_position.execute_many(self.conn, [
            {"key_org_id": org_id, "key_id": event_id, "position": first + number}
            for number, event_id in enumerate(stream_order(batch))
        ])
        return len(batch)

    async def stream(self, org_id: int) -> tuple[int, int]:
        """The org's last position given and the last removed by retention (0, 0 before any)."""
        rows = await self._stream_of.fetch(self.conn, {"org_id": org_id})
        return (rows[0]["last_position"], rows[0]["removed_through"]) if rows else (0, 0)

    async def read(self, org_id: int, after: int, limit: int) -> list[StoredEvent]:
        """The org's positioned events after `after`, in stream order."""
        rows = await self._read.fetch(self.conn, {"org_id": org_id, "after": after, "limit": limit})
        return [stored_event(row) for row in rows]

    async def remove_expired(self, org_id: int, *, before: datetime, through: int, most: int = 1000) -> int:
        """Remove the org's oldest positioned events, at most `most`, that were created before
        `before` (naive UTC) and lie at or below position `through` (what every sink was handed);
        how many. Only the stream's head goes, up to its first event not yet expired, so that
        event_streams.removed_through, moved on to the last position removed, bounds a whole
        stream. Small batches: a unit locks at most `most` old rows, none a registration writes."""
        if most < 1 or through < 1:
            return 0
        if before.tzinfo is not None:
            before = before.astimezone(timezone.utc).replace(tzinfo=None)
        candidates = await self._oldest_positioned.fetch(self.conn, {"org_id": org_id, "through": through, "most": most})
        last = None
        for row in candidates:
            if row["created_at"] >= before:
                break
            last = row["position"]
        if last is None:
            return 0
        removed = await self._remove_through.fetch(self.conn, {"org_id": org_id, "last": last})
        await self._mark_removed.execute(self.conn, {"org_id": org_id, "last": last})
        return len(removed)

    @staticmethod
    def id_list(ids: list[int]) -> Any:
        """Customer ids as the engine's `unpositioned_of` statement takes them."""
        return ids
