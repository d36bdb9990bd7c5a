"""Registering a batch of items: each item atomic and independent, resolved again on a race."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from patron.codes import REGISTERED, UPDATED, Code, item_error_message
from patron.orgs.model import OrgSettings
from patron.registration import resolution
from patron.registration.model import IDENTIFIERS, Change, Customer, CustomerInput, ItemRejected, Warnings
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


class CustomerRepository(Protocol):
    async def holders(self, org_id: int, identifiers: dict[str, str]) -> dict[str, Customer]: ...

    async def insert(self, customer: Customer, at: datetime) -> Customer: ...

    async def update(self, customer: Customer, at: datetime) -> None: ...

    async def record_audit(
        self, caller: Caller, customer: Customer, event_type: str, changes: list[Change], at: datetime
    ) -> None: ...


UnitOfWork = Callable[[], AbstractAsyncContextManager[CustomerRepository]]


@dataclass
class ItemResult:
    code: Code
    message: str
    warnings: Warnings
    customer: Customer | None = None
    created: bool = False
    sent: dict[str, Any] = field(default_factory=dict)

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
    async with unit_of_work() as repository:
        holders = await repository.holders(org.org_id, sent)
        target = resolution.resolve(item, holders, org.configs, warnings)
        if target is None:
            customer = await repository.insert(resolution.create(org.org_id, item, caller.till_code, now), now)
            event_type, message, before = "CREATE", REGISTERED, None
        else:
            customer = resolution.update(target, item, holders, org.configs, now, warnings)
            await repository.update(customer, now)
            event_type, message, before = "UPDATE", UPDATED, target
        await repository.record_audit(caller, customer, event_type, resolution.changes(before, customer), now)
    return ItemResult(
        code=Code.ITEM_OK,
        message=warnings.message(message),
        warnings=warnings,
        customer=customer,
        created=before is None,
    )


def _failure(raw: Any, code: Code, matched: Customer | None = None) -> ItemResult:
    sent = {name: raw.get(name) for name in IDENTIFIERS} if isinstance(raw, dict) else {}
    return ItemResult(code=code, message=item_error_message(code), warnings=Warnings(), customer=matched, sent=sent)


def batch_status(results: list[ItemResult]) -> Code:
    """200 when every item succeeded, 201 when some did, 500 when none did."""
    succeeded = sum(result.success for result in results)
    if succeeded == len(results):
        return Code.SUCCESS
    return Code.PARTIAL_SUCCESS if succeeded else Code.ALL_FAILED
