"""An org's external ids read and re-keyed as a whole: when `patron org apply` changes how the org matches them, and for `patron check`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from patron.store.schema import customers

# Customers read at once, and keys written in one statement.
_PAGE = 10_000
_WRITE = 1_000

_REKEY = (
    update(customers)
    .where(customers.c.org_id == bindparam("key_org_id"), customers.c.id == bindparam("key_id"))
    .values(external_id_key=bindparam("new_key"), external_id_skeleton=bindparam("new_skeleton"))
)


class ExternalIdStore:
    """Every query scoped by org_id; each page is one statement, in the caller's transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def held(self, org_id: int, *, all_of_them: bool = True) -> AsyncIterator[tuple[int, str, str | None]]:
        """(customer id, external id, key) of each customer of the org with an external id, a page
        at a time; not `all_of_them`: only those whose key is not the external id itself."""
        external_id, key = customers.c.external_id, customers.c.external_id_key
        which = [customers.c.org_id == org_id, external_id.is_not(None)]
        if not all_of_them:
            which.append(or_(key.is_(None), key != external_id))
        after = 0
        while True:
            rows = (
                await self.conn.execute(
                    select(customers.c.id, external_id, key)
                    .where(*which, customers.c.id > after)
                    .order_by(customers.c.id)
                    .limit(_PAGE)
                )
            ).all()
            for row in rows:
                yield row.id, row.external_id, row.external_id_key
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    async def rekey(self, org_id: int, changed: list[tuple[int, str, str | None]]) -> None:
        """Write new keys and skeletons (customer id, key, skeleton)."""
        for start in range(0, len(changed), _WRITE):
            await self.conn.execute(
                _REKEY,
                [
                    {"key_org_id": org_id, "key_id": customer_id, "new_key": key, "new_skeleton": skeleton}
                    for customer_id, key, skeleton in changed[start : start + _WRITE]
                ],
            )

    async def shared_skeletons(self, org_id: int) -> list[Any]:
        """(customer id, external id, key, skeleton) of the customers whose external id's skeleton
        another customer's shares, by skeleton and id: the candidates of the look-alike rule."""
        skeleton = customers.c.external_id_skeleton
        repeated = (
            select(skeleton)
            .where(customers.c.org_id == org_id, skeleton.is_not(None))
            .group_by(skeleton)
            .having(func.count() > 1)
        )
        statement = (
            select(customers.c.id, customers.c.external_id, customers.c.external_id_key, skeleton)
            .where(customers.c.org_id == org_id, skeleton.is_not(None), skeleton.in_(repeated))
            .order_by(skeleton, customers.c.id)
        )
        return list(await self.conn.execute(statement))
