"""Statements built once with SQLAlchemy Core and run on each database's own driver.

The hottest reads and writes skip SQLAlchemy's per-execution work (building the statement, its
cache key, the greenlet bridge, an isolation level set and reset), which costs more than the
database does for them. A store compiles the schema's statements with its engine's kind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import asyncpg
from sqlalchemy import JSON
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.expression import Executable

from patron.store.db import json_text
from patron.store.sqlite_file import DIALECT as SQLITE, SqliteConnection


class Statement(Protocol):
    """A statement compiled for one engine, run on that engine's connection with a dict of values."""

    def __init__(self, statement: Executable) -> None: ...

    async def fetch(self, conn: Any, parameters: Mapping[str, Any]) -> list[Mapping[str, Any]]: ...

    async def execute(self, conn: Any, parameters: Mapping[str, Any]) -> None: ...

    async def execute_many(self, conn: Any, rows: list[dict[str, Any]]) -> None: ...


_ASYNCPG = PGDialect_asyncpg()


def _compile(statement: Executable, dialect: Dialect) -> SQLCompiler:
    """The statement's SQL compiler: every statement here (a select, insert, update or text) is a
    clause element, compiled by SQL's compiler, which the Executable type does not say."""
    if not isinstance(statement, ClauseElement):
        raise TypeError(f"not a SQL statement: {statement!r}")
    compiled = statement.compile(dialect=dialect)
    if not isinstance(compiled, SQLCompiler):
        raise TypeError(f"not compiled as SQL: {statement!r}")
    return compiled


class PgStatement:
    """A statement compiled for asyncpg, run on one of the DriverPool's connections."""

    def __init__(self, statement: Executable) -> None:
        compiled = _compile(statement, _ASYNCPG)
        self.sql = str(compiled)
        self._names = tuple(compiled.positiontup or ())
        # Values of JSON columns go to the driver as JSON text, as SQLAlchemy sends them.
        self._json = frozenset(name for name, bind in compiled.binds.items() if isinstance(bind.type, JSON))

    async def fetch(self, conn: asyncpg.Connection, parameters: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        # A Record is read as a mapping (by column name, keys(), items()), which asyncpg-stubs does not declare.
        return await conn.fetch(self.sql, *self.arguments(parameters))  # type: ignore[return-value]

    async def execute(self, conn: asyncpg.Connection, parameters: Mapping[str, Any]) -> None:
        await conn.execute(self.sql, *self.arguments(parameters))

    async def execute_many(self, conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> None:
        if rows:
            await conn.executemany(self.sql, [self.arguments(row) for row in rows])

    def arguments(self, parameters: Mapping[str, Any]) -> list[Any]:
        if not self._json:
            return [parameters[name] for name in self._names]
        # A JSON column's None is SQL NULL, not the JSON text null: a partial index WHERE ... IS NOT
        # NULL (customer_audits' warnings) must see it as absent.
        return [
            json_text(value) if name in self._json and value is not None else value
            for name in self._names
            for value in (parameters[name],)
        ]


def is_sqlite_unique_violation(exc: Exception) -> bool:
    """Whether SQLite refused a write for a unique index (a race for an identifier, a pending
    request): every other constraint (NOT NULL, CHECK, a primary key) is an IntegrityError too, and
    is a fault, not a race."""
    name = getattr(exc, "sqlite_errorname", None)
    if name is not None:
        return bool(name == "SQLITE_CONSTRAINT_UNIQUE")
    return str(exc).startswith("UNIQUE constraint failed")


class SqliteStatement:
    """A statement as SQLite's driver takes it: its SQL, its values in order, each in the form
    SQLAlchemy's SQLite dialect stores it (times as text, documents as JSON text), and its rows
    read back as that dialect reads them; run on a connection of store.sqlite_file."""

    def __init__(self, statement: Executable, *, stored: frozenset[str] = frozenset()) -> None:
        compiled = _compile(statement, SQLITE)
        self.sql = str(compiled)
        processors: dict[str, Callable[[Any], Any]] = {}
        for bound, processor in compiled._bind_processors.items():
            # A sequence of processors is a tuple's (an IN of tuples), which no statement here binds.
            if not callable(processor):
                raise TypeError(f"{bound}: a bind of tuples")
            processors[bound] = processor
        self.names = tuple(compiled.positiontup or ())
        # Values the statement carries itself (a literal: coalesce(max(id), 0) + 1), already processed.
        self._fixed = {
            name: process(bind.value) if (process := processors.get(name)) else bind.value
            for name, bind in ((name, compiled.binds[name]) for name in self.names)
            if bind.value is not None
        }
        # `stored`: values the caller gives already in their stored form (a JSON text, say).
        self._binds = tuple((name, None if name in stored else processors.get(name)) for name in self.names)
        entries = compiled._result_columns
        self.columns = tuple(entry.keyname for entry in entries)
        self._results = tuple(entry.type._cached_result_processor(SQLITE, None) for entry in entries)
        self._plain_results = not any(self._results)

    async def fetch(self, conn: SqliteConnection, parameters: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        return self.rows(await conn.fetch(self.sql, self.arguments(parameters)))

    async def execute(self, conn: SqliteConnection, parameters: Mapping[str, Any]) -> None:
        await conn.execute(self.sql, self.arguments(parameters))

    async def execute_many(self, conn: SqliteConnection, rows: list[dict[str, Any]]) -> None:
        if rows:
            await conn.execute_many(self.sql, [self.arguments(row) for row in rows])

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

    def rows(self, rows: list[tuple[Any, ...]]) -> list[Mapping[str, Any]]:
        columns = self.columns
        if self._plain_results:
            return [dict(zip(columns, row)) for row in rows]
        results = self._results
        return [
            dict(zip(columns, (value if read is None or value is None else read(value) for read, value in zip(results, row))))
            for row in rows
        ]
