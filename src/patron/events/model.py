"""An event as the domain makes it, who wrote it, and as the outbox keeps it (events.md §1)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from patron.events.names import EventName
from patron.orgs.model import OrgSettings

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


@dataclass(frozen=True)
class Writer:
    """Who made a change, as every event of it says: the org, the till (or console user), when."""

    org: OrgSettings
    till_code: str | None
    console_user: str | None
    at: datetime
    origin: Origin

    def entered_by(self) -> dict[str, Any]:
        if self.console_user is not None:
            return {"consoleUser": self.console_user}
        till = self.org.till(self.till_code) if self.till_code else None
        if till is None:
            return {"till": {"code": self.till_code, "name": None}, "store": None}
        return {"till": {"code": till.code, "name": till.name}, "store": {"code": till.store.code, "name": till.store.name}}
