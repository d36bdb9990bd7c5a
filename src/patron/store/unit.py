"""What a store gives the domain: a unit of work's repositories, and the Storage of each engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from sqlalchemy.ext.asyncio import AsyncEngine

from patron.loyalty.model import Membership
from patron.registration.model import Customer
from patron.store.console import ConsoleStore
from patron.store.customers import CustomerStore
from patron.store.db import UNOBSERVED, DriverPool, StoreObserver, is_sqlite
from patron.store.event_ops import EventOperations
from patron.store.events import EventStore
from patron.store.identity_requests import IdentityRequestStore
from patron.store.loyalty import LoyaltyStore
from patron.store.relay import DeliveryStore

if TYPE_CHECKING:
    from patron.store.postgres import PostgresStorage
    from patron.store.sqlite import SqliteStorage

# A look-up's answer: each value's customer and memberships, for the values held by a customer.
Found = dict[str | int, tuple[Customer, list[Membership]]]


@dataclass
class StoreUnit:
    """The repositories of one unit of work (one engine's, on one connection)."""

    customers: CustomerStore
    loyalty: LoyaltyStore
    identity_requests: IdentityRequestStore
    events: EventStore
    # The relay's: leases, sinks' progress, retries, attempts (store.relay).
    deliveries: DeliveryStore
    # Operators': sinks' health and backlog, dead letters, replays (store.event_ops).
    event_ops: EventOperations
    # The member-care console's: sessions, a customer page's ledger and referrals, the overview (store.console).
    console: ConsoleStore


# The database as registrations and look-ups use it (registration.service.Storage, with look-ups
# and close): one class per engine.
Storage = Union["PostgresStorage", "SqliteStorage"]


def open_storage(
    engine: AsyncEngine,
    driver: DriverPool | None,
    *,
    timeout: float = 5.0,
    sqlite_synchronous: str = "NORMAL",
    searches: int = 4,
    observer: StoreObserver = UNOBSERVED,
) -> Storage:
    """The store of the engine's database: SQLite's on its file (with `searches` threads for
    searches), else PostgreSQL's on the driver pool; either tells `observer` of its use."""
    if is_sqlite(engine):
        from patron.store.sqlite import SqliteStorage

        return SqliteStorage(
            engine.url.database or "", timeout=timeout, synchronous=sqlite_synchronous, searches=searches, observer=observer
        )
    if driver is None:
        raise ValueError("PostgreSQL's store runs on the driver's pool (store.db.create_driver_pool)")
    from patron.store.postgres import PostgresStorage

    return PostgresStorage(driver, observer)
