"""One place that wires Patron: the database's engine and its store, the org cache and
authentication, for the server, the command line and each process of an import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from patron.settings import Settings
from patron.store.db import create_driver_pool, create_engine
from patron.store.unit import Storage, open_storage

if TYPE_CHECKING:
    from patron.api.context import Services
    from patron.observability import Observer


def engine(settings: Settings, *, pool_size: int | None = None) -> AsyncEngine:
    """SQLAlchemy's engine: migrations, org files, credentials, checks (not the hot path)."""
    return create_engine(
        settings.database_url,
        pool_size=pool_size or settings.db_pool_size,
        timeout=settings.db_timeout_seconds,
        sqlite_synchronous=settings.sqlite_synchronous,
    )


async def storage(engine: AsyncEngine, settings: Settings, *, connections: int | None = None) -> Storage:
    """The store of the engine's database, for registrations and look-ups: on PostgreSQL with a
    driver pool of `connections` (default PATRON_DB_POOL_SIZE), on SQLite on the file."""
    url = engine.url.render_as_string(hide_password=False)
    timeout = settings.db_timeout_seconds
    driver = await create_driver_pool(url, size=connections or settings.db_pool_size, timeout=timeout)
    return open_storage(
        engine, driver, timeout=timeout, sqlite_synchronous=settings.sqlite_synchronous, searches=settings.search_slots
    )


@asynccontextmanager
async def services(settings: Settings, observer: Observer) -> AsyncIterator[Services]:
    """What the server's requests share, open for the app's life, and closed after."""
    from patron.api.admission import SearchGate
    from patron.api.auth import Authenticator, CredentialGuard
    from patron.api.context import Services
    from patron.orgs.cache import OrgCache

    sql = engine(settings)
    observer.watch_pool(sql)
    store = await storage(sql, settings)
    observer.watch_storage(store)
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
