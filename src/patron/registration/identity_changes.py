"""Changing a customer's identifier (member-care.md §2): requests, the review queue and decisions, audited."""

from __future__ import annotations

import dataclasses
import logging
import secrets
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from patron.codes import IDENTITY_CHANGE_TAKEN, Code, identity_error_message
from patron.orgs.model import OrgSettings
from patron.registration import resolution
from patron.registration.identity import (
    APPROVED,
    ID_APPROVED,
    ID_REJECTED,
    ID_REQUESTED,
    PENDING,
    REJECTED,
    SUPERSEDED_REASON,
    DecisionRefused,
    IdentityChange,
    IdentityRequest,
    PendingRequestRaced,
    decision_reason,
    may_review,
    read_change,
    sent_fields,
    taken_reason,
)
from patron.registration.model import IDENTIFIER_LABELS, Customer, ItemRejected, StorageUnavailable
from patron.registration.service import MAX_ATTEMPTS, Caller, IdentifierTaken, Repositories

log = logging.getLogger("patron.registration")

# The review queue and a customer's requests are read a page at a time.
PAGE = 50


class IdentityStorage(Protocol):
    def unit_of_work(self, *, readonly: bool = False) -> AbstractAsyncContextManager[Repositories]: ...


@dataclass(frozen=True)
class IdentityOutcome:
    """One item's outcome: 1040 (waiting for review), 1000 (applied at once), or an item error."""

    code: Code
    message: str
    # The fields as read (a success) or as sent (a failure).
    identifier: str | None
    old_value: str | None
    new_value: str | None
    updated: bool = False
    customer_id: int | None = None
    request: IdentityRequest | None = None

    @property
    def success(self) -> bool:
        return self.code in (Code.ITEM_OK, Code.IDENTITY_CHANGE_REQUESTED)


@dataclass(frozen=True)
class Decision:
    """A request as decided: APPROVED (and applied) or REJECTED, the taken value's rejection included."""

    request: IdentityRequest
    applied: bool


async def request_changes(
    raw_items: list[Any], caller: Caller, storage: IdentityStorage, now: datetime, *, batch_limit: int | None = None
) -> list[IdentityOutcome]:
    """Each item independent and atomic, in order: the change applied at once when the org wants
    no review (CONF_IDENTITY_CHANGE_APPROVAL false), else a PENDING request superseding the
    customer's earlier one for that identifier."""
    limit = batch_limit or caller.org.configs.BATCH_LIMIT
    outcomes = []
    for position, raw in enumerate(raw_items):
        change: IdentityChange | None = None
        try:
            if position >= limit:
                raise ItemRejected(Code.BATCH_LIMIT_EXCEEDED)
            change = read_change(raw, caller.org)
            outcomes.append(await _request_one(change, caller, storage, now))
        except ItemRejected as rejected:
            outcomes.append(_failure(raw, rejected.code, rejected.matched, change))
        except StorageUnavailable:
            raise
        except Exception:  # noqa: BLE001 - a fault of Patron's fails this item alone
            log.error("request %s: identity change %d failed", caller.request_id, position + 1, exc_info=True)
            outcomes.append(_failure(raw, Code.ITEM_NOT_PROCESSED))
    return outcomes


async def _request_one(change: IdentityChange, caller: Caller, storage: IdentityStorage, now: datetime) -> IdentityOutcome:
    org = caller.org
    for _ in range(MAX_ATTEMPTS):
        try:
            async with storage.unit_of_work() as unit:
                held = await unit.customers.holders(org.org_id, {change.identifier: change.old_value})
                customer = held.get(change.identifier)
                if customer is None:
                    raise ItemRejected(Code.CUSTOMER_NOT_FOUND)
                if change.new_value == change.old_value:
                    # Asked to become what it is: nothing to change, nothing to review.
                    return _taken(change, customer, Code.ITEM_OK, updated=True)
                holder = await unit.customers.find(org.org_id, change.identifier, change.new_value)
                if holder is not None and holder.id != customer.id:
                    raise ItemRejected(Code.IDENTIFIER_OCCUPIED, customer)
                await unit.customers.record_audit(caller, customer, ID_REQUESTED, change.audited(), now)
                if not org.configs.CONF_IDENTITY_CHANGE_APPROVAL:
                    await _apply(unit, caller, customer, change.identifier, change.new_value, now)
                    return _taken(change, customer, Code.ITEM_OK, updated=True)
                await unit.identity_requests.supersede(org.org_id, customer.id, change.identifier, now, SUPERSEDED_REASON)
                request = await unit.identity_requests.insert(
                    IdentityRequest(
                        org_id=org.org_id,
                        id=None,
                        customer_id=customer.id,
                        identifier=change.identifier,
                        old_value=change.old_value,
                        new_value=change.new_value,
                        status=PENDING,
                        requested_at=now,
                        request_id=caller.request_id,
                        till_code=caller.till_code,
                        api_client_key=caller.api_client_key,
                        console_user=caller.console_user,
                        reason=caller.reason,
                    )
                )
                return _taken(change, customer, Code.IDENTITY_CHANGE_REQUESTED, request=request)
        except (IdentifierTaken, PendingRequestRaced):
            # A concurrent unit took the new value, or wrote its own pending request, first:
            # asked again, this item is refused (91007) or supersedes that request.
            continue
    raise RuntimeError(f"an identity change lost {MAX_ATTEMPTS} races in a row")


async def _apply(
    unit: Repositories, caller: Caller, customer: Customer, identifier: str, new_value: str, now: datetime
) -> Customer:
    """The customer with the new value, written and audited as an UPDATE; raises IdentifierTaken
    when another customer holds the value by then (the unique index's word, whatever the race)."""
    changed = dataclasses.replace(customer, updated_on=now)
    setattr(changed, identifier, new_value)
    await unit.customers.update(changed, now)
    await unit.customers.record_audit(caller, changed, "UPDATE", resolution.changes(customer, changed, caller.org.tz), now)
    return changed


def _taken(
    change: IdentityChange, customer: Customer, code: Code, *, updated: bool = False, request: IdentityRequest | None = None
) -> IdentityOutcome:
    return IdentityOutcome(
        code, IDENTITY_CHANGE_TAKEN, change.identifier, change.old_value, change.new_value, updated, customer.id, request
    )


def _failure(
    raw: Any, code: Code, matched: Customer | None = None, change: IdentityChange | None = None
) -> IdentityOutcome:
    sent = sent_fields(raw)
    field = IDENTIFIER_LABELS[change.identifier] if change else "Identifier"
    return IdentityOutcome(
        code, identity_error_message(code, field), sent["identifier"], sent["old_value"], sent["new_value"],
        customer_id=matched.id if matched else None,
    )


async def decide(
    org: OrgSettings,
    request_id: int,
    approve: bool,
    reviewer_login: str,
    reason: str,
    storage: IdentityStorage,
    now: datetime,
    *,
    trace_id: str | None = None,
) -> Decision:
    """A reviewer approves or rejects a PENDING request, with a reason. An approval is checked
    again and applied at once; when the new value is held by another customer by then (found, or
    refused by the unique index to the later of two racing approvals), the request is REJECTED
    with that reason instead. `trace_id`: the request id the audit records carry (the console's)."""
    try:
        why = decision_reason(reason)
    except ValueError as refused:
        raise DecisionRefused(str(refused)) from refused
    if not may_review(org, reviewer_login):
        raise DecisionRefused(f"{reviewer_login} may not review identity changes (identity_review)")
    reviewer = Caller(
        org=org, till_code=None, api_client_key=None, request_id=trace_id or secrets.token_hex(16),
        console_user=reviewer_login, reason=why,
    )
    if approve:
        try:
            async with storage.unit_of_work() as unit:
                request = await _pending_request(unit, org, request_id)
                customer = await unit.customers.locked(org.org_id, request.customer_id)
                holder = await unit.customers.find(org.org_id, request.identifier, request.new_value)
                if customer is not None and (holder is None or holder.id == customer.id):
                    decided = await _settle(unit, org, request, APPROVED, reviewer, why, now)
                    await unit.customers.record_audit(reviewer, customer, ID_APPROVED, _audited(decided), now)
                    await _apply(unit, reviewer, customer, request.identifier, request.new_value, now)
                    return Decision(decided, applied=True)
        except IdentifierTaken:
            pass  # the unit rolled back; the request is still PENDING, and is rejected below
        approve = False
        why = taken_reason(request.identifier)
        reviewer = dataclasses.replace(reviewer, reason=why)
    async with storage.unit_of_work() as unit:
        request = await _pending_request(unit, org, request_id)
        decided = await _settle(unit, org, request, REJECTED, reviewer, why, now)
        customer = await unit.customers.locked(org.org_id, request.customer_id)
        if customer is not None:
            await unit.customers.record_audit(reviewer, customer, ID_REJECTED, _audited(decided), now)
        return Decision(decided, applied=False)


async def _pending_request(unit: Repositories, org: OrgSettings, request_id: int) -> IdentityRequest:
    request = await unit.identity_requests.get(org.org_id, request_id)
    if request is None:
        raise DecisionRefused(f"no identity change request {request_id}")
    if request.status != PENDING:
        raise DecisionRefused(f"request {request_id} is {request.status}, not PENDING")
    return request


async def _settle(
    unit: Repositories, org: OrgSettings, request: IdentityRequest, status: str, reviewer: Caller, why: str,
    now: datetime,
) -> IdentityRequest:
    assert request.id is not None
    decided = await unit.identity_requests.decide(org.org_id, request.id, status, now, reviewer.console_user or "", why)
    if decided is None:
        # Decided by another reviewer between the read and this write.
        raise DecisionRefused(f"request {request.id} was decided meanwhile")
    return decided


def _audited(request: IdentityRequest) -> list[Any]:
    return [{"field": request.identifier, "previous": request.old_value, "current": request.new_value}]


async def pending(
    org_id: int, storage: IdentityStorage, customer_id: int | None = None, limit: int = PAGE, offset: int = 0
) -> list[IdentityRequest]:
    """The org's PENDING requests, oldest first (one customer's, when given): the review queue."""
    async with storage.unit_of_work(readonly=True) as unit:
        return await unit.identity_requests.pending(org_id, customer_id, limit, offset)


async def pending_count(org_id: int, storage: IdentityStorage) -> int:
    async with storage.unit_of_work(readonly=True) as unit:
        return await unit.identity_requests.count_pending(org_id)


async def requests_of(org_id: int, customer_id: int, storage: IdentityStorage, limit: int = PAGE) -> list[IdentityRequest]:
    """A customer's requests, whatever their status, newest first."""
    async with storage.unit_of_work(readonly=True) as unit:
        return await unit.identity_requests.of_customer(org_id, customer_id, limit)
