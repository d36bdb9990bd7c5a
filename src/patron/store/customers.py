"""Customers and their audit trail: every query scoped by org_id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from patron.registration.model import Change, Customer
from patron.registration.service import Caller, IdentifierTaken
from patron.store.db import is_sqlite
from patron.store.schema import customer_audits, customers

_CUSTOMER_COLUMNS = [column.name for column in customers.columns if column.name not in ("created_at", "modified_at")]
_SELECT_CUSTOMER = select(*(customers.c[name] for name in _CUSTOMER_COLUMNS))


def _customer(row: Any) -> Customer:
    return Customer(**{name: getattr(row, name) for name in _CUSTOMER_COLUMNS})


def _values(customer: Customer) -> dict[str, Any]:
    return {name: getattr(customer, name) for name in _CUSTOMER_COLUMNS if name not in ("org_id", "id")}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value


class CustomerStore:
    """The customers of the orgs, read and written inside one transaction (`conn`)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def holders(self, org_id: int, identifiers: dict[str, str]) -> dict[str, Customer]:
        if not identifiers:
            return {}
        matches = or_(*(customers.c[name] == value for name, value in identifiers.items()))
        rows = await self.conn.execute(_SELECT_CUSTOMER.where(customers.c.org_id == org_id, matches))
        found = [_customer(row) for row in rows]
        return {
            name: customer
            for name, value in identifiers.items()
            for customer in found
            if customer.identifier(name) == value
        }

    async def insert(self, customer: Customer, at: datetime) -> Customer:
        values = {"org_id": customer.org_id, **_values(customer), "created_at": at, "modified_at": at}
        if is_sqlite(self.conn):
            # SQLite has no sequence; the write lock taken at BEGIN makes max()+1 safe.
            next_id = await self.conn.scalar(select(func.coalesce(func.max(customers.c.id), 100000) + 1))
            values["id"] = next_id
        try:
            new_id = await self.conn.scalar(insert(customers).values(**values).returning(customers.c.id))
        except IntegrityError as exc:
            raise IdentifierTaken(str(exc.orig)) from exc
        customer.id = new_id
        return customer

    async def update(self, customer: Customer, at: datetime) -> None:
        statement = (
            update(customers)
            .where(customers.c.org_id == customer.org_id, customers.c.id == customer.id)
            .values(**_values(customer), modified_at=at)
        )
        try:
            await self.conn.execute(statement)
        except IntegrityError as exc:
            raise IdentifierTaken(str(exc.orig)) from exc

    async def record_audit(
        self, caller: Caller, customer: Customer, event_type: str, changes: list[Change], at: datetime
    ) -> None:
        values: dict[str, Any] = {
            "org_id": customer.org_id,
            "customer_id": customer.id,
            "request_id": caller.request_id,
            "created_at": at,
            "event_type": event_type,
            "till_code": caller.till_code,
            "api_client_key": caller.api_client_key,
            "context_entity_type": caller.user_context.get("entity_type"),
            "context_entity_id": caller.user_context.get("entity_id"),
            "context_entity_source": caller.user_context.get("entity_source"),
            "context_entity_source_id": caller.user_context.get("entity_source_id"),
            "changes": [
                {"field": c.field, "previous": _jsonable(c.previous), "current": _jsonable(c.current)} for c in changes
            ],
        }
        if is_sqlite(self.conn):
            values["id"] = await self.conn.scalar(select(func.coalesce(func.max(customer_audits.c.id), 0) + 1))
        await self.conn.execute(insert(customer_audits).values(**values))

    async def find(self, org_id: int, field: str, value: str | int) -> Customer | None:
        row = (
            await self.conn.execute(_SELECT_CUSTOMER.where(customers.c.org_id == org_id, customers.c[field] == value))
        ).first()
        return _customer(row) if row else None

    async def audits(self, org_id: int, customer_id: int, limit: int = 100) -> list[dict[str, Any]]:
        rows = await self.conn.execute(
            select(customer_audits)
            .where(customer_audits.c.org_id == org_id, customer_audits.c.customer_id == customer_id)
            .order_by(customer_audits.c.id.desc())
            .limit(limit)
        )
        return [dict(row._mapping) for row in rows]
