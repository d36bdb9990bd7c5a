"""An org's customers read in id order, a page per statement, for `patron customer export`."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncEngine

from patron.customers.model import Customer
from patron.store.customers import SELECT_CUSTOMER, customer_of
from patron.store.db import transaction
from patron.store.schema import customers


async def customer_pages(engine: AsyncEngine, org_id: int, page: int = 1000) -> AsyncIterator[list[Customer]]:
    """Every customer of the org, oldest id first, `page` at a time: memory stays that of a page
    however many there are. One read-only transaction, so the pages are one snapshot (a customer
    registered meanwhile is in or out whole); each page starts after the last id of the one before,
    along the primary key (org_id, id)."""
    after = 0
    async with transaction(engine, readonly=True) as conn:
        while True:
            rows = (
                await conn.execute(
                    SELECT_CUSTOMER.where(customers.c.org_id == org_id, customers.c.id > after)
                    .order_by(customers.c.id)
                    .limit(page)
                )
            ).mappings().all()
            if not rows:
                return
            yield [customer_of(dict(row)) for row in rows]
            after = rows[-1]["id"]
