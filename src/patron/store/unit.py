"""Units of work (one transaction, and the repositories inside it), and the Storage they run on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from patron.registration.service import Caller, NewCustomer
from patron.store.customers import CustomerStore, Registration
from patron.store.db import DriverPool, transaction
from patron.store.loyalty import LoyaltyStore
from patron.store.registrations import RegistrationWriter


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


class Storage:
    """The database as registrations and look-ups use it: units of work, and new customers written
    outside them, on PostgreSQL together with other concurrent registrations of the org
    (store.registrations)."""

    def __init__(self, engine: AsyncEngine, driver: DriverPool | None = None) -> None:
        self.engine = engine
        self.driver = driver
        self.writer = RegistrationWriter(driver) if driver is not None else None

    def unit_of_work(self, *, readonly: bool = False) -> AbstractAsyncContextManager[StoreUnit]:
        return unit_of_work(self.engine, readonly=readonly, driver=self.driver)

    async def insert_new(self, new_customers: list[NewCustomer], caller: Caller, at: datetime) -> list[int | None]:
        registration = Registration(new_customers, caller, at)
        if self.writer is not None:
            return await self.writer.write(registration)
        async with unit_of_work(self.engine, single_statement=True) as unit:
            (ids,) = await unit.customers.register_new([registration])
        return ids
