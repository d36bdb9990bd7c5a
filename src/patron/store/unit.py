"""Units of work (one transaction, and the repositories inside it), and the Storage they run on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from patron.loyalty.model import Membership
from patron.registration.model import Customer
from patron.registration.service import Caller, NewCustomer
from patron.store.customers import CustomerStore, Lookup, Registration, sqlite_register_new
from patron.store.db import DriverPool, is_sqlite, transaction
from patron.store.loyalty import LoyaltyStore
from patron.store.shared import SharedStatements
from patron.store.sqlite import SqliteFile

# A look-up's answer: each value's customer and memberships, for the values held by a customer.
Found = dict[str | int, tuple[Customer, list[Membership]]]


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
    """The database as registrations and look-ups use it: units of work, and new customers and
    look-ups outside them. On PostgreSQL concurrent requests of an org share statements
    (store.shared); on SQLite they share the writer's transactions, and read without waiting for
    it (store.sqlite)."""

    def __init__(
        self,
        engine: AsyncEngine,
        driver: DriverPool | None = None,
        *,
        timeout: float = 5.0,
        sqlite_synchronous: str = "NORMAL",
    ) -> None:
        self.engine = engine
        self.driver = driver
        self.sqlite: SqliteFile | None = None
        if is_sqlite(engine):
            self.sqlite = SqliteFile(engine.url.database or "", timeout=timeout, synchronous=sqlite_synchronous)
        self.registrations: SharedStatements[Registration, list[int | None]] | None = None
        self.lookups: SharedStatements[Lookup, Found] | None = None
        if driver is not None:
            self.registrations = SharedStatements(self._register, lambda registration: len(registration.new_customers))
            self.lookups = SharedStatements(self._look_up, lambda lookup: len(lookup.values))

    def unit_of_work(self, *, readonly: bool = False) -> AbstractAsyncContextManager[StoreUnit]:
        if self.sqlite is not None:
            return self._sqlite_unit(self.sqlite, readonly)
        return unit_of_work(self.engine, readonly=readonly, driver=self.driver)

    @asynccontextmanager
    async def _sqlite_unit(self, sqlite: SqliteFile, readonly: bool) -> AsyncIterator[StoreUnit]:
        if readonly:
            yield StoreUnit(CustomerStore(sqlite.reader), LoyaltyStore(sqlite.reader))
            return
        async with sqlite.writer.unit() as conn:
            yield StoreUnit(CustomerStore(conn), LoyaltyStore(conn))

    async def close(self) -> None:
        if self.sqlite is not None:
            await self.sqlite.close()

    async def insert_new(self, new_customers: list[NewCustomer], caller: Caller, at: datetime) -> list[int | None]:
        registration = Registration(new_customers, caller, at)
        if self.sqlite is not None:
            (ids,) = await self.sqlite.writer.run(sqlite_register_new([registration]))
            return ids
        if self.registrations is not None:
            return await self.registrations.run(caller.org.org_id, registration)
        (ids,) = await self._register([registration])
        return ids

    async def find_with_memberships(self, org_id: int, field: str, values: list[str | int]) -> Found:
        """The org's customers holding these values of one identifier, with their memberships, by value."""
        if not values:
            return {}
        lookup = Lookup(org_id, field, tuple(values))
        if self.lookups is not None:
            return await self.lookups.run((org_id, field), lookup)
        (found,) = await self._look_up([lookup])
        return found

    async def _register(self, registrations: list[Registration]) -> list[list[int | None]]:
        async with unit_of_work(self.engine, single_statement=True, driver=self.driver) as unit:
            return await unit.customers.register_new(registrations)

    async def _look_up(self, lookups: list[Lookup]) -> list[Found]:
        """Look-ups of one org and identifier, answered from one statement."""
        org_id, field = lookups[0].org_id, lookups[0].field
        if any((lookup.org_id, lookup.field) != (org_id, field) for lookup in lookups):
            raise ValueError("one statement looks up one org's customers by one identifier")
        values = list(dict.fromkeys(value for lookup in lookups for value in lookup.values))
        async with self.unit_of_work(readonly=True) as unit:
            found = await unit.customers.find_many_with_memberships(org_id, field, values)
        return [{value: found[value] for value in lookup.values if value in found} for lookup in lookups]
