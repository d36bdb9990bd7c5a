"""Changing a customer's identifier (member-care.md §2): requests, the review queue and decisions, audited."""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from patron.codes import IDENTITY_CHANGE_TAKEN, Code, identity_error_message
from patron.customers import fields, resolution
from patron.customers.identity_requests import (
    APPLIED_REASON,
    APPROVED,
    GONE_REASON,
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
    Requester,
    changed_reason,
    decision_reason,
    may_review,
    may_supersede,
    own_request,
    own_road,
    read_change,
    requester_of,
    sent_fields,
    taken_reason,
)
from patron.customers.model import (
    IDENTIFIER_LABELS, IDENTIFIERS, Caller, Customer, IdentifierTaken, ItemRejected, StorageUnavailable,
)
from patron.customers.ports import IdentityStorage, Repositories
from patron.customers.reading import INVALID_IDENTIFIER, stored_identifier
from patron.customers.registration import (
    MAX_ATTEMPTS, emit, request_event, supersede_pending,
)
from patron.events import build
from patron.orgs.model import OrgSettings

log = logging.getLogger("patron.customers")

# The review queue and a customer's requests are read a page at a time.
PAGE = 50


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
            named = _holder_of(change, caller.org)
            outcomes.append(await _request_one(change.identifier, change.new_value, named, caller, storage, now))
        except ItemRejected as rejected:
            outcomes.append(
                _failure(raw, rejected.code, rejected.matched, change.identifier if change else None, rejected.field)
            )
        except StorageUnavailable:
            raise
        except Exception:  # noqa: BLE001 - a fault of Patron's fails this item alone
            log.error("request %s: identity change %d failed", caller.request_id, position + 1, exc_info=True)
            outcomes.append(_failure(raw, Code.ITEM_NOT_PROCESSED))
    return outcomes


async def request_change_of(
    customer_id: int, identifier: str, new_value: Any, caller: Caller, storage: IdentityStorage, now: datetime
) -> IdentityOutcome:
    """The console's request (member-care.md §4): the customer named by id, and the old value read
    from it as it is now, locked; else one item of customer/update_identity. A customer without a
    value of that identifier has nothing to change (1007); no customer of that id, 1012."""
    raw = {"identifier": identifier, "new_value": new_value}
    known = identifier if identifier in IDENTIFIERS else None
    try:
        if known is None:
            raise ItemRejected(Code.NO_VALID_IDENTIFIER)
        if fields.holds_nul(new_value):
            raise ItemRejected(Code.TEXT_WITH_NUL, field="new_value")
        stored = stored_identifier(known, new_value, caller.org)
        if stored is None:
            raise ItemRejected(INVALID_IDENTIFIER[known])
        return await _request_one(known, stored, _by_id(customer_id, known), caller, storage, now)
    except ItemRejected as rejected:
        return _failure(raw, rejected.code, rejected.matched, known, rejected.field)
    except StorageUnavailable:
        raise
    except Exception:  # noqa: BLE001 - a fault of Patron's is answered as an item's
        log.error("request %s: identity change of customer %d failed", caller.request_id, customer_id, exc_info=True)
        return _failure(raw, Code.ITEM_NOT_PROCESSED)


# How a request names its customer: found and locked in the request's unit, with the value to change.
Naming = Callable[[Repositories, int], Awaitable[tuple[Customer, str]]]


def _holder_of(change: IdentityChange, org: OrgSettings) -> Naming:
    """The API's way: the customer holding the old value (by its key: an external id in any case
    where the org matches them ignoring case), and its value as stored."""
    keys = resolution.identifier_keys({change.identifier: change.old_value}, org.configs)

    async def named(unit: Repositories, org_id: int) -> tuple[Customer, str]:
        held = await unit.customers.holders(org_id, keys)
        customer = held.get(change.identifier)
        if customer is None:
            raise ItemRejected(Code.CUSTOMER_NOT_FOUND)
        return customer, customer.identifier(change.identifier) or change.old_value

    return named


def _by_id(customer_id: int, identifier: str) -> Naming:
    """The console's way: the customer of this id, and its value now."""

    async def named(unit: Repositories, org_id: int) -> tuple[Customer, str]:
        customer = await unit.customers.locked(org_id, customer_id)
        if customer is None:
            raise ItemRejected(Code.CUSTOMER_NOT_FOUND)
        old_value = customer.identifier(identifier)
        if old_value is None:
            raise ItemRejected(Code.NO_VALID_IDENTIFIER, customer)
        return customer, old_value

    return named


def requester_of_caller(caller: Caller) -> Requester:
    """Who stands behind a caller's requests: its till, API client or console user, and the
    console users the org file ties to it (the user-context entity id included)."""
    return requester_of(
        caller.org, caller.console_user, caller.api_client_key, caller.till_code, caller.user_context.get("entity_id")
    )


async def _request_one(
    identifier: str, new_value: str, naming: Naming, caller: Caller, storage: IdentityStorage, now: datetime
) -> IdentityOutcome:
    org = caller.org
    requester = requester_of_caller(caller)
    for _ in range(MAX_ATTEMPTS):
        try:
            async with storage.unit_of_work() as unit:
                # The customer is locked first, then its requests: the order of every path here.
                customer, old_value = await naming(unit, org.org_id)
                change = IdentityChange(identifier, old_value, new_value)
                if change.new_value == change.old_value:
                    # Asked to become what it is: nothing to change, nothing to review.
                    return _taken(change, customer, Code.ITEM_OK, updated=True)
                new_key = resolution.identifier_key(change.identifier, change.new_value, org.configs)
                holder = await unit.customers.find(org.org_id, change.identifier, new_key)
                if holder is not None and holder.id != customer.id:
                    raise ItemRejected(Code.IDENTIFIER_OCCUPIED, customer)
                if org.configs.CONF_IDENTITY_CHANGE_APPROVAL:
                    await _admit(unit, org, customer, change.identifier, requester)
                await unit.customers.record_audit(caller, customer, ID_REQUESTED, change.audited(), now)
                if not org.configs.CONF_IDENTITY_CHANGE_APPROVAL:
                    await supersede_pending(unit, caller, customer, change.identifier, APPLIED_REASON, now)
                    await _apply(unit, caller, customer, change.identifier, change.new_value, now)
                    return _taken(change, customer, Code.ITEM_OK, updated=True)
                await supersede_pending(unit, caller, customer, change.identifier, SUPERSEDED_REASON, now)
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
                        requester=requester.key,
                        requester_users=" ".join(requester.users) or None,
                        context_entity_type=caller.user_context.get("entity_type"),
                        context_entity_id=caller.user_context.get("entity_id"),
                        context_entity_source=caller.user_context.get("entity_source"),
                        context_entity_source_id=caller.user_context.get("entity_source_id"),
                    )
                )
                await emit(unit, caller, now, [request_event(customer, request, caller, now)])
                return _taken(change, customer, Code.IDENTITY_CHANGE_REQUESTED, request=request)
        except (IdentifierTaken, PendingRequestRaced):
            # A concurrent unit took the new value, or wrote its own pending request, first:
            # asked again, this item is refused (91007) or supersedes that request.
            continue
    raise RuntimeError(f"an identity change lost {MAX_ATTEMPTS} races in a row")


async def _admit(
    unit: Repositories, org: OrgSettings, customer: Customer, identifier: str, requester: Requester
) -> None:
    """Refuse a request that would wait for review when the customer's pending request for the
    identifier is another caller's (1041: only a caller with identity_review supersedes it), or
    when the caller has CONF_IDENTITY_CHANGE_PENDING_PER_CALLER requests waiting already (1042;
    the request it supersedes does not count). Read under the customer's lock, before anything
    of the item is written. Two requests of one caller for different customers at the same moment
    may each take the last place: on PostgreSQL the cap holds to within the caller's requests in
    flight, on SQLite (one writer) exactly."""
    earlier = await unit.identity_requests.pending_of(org.org_id, customer.id, identifier)
    if earlier is not None and not may_supersede(earlier, requester):
        raise ItemRejected(Code.PENDING_REQUEST_OF_ANOTHER_CALLER, customer)
    waiting = await unit.identity_requests.count_pending_of(org.org_id, requester.key)
    if earlier is not None and earlier.asked_by == requester.key:
        waiting -= 1
    if waiting >= org.configs.CONF_IDENTITY_CHANGE_PENDING_PER_CALLER:
        raise ItemRejected(Code.TOO_MANY_PENDING_REQUESTS, customer)


async def _apply(
    unit: Repositories, caller: Caller, customer: Customer, identifier: str, new_value: str, now: datetime
) -> Customer:
    """The customer with the new value, written and audited as an UPDATE; raises IdentifierTaken
    when another customer holds the value by then (the unique index's word, whatever the race)."""
    changed = dataclasses.replace(customer, updated_on=now)
    setattr(changed, identifier, new_value)
    resolution.keyed(changed, caller.org.configs)
    await unit.customers.update(changed, now)
    changes = resolution.changes(customer, changed, caller.org.tz)
    await unit.customers.record_audit(caller, changed, "UPDATE", changes, now)
    await emit(unit, caller, now, [build.customer_updated(changed, changes, caller.writer(now))])
    return changed


def _taken(
    change: IdentityChange, customer: Customer, code: Code, *, updated: bool = False, request: IdentityRequest | None = None
) -> IdentityOutcome:
    return IdentityOutcome(
        code, IDENTITY_CHANGE_TAKEN, change.identifier, change.old_value, change.new_value, updated, customer.id, request
    )


def _failure(
    raw: Any, code: Code, matched: Customer | None = None, identifier: str | None = None, named: str | None = None
) -> IdentityOutcome:
    """`named`: the item's field the error is about, when it names one; else the identifier's label."""
    sent = sent_fields(raw)
    field = named or (IDENTIFIER_LABELS[identifier] if identifier else "Identifier")
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
    """A reviewer approves or rejects a PENDING request, with a reason; a request is never approved
    by the person behind it, whatever road they asked by (four eyes: identity.own_road). An
    approval is checked again and applied at once; when the customer's value is no longer the one
    the request replaces, or the new value is held by another customer by then (found, or refused
    by the unique index to the later of two racing approvals), the request is REJECTED with that
    reason instead. Each unit locks the customer before it settles the request, as every other
    path does. `trace_id`: the request id the audit records carry (the console's)."""
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
                request, customer = await _request_and_customer(unit, org, request_id)
                road = own_road(org, request, reviewer_login)
                if road is not None:
                    raise DecisionRefused(own_request(request_id, reviewer_login, road))
                if customer is None:
                    return await _reject(unit, org, request, customer, reviewer, GONE_REASON, now)
                refusal = await _refusal(unit, org, request, customer)
                if refusal is not None:
                    return await _reject(unit, org, request, customer, reviewer, refusal, now)
                decided = await _settle(unit, org, request, APPROVED, reviewer, why, now)
                await unit.customers.record_audit(reviewer, customer, ID_APPROVED, _audited(decided), now)
                await emit(unit, reviewer, now, [request_event(customer, decided, reviewer, now)])
                await _apply(unit, reviewer, customer, request.identifier, request.new_value, now)
                return Decision(decided, applied=True)
        except IdentifierTaken:
            # A concurrent write took the new value first (the unique index's word): the unit
            # rolled back, and the request, still PENDING, is rejected with that reason.
            why = taken_reason(request.identifier)
    async with storage.unit_of_work() as unit:
        request, customer = await _request_and_customer(unit, org, request_id)
        return await _reject(unit, org, request, customer, reviewer, why, now)


async def _request_and_customer(
    unit: Repositories, org: OrgSettings, request_id: int
) -> tuple[IdentityRequest, Customer | None]:
    """The PENDING request (read, not locked) and its customer, locked: the customer before the
    request row, which only _settle's write locks."""
    request = await _pending_request(unit, org, request_id)
    return request, await unit.customers.locked(org.org_id, request.customer_id)


async def _refusal(unit: Repositories, org: OrgSettings, request: IdentityRequest, customer: Customer) -> str | None:
    """Why an approval cannot apply now, or None: the customer's value is no longer the one the
    request replaces (an approval never overwrites a value it did not see), or the new value is
    another customer's."""
    current = customer.identifier(request.identifier)
    if current != request.old_value:
        return changed_reason(request.identifier, current)
    new_key = resolution.identifier_key(request.identifier, request.new_value, org.configs)
    holder = await unit.customers.find(org.org_id, request.identifier, new_key)
    if holder is not None and holder.id != customer.id:
        return taken_reason(request.identifier)
    return None


async def _reject(
    unit: Repositories, org: OrgSettings, request: IdentityRequest, customer: Customer | None, reviewer: Caller,
    why: str, now: datetime,
) -> Decision:
    reviewer = dataclasses.replace(reviewer, reason=why)
    decided = await _settle(unit, org, request, REJECTED, reviewer, why, now)
    if customer is not None:
        await unit.customers.record_audit(reviewer, customer, ID_REJECTED, _audited(decided), now)
        await emit(unit, reviewer, now, [request_event(customer, decided, reviewer, now)])
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


async def pending(org_id: int, storage: IdentityStorage, limit: int = PAGE, offset: int = 0) -> list[IdentityRequest]:
    """The org's PENDING requests, oldest first, a page at a time: the review queue."""
    async with storage.unit_of_work(readonly=True) as unit:
        return await unit.identity_requests.pending(org_id, limit, offset)


async def pending_count(org_id: int, storage: IdentityStorage) -> int:
    async with storage.unit_of_work(readonly=True) as unit:
        return await unit.identity_requests.count_pending(org_id)


async def requests_of(org_id: int, customer_id: int, storage: IdentityStorage, limit: int = PAGE) -> list[IdentityRequest]:
    """A customer's requests, whatever their status, newest first."""
    async with storage.unit_of_work(readonly=True) as unit:
        return await unit.identity_requests.of_customer(org_id, customer_id, limit)
