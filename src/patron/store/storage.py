"""Each engine's store, proved against the domain's ports, and the one a database opens."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from patron.customers import ports
from patron.events.operators import OperationsStorage
from patron.store.db import UNOBSERVED, DriverPool, StoreObserver, is_sqlite
from patron.store.postgres import PostgresStorage
from patron.store.sqlite import SqliteStorage
from patron.store.sqlite_file import SqliteFile

# The database as registrations, look-ups, searches, operators and the console use it: one class per engine.
Storage = PostgresStorage | SqliteStorage


if TYPE_CHECKING:
    # Never run: mypy reads these, and fails on the line of the port an engine's store drifts from.
    _engine: Storage
    _registers: ports.Storage = _engine
    _changes_identities: ports.IdentityStorage = _engine
    _looks_up: ports.Lookups = _engine
    _searches: ports.SearchStorage = _engine
    _reads_audits: ports.AuditStorage = _engine
    _operates_events: OperationsStorage = _engine
    _serves_the_console: ports.ConsoleStorage = _engine


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
        path = engine.url.database or ""
        return SqliteStorage(SqliteFile(path, timeout=timeout, synchronous=sqlite_synchronous, searches=searches, observer=observer))
    if driver is None:
        raise ValueError("PostgreSQL's store runs on the driver's pool (store.db.create_driver_pool)")
    return PostgresStorage(driver, observer)
