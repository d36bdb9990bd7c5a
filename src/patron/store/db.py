"""Connections: the async engine for either database, and how transactions begin."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import orjson
from sqlalchemy import Table, bindparam, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.expression import BindParameter

from patron.customers.model import StorageUnavailable


class DatabaseUnavailable(StorageUnavailable):
    """Patron cannot reach its database; the request is answered 503 and nothing is written."""


class StoreObserver(Protocol):
    """What the store tells about its use, to whoever the bootstrap hands it at construction
    (observability's Observer, which turns it into metrics)."""

    def pool_opened(self, size: int) -> None:
        """A pool that may hold `size` connections was opened."""

    def connections_in_use(self, change: int) -> None:
        """+1 when a connection is taken from a pool, -1 when it is given back."""

    def statement_shared(self, statement: str, requests: int) -> None:
        """One statement ("register", "look_up") carried this many requests (store.shared)."""

    def transaction_committed(self, units: int) -> None:
        """One transaction of the SQLite writer committed this many units of work."""


class Unobserved:
    """A StoreObserver that is told everything and keeps nothing: the command line's, the tests'."""

    def pool_opened(self, size: int) -> None:
        pass

    def connections_in_use(self, change: int) -> None:
        pass

    def statement_shared(self, statement: str, requests: int) -> None:
        pass

    def transaction_committed(self, units: int) -> None:
        pass


UNOBSERVED = Unobserved()


def async_url(database_url: str) -> URL:
    """Pick Patron's own driver for a plain `sqlite:///` or `postgresql://` URL."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+asyncpg")
    raise ValueError(f"unsupported database URL {url.render_as_string(hide_password=True)!r}: use sqlite:/// or postgresql://")


def json_text(value: object) -> str:
    """A value as the JSON text the database is sent, by SQLAlchemy and by the driver alike."""
    return orjson.dumps(value).decode()


def named_binds(names: Iterable[str]) -> dict[str, BindParameter[Any]]:
    """A bind parameter for each column, named after it: a statement built once and executed with
    a dict of values, as driver statements are."""
    return {name: bindparam(name) for name in names}


def inserted_columns(table: Table) -> list[str]:
    """The columns an INSERT gives values to: all but a generated `id`."""
    return [column.name for column in table.columns if column.name != "id"]


def is_sqlite(engine: AsyncEngine | AsyncConnection) -> bool:
    """An engine or connection of SQLite."""
    return not isinstance(engine, asyncpg.Connection) and engine.dialect.name == "sqlite"


def is_citus(conn: Any) -> bool:
    """Whether the connection is to a Citus coordinator (found when the connection was opened)."""
    if isinstance(conn, asyncpg.Connection):
        return isinstance(conn, PatronConnection) and conn.citus
    return bool(conn.info.get(_CITUS))


class PatronConnection(asyncpg.Connection):
    """A driver connection that knows whether its database is a Citus coordinator."""

    __slots__ = ("citus",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.citus = False


_CITUS = "patron_citus"
_HAS_CITUS = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')"
# On Citus, a statement is planned with its values: the coordinator routes it to the one shard
# its org_id names, and delegates a call of a distributed function to the worker that holds the
# org; a generic plan would leave it to the coordinator, or fail where Citus cannot plan a
# parameter. Routing needs no more planning than that, so nothing is lost.
_CITUS_PLANS = "SET plan_cache_mode = force_custom_plan"


# Generic plans: every statement Patron prepares is a lookup or write by key, whose plan does not
# depend on the values. By default PostgreSQL plans each of the first executions afresh and keeps
# doing so while a custom plan looks cheaper, and planning the registration's five-part statement
# cost more than running it (PostgreSQL's CPU per new customer halved: 827 to 410 µs).
_SERVER_SETTINGS = {"application_name": "patron", "plan_cache_mode": "force_generic_plan"}


def create_engine(
    database_url: str,
    *,
    pool_size: int = 10,
    timeout: float = 5.0,
    sqlite_synchronous: str = "NORMAL",
    observer: StoreObserver | None = None,
) -> AsyncEngine:
    """SQLAlchemy's engine for the URL; with an `observer`, told of its pool's size and use."""
    url = async_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = _sqlite_engine(url, timeout, sqlite_synchronous)
    else:
        engine = _postgresql_engine(url, pool_size, timeout)
    if observer is not None:
        _observe_pool(engine, observer)
    return engine


def _observe_pool(engine: AsyncEngine, observer: StoreObserver) -> None:
    """Connections in use counted through the pool's events, so each worker keeps its own figure."""
    pool = engine.sync_engine.pool
    observer.pool_opened(pool.size() if hasattr(pool, "size") else 0)
    event.listen(pool, "checkout", lambda *_: observer.connections_in_use(1))
    event.listen(pool, "checkin", lambda *_: observer.connections_in_use(-1))


def _postgresql_engine(url: URL, pool_size: int, timeout: float) -> AsyncEngine:
    engine = create_async_engine(
        url,
        json_serializer=json_text,
        json_deserializer=orjson.loads,
        pool_size=pool_size,
        # Overflow connections are closed on return, and a new PostgreSQL backend per request
        # under load costs more than waiting for a pooled one.
        max_overflow=0,
        pool_timeout=timeout,
        pool_pre_ping=False,
        # The pool's own rollback on return is all the reset a connection needs.
        connect_args={"timeout": timeout, "command_timeout": timeout * 6, "server_settings": _SERVER_SETTINGS},
    )
    event.listen(engine.sync_engine, "connect", _on_postgresql_connect)
    return engine


def _on_postgresql_connect(dbapi_connection: Any, record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(_HAS_CITUS)
        citus = bool(cursor.fetchone()[0])
        if citus:
            cursor.execute(_CITUS_PLANS)
    finally:
        cursor.close()
    # The driver's adapter opened a transaction for these: committed, the setting stays for the
    # connection's life (a rollback would undo it).
    dbapi_connection.commit()
    record.info[_CITUS] = citus


@dataclass
class DriverPool:
    """PostgreSQL: the driver's own pool, for the units of work of requests: the registration of
    new customers and look-ups (single statements), and updates (a transaction of driver
    statements).

    SQLAlchemy's async engine costs more per unit than such a unit's statement does: a checkout
    through its greenlet bridge, isolation levels set and reset, a reset on return.
    """

    pool: asyncpg.Pool
    size: int
    timeout: float
    # Told +1 when a connection is taken and -1 when it is given back (the pool metrics).
    on_use: Callable[[int], None] = lambda change: None
    # One slot per connection. Under load units outnumber connections, and a wait inside the
    # pool (asyncio.wait_for: a task and a timer on every acquire) cost more than the unit's
    # statement; a unit waits here instead, with the timeout, and only when every slot is taken.
    slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.size)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection for one unit of work: its single statements each commit on their own, or
        the unit opens a transaction (store.postgres) and ends it before the connection returns."""
        try:
            if self.slots.locked():
                async with asyncio.timeout(self.timeout):
                    await self.slots.acquire()
            else:
                await self.slots.acquire()
        except TimeoutError as exc:
            raise DatabaseUnavailable(f"no database connection came free within {self.timeout:g} s") from exc
        try:
            try:
                # With a slot, a connection is idle in the pool, or is opened within the connect timeout.
                conn = await self.pool.acquire()
            except (OSError, *_DRIVER_ERRORS) as exc:
                if isinstance(exc, OSError) or is_unavailable(exc):
                    raise DatabaseUnavailable(_first_line(exc)) from exc
                raise
            self.on_use(1)
            try:
                # The pool's proxy forwards every Connection method; asyncpg-stubs types it apart from one.
                yield conn  # type: ignore[misc]
            except (OSError, *_DRIVER_ERRORS) as exc:
                if not is_unavailable(exc):
                    raise
                # Not reused broken: the pool opens a new one in its place. A connection the driver
                # saw close has already left the pool, and says so (InterfaceError) when terminated again.
                with contextlib.suppress(asyncpg.InterfaceError):
                    conn.terminate()
                raise DatabaseUnavailable(_first_line(exc)) from exc
            finally:
                self.on_use(-1)
                # A unit that ended without closing its transaction (cancelled mid-commit, say)
                # leaves it open, and the pool resets nothing on return: the connection is dropped
                # rather than lent to a unit whose statements would run inside that transaction.
                # (A connection already terminated says so with InterfaceError.)
                with contextlib.suppress(asyncpg.InterfaceError):
                    if conn.is_in_transaction():
                        conn.terminate()
                await self.pool.release(conn)
        finally:
            self.slots.release()

    async def close(self) -> None:
        await self.pool.close()


async def create_driver_pool(
    database_url: str, *, size: int = 10, timeout: float = 5.0, observer: StoreObserver = UNOBSERVED
) -> DriverPool | None:
    """The driver pool on PostgreSQL, None on SQLite, telling `observer` its size and use.
    Connections open on first use, so an idle worker holds none."""
    url = async_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    pool = await asyncpg.create_pool(
        url.set(drivername="postgresql").render_as_string(hide_password=False),
        min_size=0,
        max_size=size,
        timeout=timeout,
        command_timeout=timeout * 6,
        server_settings=_SERVER_SETTINGS,
        init=_driver_codecs,
        connection_class=PatronConnection,
        # Units on these connections set no session state and end any transaction they open (one
        # left open is dropped: DriverPool.connection), so a returned connection needs no reset
        # (a round trip saved each time).
        reset=_no_reset,
    )
    observer.pool_opened(size)
    return DriverPool(pool, size, timeout, observer.connections_in_use)


async def _driver_codecs(conn: asyncpg.Connection) -> None:
    # The pool opens PatronConnections (its connection_class), which the init callback's type cannot say.
    if not isinstance(conn, PatronConnection):
        raise TypeError(f"the pool opened a {type(conn).__name__}, not a PatronConnection")
    # As on SQLAlchemy's connections, where the same driver statements run: JSON goes in as JSON
    # text and comes out as Python values.
    for json_type in ("json", "jsonb"):
        await conn.set_type_codec(json_type, encoder=str, decoder=orjson.loads, schema="pg_catalog")
    conn.citus = await conn.fetchval(_HAS_CITUS)
    if conn.citus:
        await conn.execute(_CITUS_PLANS)


async def _no_reset(conn: asyncpg.Connection) -> None:
    return None


# SQLite's synchronous settings Patron offers (docs/sqlite.md: what a power loss can cost under each).
SQLITE_SYNCHRONOUS = ("NORMAL", "FULL")


def sqlite_pragmas(timeout: float, synchronous: str) -> list[str]:
    """How Patron opens every connection to an SQLite file, SQLAlchemy's and its own alike: WAL, a
    busy timeout for writers that are not Patron's, the chosen durability, foreign keys."""
    if synchronous not in SQLITE_SYNCHRONOUS:
        raise ValueError(f"SQLite synchronous must be one of {', '.join(SQLITE_SYNCHRONOUS)}, not {synchronous!r}")
    return [
        "PRAGMA journal_mode=WAL",
        f"PRAGMA busy_timeout={int(timeout * 1000)}",
        f"PRAGMA synchronous={synchronous}",
        "PRAGMA foreign_keys=ON",
    ]


def _sqlite_engine(url: URL, timeout: float, synchronous: str) -> AsyncEngine:
    pragmas = sqlite_pragmas(timeout, synchronous)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        url, json_serializer=json_text, json_deserializer=orjson.loads, connect_args={"timeout": timeout}
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record):  # noqa: ANN001
        # Take transaction control from the driver so that writers can BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection):  # noqa: ANN001
        # A deferred transaction that reads and then writes cannot wait for a lock held by a
        # concurrent writer (SQLite answers "database is locked" at once); taking the write
        # lock up front makes it wait for busy_timeout instead.
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


# SQLite admits one writer at a time. Writers of one process queue on this lock instead of in
# SQLite's busy handler, which polls with sleeps and makes waits long and unfair.
_sqlite_writers: dict[int, asyncio.Lock] = {}


@asynccontextmanager
async def transaction(
    engine: AsyncEngine, *, readonly: bool = False, autocommit: bool = False
) -> AsyncIterator[AsyncConnection]:
    """One unit of work: committed when the block ends, rolled back on any exception.

    `autocommit` runs each statement on its own (PostgreSQL only; for a unit of one statement);
    a `readonly` unit on PostgreSQL does too, as its reads need no transaction around them.
    """
    try:
        if is_sqlite(engine):
            if readonly:
                async with engine.connect() as conn:
                    conn = await conn.execution_options(sqlite_begin="DEFERRED")
                    async with _unavailable_as_503(conn), conn.begin():
                        yield conn
                return
            async with _sqlite_writers.setdefault(id(engine), asyncio.Lock()), engine.connect() as conn:
                async with _unavailable_as_503(conn), conn.begin():
                    yield conn
            return
        async with engine.connect() as conn:
            async with _unavailable_as_503(conn):
                if readonly or autocommit:
                    conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                    yield conn
                    return
                async with conn.begin():
                    yield conn
    except (DBAPIError, SQLAlchemyTimeoutError, OSError) as exc:
        # Connecting failed, or the pool had no connection to give within its timeout.
        if is_unavailable(exc):
            raise DatabaseUnavailable(_first_line(exc)) from exc
        raise


@asynccontextmanager
async def _unavailable_as_503(conn: AsyncConnection) -> AsyncIterator[None]:
    """A connection lost mid-unit is unavailability, not an error of the request: the unit is
    answered 503 (safe to retry) and the connection is dropped from the pool, not reused broken."""
    try:
        yield
    except (DBAPIError, OSError, *_DRIVER_ERRORS) as exc:
        if not is_unavailable(exc):
            raise
        with contextlib.suppress(Exception):
            await conn.invalidate()
        raise DatabaseUnavailable(_first_line(exc)) from exc


# SQLSTATE classes and codes that mean "the database cannot be reached now", not "this request
# is wrong": connection exceptions, operator intervention (shutdown, starting up), too many
# connections, and SQLite's lock held past the busy timeout.
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "57P", "53300")
_UNAVAILABLE_MESSAGES = (
    "database is locked",
    "unable to open database",
    "disk i/o error",
    "database or disk is full",
    # Citus, for the moment its metadata names a shard that a split or move has just replaced:
    # the same statement a moment later finds the new one.
    "could not find valid entry for shard",
)


# What asyncpg raises itself, unwrapped, for statements run on the driver connection.
_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError)


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, SQLAlchemyTimeoutError)):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc, InterfaceError):
            return True
        driver_error = exc.orig.__cause__ if exc.orig is not None and exc.orig.__cause__ is not None else exc.orig
    elif isinstance(exc, (*_DRIVER_ERRORS, sqlite3.Error)):
        driver_error = exc
    else:
        return False
    if isinstance(driver_error, (OSError, asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError)):
        # The driver lost the connection, or found it in a state it cannot continue from.
        return True
    sqlstate = getattr(driver_error, "sqlstate", None) or getattr(getattr(exc, "orig", None), "sqlstate", None) or ""
    if sqlstate.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES):
        return True
    return any(marker in str(exc).lower() for marker in _UNAVAILABLE_MESSAGES)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]
