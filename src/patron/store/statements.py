"""Statements built once with SQLAlchemy and run on each database's own driver connection."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
from sqlalchemy import JSON
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import Executable

from patron.store.db import is_sqlite, json_text
from patron.store.sqlite import DIALECT as SQLITE, SqliteConnection

# A unit of work runs on SQLAlchemy's connection, on PostgreSQL on one of the DriverPool's, or on
# SQLite on the file's writer or reader (store.sqlite).
Connection = AsyncConnection | asyncpg.Connection | SqliteConnection


class DriverStatement:
    """A statement compiled once for asyncpg and for SQLite, and run on the driver's own connection.

    The hottest reads and writes skip SQLAlchemy's per-execution work (building the statement, its
    cache key, the greenlet bridge), which costs more than the database does for them: on
    PostgreSQL on a connection of the DriverPool, or in a SQLAlchemy unit without a transaction
    (`autocommit`), where each statement stands alone and SQLAlchemy has nothing open on the
    connection; on SQLite always. Elsewhere the statement runs as usual.
    """

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        # Each form is compiled when first needed: some statements are one database's alone.
        self._asyncpg: tuple[str, tuple[str, ...], frozenset[str]] | None = None
        self._sqlite: SqliteForm | None = None

    @property
    def asyncpg(self) -> tuple[str, tuple[str, ...], frozenset[str]]:
        """The statement as asyncpg runs it: its SQL, its values' names in order, and those of JSON
        columns (sent as JSON text, as SQLAlchemy sends them)."""
        if self._asyncpg is None:
            compiled = self.statement.compile(dialect=_ASYNCPG)
            json = frozenset(name for name, bind in compiled.binds.items() if isinstance(bind.type, JSON))
            self._asyncpg = (str(compiled), tuple(compiled.positiontup or ()), json)
        return self._asyncpg

    @property
    def sqlite(self) -> SqliteForm:
        """The statement as SQLite's driver runs it."""
        if self._sqlite is None:
            self._sqlite = SqliteForm(self.statement)
        return self._sqlite

    async def fetch(self, conn: Connection, parameters: dict[str, Any]) -> list[Mapping[str, Any]]:
        if isinstance(conn, SqliteConnection):
            form = self.sqlite
            return form.rows(await conn.fetch(form.sql, form.arguments(parameters)))
        driver = await self._driver(conn)
        if driver is None:
            return [row._mapping for row in await conn.execute(self.statement, parameters)]  # type: ignore[union-attr]
        return await driver.fetch(self.asyncpg[0], *self._arguments(parameters))

    async def execute(self, conn: Connection, parameters: dict[str, Any]) -> None:
        """Run a statement that returns no rows."""
        if isinstance(conn, SqliteConnection):
            await conn.execute(self.sqlite.sql, self.sqlite.arguments(parameters))
            return
        driver = await self._driver(conn)
        if driver is None:
            await conn.execute(self.statement, parameters)  # type: ignore[union-attr]
        else:
            await driver.execute(self.asyncpg[0], *self._arguments(parameters))

    async def execute_many(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Run a statement that returns no rows once for each set of values."""
        if not rows:
            return
        if isinstance(conn, SqliteConnection):
            await conn.execute_many(self.sqlite.sql, [self.sqlite.arguments(row) for row in rows])
            return
        driver = await self._driver(conn)
        if driver is None:
            await conn.execute(self.statement, rows)  # type: ignore[union-attr]
        else:
            await driver.executemany(self.asyncpg[0], [self._arguments(row) for row in rows])

    async def _driver(self, conn: AsyncConnection | asyncpg.Connection) -> asyncpg.Connection | None:
        """The driver connection to run on, or None to run through SQLAlchemy's."""
        if isinstance(conn, asyncpg.Connection):
            return conn
        if is_sqlite(conn) or conn.sync_connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            return None
        return (await conn.get_raw_connection()).driver_connection

    def _arguments(self, parameters: dict[str, Any]) -> list[Any]:
        _, names, json = self.asyncpg
        if not json:
            return [parameters[name] for name in names]
        return [json_text(parameters[name]) if name in json else parameters[name] for name in names]


_ASYNCPG = PGDialect_asyncpg()


class SqliteForm:
    """A statement as SQLite's driver takes it: its SQL, its values in order, each in the form
    SQLAlchemy's SQLite dialect stores it (times as text, documents as JSON text), and its rows
    read back as that dialect reads them."""

    def __init__(self, statement: Executable, *, stored: frozenset[str] = frozenset()) -> None:
        compiled = statement.compile(dialect=SQLITE)
        self.sql = str(compiled)
        processors = compiled._bind_processors
        # `stored`: values the caller gives already in their stored form (a JSON text, say).
        self.names = tuple(compiled.positiontup or ())
        # Values the statement carries itself (a literal: coalesce(max(id), 0) + 1), already processed.
        fixed = {
            name: process(bind.value) if (process := processors.get(name)) else bind.value
            for name, bind in ((name, compiled.binds[name]) for name in self.names)
            if bind.value is not None
        }
        self._binds = tuple((name, None if name in stored else processors.get(name)) for name in self.names)
        self._fixed = fixed
        entries = compiled._result_columns
        self.columns = tuple(entry.keyname for entry in entries)
        self._results = tuple(entry.type._cached_result_processor(SQLITE, None) for entry in entries)
        self._plain_results = not any(self._results)

    def arguments(self, parameters: Mapping[str, Any]) -> tuple[Any, ...]:
        if self._fixed:
            parameters = {**parameters, **self._fixed}
            return tuple(
                parameters[name] if process is None or parameters[name] is None or name in self._fixed
                else process(parameters[name])
                for name, process in self._binds
            )
        return tuple(
            parameters[name] if process is None or parameters[name] is None else process(parameters[name])
            for name, process in self._binds
        )

    def rows(self, rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
        columns = self.columns
        if self._plain_results:
            return [dict(zip(columns, row)) for row in rows]
        results = self._results
        return [
            dict(zip(columns, (value if read is None or value is None else read(value) for read, value in zip(results, row))))
            for row in rows
        ]
