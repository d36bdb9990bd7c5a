"""One place that wires Patron: the database's engine and its store, the org cache and
authentication, for the server, the command line and each process of an import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from patron.admission import SearchGate
from patron.auth.authenticate import Authenticator
from patron.auth.guard import CredentialGuard
from patron.orgs.cache import OrgCache
from patron.settings import Settings
from patron.store.db import UNOBSERVED, StoreObserver, create_driver_pool, create_engine
from patron.store.storage import Storage, open_storage


@dataclass
class Services:
    """What the server's requests share, of the API and the console alike, for the app's life."""

    settings: Settings
    engine: AsyncEngine
    orgs: OrgCache
    auth: Authenticator
    # Customers and loyalty: the store of the database's engine (store.postgres, store.sqlite).
    storage: Storage
    # Searches running in this worker, of the API and the console alike (patron.admission).
    searches: SearchGate


def engine(settings: Settings, *, pool_size: int | None = None, observer: StoreObserver | None = None) -> AsyncEngine:
    """SQLAlchemy's engine: migrations, org files, credentials, checks (not the hot path)."""
    return create_engine(
        settings.database_url,
        pool_size=pool_size or settings.db_pool_size,
        timeout=settings.db_timeout_seconds,
        sqlite_synchronous=settings.sqlite_synchronous,
        observer=observer,
    )


async def storage(
    engine: AsyncEngine, settings: Settings, *, connections: int | None = None, observer: StoreObserver = UNOBSERVED
) -> Storage:
    """The store of the engine's database, for registrations and look-ups: on PostgreSQL with a
    driver pool of `connections` (default PATRON_DB_POOL_SIZE), on SQLite on the file."""
    url = engine.url.render_as_string(hide_password=False)
    timeout = settings.db_timeout_seconds
    driver = await create_driver_pool(
        url, size=connections or settings.db_pool_size, timeout=timeout, observer=observer
    )
    return open_storage(
        engine, driver, timeout=timeout, sqlite_synchronous=settings.sqlite_synchronous, searches=settings.search_slots,
        observer=observer,
    )


@asynccontextmanager
async def services(settings: Settings, observer: StoreObserver) -> AsyncIterator[Services]:
    """What the server's requests share, open for the app's life, and closed after. The store
    tells `observer` (the app's, observability.Observer) of its pools and statements."""
    sql = engine(settings, observer=observer)
    store = await storage(sql, settings, observer=observer)
    orgs = OrgCache(sql, settings.org_cache_seconds)
    auth = Authenticator(
        sql, orgs, settings.secret_key, settings.credential_cache_seconds, CredentialGuard.from_settings(settings)
    )
    try:
        searches = SearchGate(settings.search_slots, settings.searches_per_caller)
        yield Services(settings=settings, engine=sql, orgs=orgs, auth=auth, storage=store, searches=searches)
    finally:
        await store.close()  # and the driver's pool with it
        await sql.dispose()
