"""An event as the domain makes it, and as the outbox keeps it (events.md §1)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from patron.events.names import EventName

# What made a change: the API (a request id the envelope names), the console, or an import.
Origin = Literal["api", "console", "import"]


def new_event_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Event:
    """One event of one customer. `customer_id` None: the new customer its write creates, whose id
    the database gives. The sequence is the store's to give, in the transaction (events.md §1)."""

    name: EventName
    customer_id: int | None
    # The event's body (events.build), as JSON takes it; the customer's id is the envelope's to fill.
    data: dict[str, Any]
    event_id: str = field(default_factory=new_event_id)


@dataclass(frozen=True)
class Written:
    """Who wrote a unit's events, and when: the same for every event of the write."""

    org_id: int
    at: datetime
    request_id: str
    origin: Origin
    console_user: str | None = None


@dataclass(frozen=True)
class StoredEvent:
    """An event as the outbox holds it once the relay gave it a position in its org's stream."""

    org_id: int
    position: int
    event_id: str
    customer_id: int
    sequence: int
    name: str
    created_at: datetime
    request_id: str
    origin: str
    console_user: str | None
    data: dict[str, Any]


class EventRepository(Protocol):
    async def append(self, written: Written, events: list[Event]) -> None:
        """Write the events of existing customers in the unit, each customer's numbered on from its
        latest (customers.event_sequence, moved on in the same statement that locks it)."""
