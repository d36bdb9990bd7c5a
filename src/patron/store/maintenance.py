"""Database upkeep that the operator's tools run: refreshing planner statistics after bulk loads."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from patron.store.db import transaction
from patron.store.schema import CUSTOMER_SCALE_TABLES


async def analyze_customer_tables(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        for table in CUSTOMER_SCALE_TABLES:
            await conn.execute(text(f"ANALYZE {table}"))
