"""A customer's audit trail (the gateway's audits API): each record as written, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from patron.customers.ports import AuditStorage

# What a record is of: a customer written, or an identity change request asked for or settled.
EventType = Literal["CREATE", "UPDATE", "ID_REQUESTED", "ID_APPROVED", "ID_REJECTED", "ID_SUPERSEDED"]

# The user-context headers of the request that wrote a record, by the audit's names for them.
USER_CONTEXT = ("entity_type", "entity_id", "entity_source", "entity_source_id")


@dataclass(frozen=True)
class AuditRecord:
    request_id: str
    customer_id: int
    created_at: datetime
    event_type: EventType
    till_code: str | None
    api_client_key: str | None
    user_context: dict[str, str | None]
    # [{"field", "previous", "current"}, ...], times as the API wrote them when the record was made.
    changes: list[dict[str, Any]]
    # The warning codes the item was answered with.
    warnings: tuple[int, ...] = ()
    # A member-care user who acted in the console, and why.
    console_user: str | None = None
    reason: str | None = None


async def audit_trail(org_id: int, customer_id: int, storage: AuditStorage) -> list[AuditRecord]:
    """The customer's records, newest first (none for a customer of another org, or no one)."""
    async with storage.unit_of_work(readonly=True) as unit:
        rows = await unit.customers.audits(org_id, customer_id)
    return [
        AuditRecord(
            request_id=row["request_id"],
            customer_id=row["customer_id"],
            created_at=row["created_at"],
            event_type=row["event_type"],
            till_code=row["till_code"],
            api_client_key=row["api_client_key"],
            user_context={key: row[f"context_{key}"] for key in USER_CONTEXT},
            changes=row["changes"],
            warnings=tuple(row["warnings"] or ()),
            console_user=row["console_user"],
            reason=row["reason"],
        )
        for row in rows
    ]
