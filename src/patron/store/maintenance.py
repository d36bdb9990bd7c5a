"""Database upkeep that the operator's tools run: refreshing planner statistics after bulk loads."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from patron.store.db import is_sqlite, transaction
from patron.store.schema import CUSTOMER_SCALE_TABLES


async def analyze_customer_tables(engine: AsyncEngine) -> None:
    """Fresh statistics for every customer-scale table. On PostgreSQL each table is sampled on a
    connection of its own, all at once: sampling reads a table's pages on one core (a second for
    the largest after a million-row import, two for all of them one after another)."""

    async def analyze(tables: tuple[str, ...]) -> None:
        async with transaction(engine) as conn:
            for table in tables:
                await conn.execute(text(f"ANALYZE {table}"))

    if is_sqlite(engine):
        await analyze(CUSTOMER_SCALE_TABLES)  # one writer at a time: more connections would queue
    else:
        await asyncio.gather(*(analyze((table,)) for table in CUSTOMER_SCALE_TABLES))
