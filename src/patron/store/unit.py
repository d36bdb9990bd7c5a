"""A unit of work: one transaction, and the repositories that read and write inside it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from patron.store.customers import CustomerStore
from patron.store.db import DriverPool, transaction
from patron.store.loyalty import LoyaltyStore


@dataclass
class StoreUnit:
    customers: CustomerStore
    loyalty: LoyaltyStore


@asynccontextmanager
async def unit_of_work(
    engine: AsyncEngine,
    *,
    readonly: bool = False,
    single_statement: bool = False,
    driver: DriverPool | None = None,
) -> AsyncIterator[StoreUnit]:
    """Committed when the block ends, rolled back on any exception.

    `single_statement`: the unit issues one self-atomic statement; on PostgreSQL it then runs
    without BEGIN and COMMIT, two round trips fewer. With a `driver` pool (PostgreSQL) every unit
    runs on one of its connections, the others in a transaction of the driver's: the store's
    statements are driver statements, cheaper than SQLAlchemy's execution of them.
    """
    if driver is not None:
        async with driver.connection() as conn:
            if readonly or single_statement:
                yield StoreUnit(CustomerStore(conn), LoyaltyStore(conn))
                return
            async with conn.transaction():
                yield StoreUnit(CustomerStore(conn), LoyaltyStore(conn))
        return
    async with transaction(engine, readonly=readonly, autocommit=single_statement) as conn:
        yield StoreUnit(CustomerStore(conn), LoyaltyStore(conn))
