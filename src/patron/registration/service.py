"""Registering a batch of items: each item atomic and independent, resolved again on a race."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from patron.codes import REGISTERED, UPDATED, Code, item_error_message
from patron.loyalty import rules
from patron.loyalty.model import POINTS, LedgerEntry, Membership, SideEffect
from patron.orgs.model import OrgSettings
from patron.registration import fields, resolution
from patron.registration.model import (
    IDENTIFIERS,
    LOYALTY,
    NON_LOYALTY,
    Change,
    Customer,
    CustomerInput,
    ItemRejected,
    Warnings,
)
from patron.registration.reading import read_item

# A lost race is resolved again as if the item had arrived second; a second loss in a row
# would need a third writer on the same identifiers, so a few attempts are plenty.
MAX_ATTEMPTS = 5


class IdentifierTaken(Exception):
    """A unique identifier was written by a concurrent request first."""


@dataclass(frozen=True)
class Caller:
    """Who is registering: the org, the till (and API client) and the user-context headers."""

    org: OrgSettings
    till_code: str
    api_client_key: str | None
    request_id: str
    user_context: dict[str, str | None] = field(default_factory=dict)
    # mlp_single_enroll=true: a new member joins every programme, not only the default one.
    all_programmes: bool = False


class CustomerRepository(Protocol):
    async def holders(self, org_id: int, identifiers: dict[str, str]) -> dict[str, Customer]: ...

    async def find(self, org_id: int, field: str, value: str | int) -> Customer | None: ...

    async def insert(self, customer: Customer, at: datetime) -> Customer: ...

    async def update(self, customer: Customer, at: datetime) -> None: ...

    async def record_audit(
        self, caller: Caller, customer: Customer, event_type: str, changes: list[Change], at: datetime
    ) -> None: ...


class LoyaltyRepository(Protocol):
    async def memberships(self, org_id: int, customer_id: int) -> list[Membership]: ...

    async def join(self, joined: list[Membership], at: datetime) -> None: ...

    async def append(self, entries: list[LedgerEntry], request_id: str, at: datetime) -> None: ...

    async def credit(self, org_id: int, customer_id: int, program_id: int, points: int) -> None: ...

    async def record_referral(self, org_id: int, referee_id: int, referrer_id: int, at: datetime) -> bool: ...


class Repositories(Protocol):
    customers: CustomerRepository
    loyalty: LoyaltyRepository


UnitOfWork = Callable[[], AbstractAsyncContextManager[Repositories]]


@dataclass
class ItemResult:
    code: Code
    message: str
    warnings: Warnings
    customer: Customer | None = None
    created: bool = False
    sent: dict[str, Any] = field(default_factory=dict)
    memberships: list[Membership] = field(default_factory=list)
    side_effects: list[SideEffect] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return self.code == Code.ITEM_OK


async def register(raw_items: list[Any], caller: Caller, unit_of_work: UnitOfWork, now: datetime) -> list[ItemResult]:
    """Process items in order; a later item sees what an earlier one wrote."""
    limit = caller.org.configs.BATCH_LIMIT
    results = []
    for position, raw in enumerate(raw_items):
        if position >= limit:
            results.append(_failure(raw, Code.BATCH_LIMIT_EXCEEDED))
            continue
        results.append(await register_one(raw, caller, unit_of_work, now))
    return results


async def register_one(raw: Any, caller: Caller, unit_of_work: UnitOfWork, now: datetime) -> ItemResult:
    try:
        item, warnings = read_item(raw, caller.org, caller.till_code, now)
    except ItemRejected as rejected:
        return _failure(raw, rejected.code)
    for _ in range(MAX_ATTEMPTS):
        try:
            return await _write(item, dataclasses.replace(warnings, items=list(warnings.items)), caller, unit_of_work, now)
        except IdentifierTaken:
            continue
        except ItemRejected as rejected:
            return _failure(raw, rejected.code, rejected.matched)
    raise RuntimeError("identity resolution kept losing races; giving up on this item")


async def _write(item: CustomerInput, warnings: Warnings, caller: Caller, unit_of_work: UnitOfWork, now: datetime) -> ItemResult:
    org = caller.org
    item = dataclasses.replace(item)
    sent = {name: item.identifier(name) for name in IDENTIFIERS if item.identifier(name) is not None}
    async with unit_of_work() as repositories:
        customers, loyalty = repositories.customers, repositories.loyalty
        holders = await customers.holders(org.org_id, sent)
        target = resolution.resolve(item, holders, org.configs, warnings)
        if target is None:
            customer = resolution.create(org.org_id, item, caller.till_code, now)
            joins = customer.type == LOYALTY
            if joins:
                customer.referral_code = rules.new_referral_code()
            customer = await customers.insert(customer, now)
            event_type, message = "CREATE", REGISTERED
        else:
            customer = resolution.update(target, item, holders, org.configs, now, warnings)
            joins = target.type == NON_LOYALTY and customer.type == LOYALTY
            if joins:
                customer.referral_code = rules.new_referral_code()
            await customers.update(customer, now)
            event_type, message = "UPDATE", UPDATED
        await customers.record_audit(caller, customer, event_type, resolution.changes(target, customer), now)
        if joins:
            joined_on = fields.local_date(customer.registered_on if target is None else now, org.tz)
            memberships, effects = await _join(repositories, caller, customer, item, joined_on, now, warnings)
        else:
            memberships, effects = await loyalty.memberships(org.org_id, customer.id), []
    return ItemResult(
        code=Code.ITEM_OK,
        message=warnings.message(message),
        warnings=warnings,
        customer=customer,
        created=target is None,
        memberships=memberships,
        side_effects=effects,
    )


async def _join(
    repositories: Repositories,
    caller: Caller,
    customer: Customer,
    item: CustomerInput,
    joined_on: date,
    now: datetime,
    warnings: Warnings,
) -> tuple[list[Membership], list[SideEffect]]:
    """Enrol a new LOYALTY member and run the registration rules, in the registration's transaction."""
    org = caller.org
    memberships = rules.enrol(org.definition, org.org_id, customer.id, joined_on, caller.all_programmes)
    referrer_memberships = None
    if item.referral_code is not None:
        referrer = await repositories.customers.find(org.org_id, "referral_code", item.referral_code)
        if referrer is None or referrer.id == customer.id:
            warnings.add(Code.REFERRER_NOT_FOUND)
        elif await repositories.loyalty.record_referral(org.org_id, customer.id, referrer.id, now):
            referrer_memberships = await repositories.loyalty.memberships(org.org_id, referrer.id)
    entries, effects, unpaid = rules.registration_rewards(org.definition, memberships, referrer_memberships)
    if unpaid:
        warnings.add(Code.POINTS_NOT_AWARDED)
    rules.credit(memberships, entries)
    await repositories.loyalty.join(memberships, now)
    await repositories.loyalty.append(entries, caller.request_id, now)
    for entry in entries:
        if entry.customer_id != customer.id and entry.currency == POINTS:
            await repositories.loyalty.credit(org.org_id, entry.customer_id, entry.program_id, entry.amount)
    return memberships, effects


def _failure(raw: Any, code: Code, matched: Customer | None = None) -> ItemResult:
    sent = {name: raw.get(name) for name in IDENTIFIERS} if isinstance(raw, dict) else {}
    return ItemResult(code=code, message=item_error_message(code), warnings=Warnings(), customer=matched, sent=sent)


def batch_status(results: list[ItemResult]) -> Code:
    """200 when every item succeeded, 201 when some did, 500 when none did."""
    succeeded = sum(result.success for result in results)
    if succeeded == len(results):
        return Code.SUCCESS
    return Code.PARTIAL_SUCCESS if succeeded else Code.ALL_FAILED
