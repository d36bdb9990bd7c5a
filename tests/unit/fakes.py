"""An in-memory Storage with the database's guarantees, for the rules of registration in milliseconds.

It keeps what the stores keep (customers, audit records, memberships, ledger, referrals) and what
the schema enforces: one customer per identifier value per org (a unique index), and units of work
that are all or nothing and run one at a time (the writer's turn, or a transaction holding locks).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from patron.codes import Code
from patron.customers.identity_requests import PENDING, SUPERSEDED, IdentityRequest, PendingRequestRaced
from patron.customers.model import IDENTIFIERS, Caller, Change, Customer, CustomerFields, IdentifierTaken, LookAlike, NewCustomer
from patron.customers.registration import ItemResult, register
from patron.events.model import Event, Written
from patron.loyalty.model import LedgerEntry, Membership

UNIQUE = (*IDENTIFIERS, "referral_code")


@dataclass
class Tables:
    customers: dict[int, Customer] = field(default_factory=dict)
    audits: list[dict[str, Any]] = field(default_factory=list)
    memberships: dict[tuple[int, int], Membership] = field(default_factory=dict)
    ledger: list[LedgerEntry] = field(default_factory=list)
    referrals: dict[int, int] = field(default_factory=dict)
    identity_requests: list[IdentityRequest] = field(default_factory=list)
    # The outbox: (customer id, sequence, event, who wrote it), in the order written.
    events: list[tuple[int, int, Event, Written]] = field(default_factory=list)
    next_id: int = 100001


class FakeCustomers:
    def __init__(self, tables: Tables) -> None:
        self.tables = tables

    def _holding(self, org_id: int, name: str, value: Any) -> Customer | None:
        """The customer holding a value, as the unique indexes compare it (an external id by its key)."""
        return next(
            (c for c in self.tables.customers.values() if c.org_id == org_id and c.key(name) == value), None
        )

    def _check_unique(self, customer: Customer) -> None:
        for name in UNIQUE:
            value = customer.key(name)
            holder = self._holding(customer.org_id, name, value) if value is not None else None
            if holder is not None and holder.id != customer.id:
                raise IdentifierTaken(f"{name} {value} is held by customer {holder.id}")

    async def holders(self, org_id: int, identifiers: dict[str, str]) -> dict[str, Customer]:
        found = {name: self._holding(org_id, name, value) for name, value in identifiers.items()}
        return {name: copy.deepcopy(customer) for name, customer in found.items() if customer is not None}

    async def find(self, org_id: int, field: str, value: str | int) -> Customer | None:
        customer = self._holding(org_id, field, value)
        return copy.deepcopy(customer) if customer else None

    async def locked(self, org_id: int, customer_id: int) -> Customer | None:
        return await self.find(org_id, "id", customer_id)

    async def look_alikes(self, org_id: int, skeletons: list[str]) -> list[LookAlike]:
        return [
            LookAlike(c.id, c.external_id_key, c.external_id_skeleton)
            for c in self.tables.customers.values()
            if c.org_id == org_id and c.external_id_skeleton is not None and c.external_id_skeleton in skeletons
        ]

    async def insert(self, customer: CustomerFields, at: datetime) -> Customer:
        stored = customer.stored(self.tables.next_id)
        self._check_unique(stored)
        self.tables.next_id += 1
        self.tables.customers[stored.id] = copy.deepcopy(stored)
        return stored

    async def update(self, customer: Customer, at: datetime) -> None:
        self._check_unique(customer)
        self.tables.customers[customer.id] = copy.deepcopy(customer)

    async def record_audit(
        self, caller: Caller, customer: Customer, event_type: str, changes: list[Change], at: datetime,
        warnings: Sequence[Code] = (),
    ) -> None:
        self.tables.audits.append(
            {"customer_id": customer.id, "event_type": event_type, "changes": changes, "warnings": list(warnings),
             "till_code": caller.till_code, "console_user": caller.console_user, "reason": caller.reason}
        )


class FakeLoyalty:
    def __init__(self, tables: Tables) -> None:
        self.tables = tables

    async def memberships(self, org_id: int, customer_id: int) -> list[Membership]:
        return [copy.copy(m) for (cid, _), m in sorted(self.tables.memberships.items()) if cid == customer_id]

    async def join(self, joined: list[Membership], at: datetime) -> None:
        for membership in joined:
            self.tables.memberships[(membership.customer_id, membership.program_id)] = copy.copy(membership)

    async def append(self, entries: list[LedgerEntry], request_id: str, at: datetime) -> None:
        self.tables.ledger.extend(entries)

    async def credit(self, org_id: int, customer_id: int, program_id: int, points: int) -> int | None:
        membership = self.tables.memberships[(customer_id, program_id)]
        membership.lifetime_points += points
        membership.loyalty_points += points
        return membership.loyalty_points

    async def record_referral(self, org_id: int, referee_id: int, referrer_id: int, at: datetime) -> bool:
        if referee_id in self.tables.referrals:
            return False
        self.tables.referrals[referee_id] = referrer_id
        return True


class FakeIdentityRequests:
    """identity_change_requests, with its partial unique index: one PENDING per customer and identifier."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables

    def _of(self, org_id: int) -> list[IdentityRequest]:
        return [r for r in self.tables.identity_requests if r.org_id == org_id]

    def _replace(self, old: IdentityRequest, new: IdentityRequest) -> None:
        self.tables.identity_requests[self.tables.identity_requests.index(old)] = new

    async def supersede(
        self, org_id: int, customer_id: int, identifier: str, at: datetime, reason: str
    ) -> list[IdentityRequest]:
        superseded = []
        for request in self._of(org_id):
            if (request.customer_id, request.identifier, request.status) == (customer_id, identifier, PENDING):
                decided = dataclasses.replace(request, status=SUPERSEDED, decided_at=at, decision_reason=reason)
                self._replace(request, decided)
                superseded.append(decided)
        return superseded

    async def insert(self, request: IdentityRequest) -> IdentityRequest:
        if any(
            (r.customer_id, r.identifier, r.status) == (request.customer_id, request.identifier, PENDING)
            for r in self._of(request.org_id)
        ):
            raise PendingRequestRaced("a PENDING request exists")
        stored = dataclasses.replace(request, id=len(self.tables.identity_requests) + 1)
        self.tables.identity_requests.append(stored)
        return stored

    async def get(self, org_id: int, request_id: int) -> IdentityRequest | None:
        return next((r for r in self._of(org_id) if r.id == request_id), None)

    async def decide(
        self, org_id: int, request_id: int, status: str, at: datetime, decided_by: str, reason: str
    ) -> IdentityRequest | None:
        request = await self.get(org_id, request_id)
        if request is None or request.status != PENDING:
            return None
        decided = dataclasses.replace(request, status=status, decided_at=at, decided_by=decided_by, decision_reason=reason)
        self._replace(request, decided)
        return decided

    async def pending(self, org_id: int, limit: int, offset: int) -> list[IdentityRequest]:
        return [r for r in self._of(org_id) if r.status == PENDING][offset:offset + limit]

    async def count_pending(self, org_id: int) -> int:
        return sum(r.status == PENDING for r in self._of(org_id))

    async def of_customer(self, org_id: int, customer_id: int, limit: int) -> list[IdentityRequest]:
        return [r for r in reversed(self._of(org_id)) if r.customer_id == customer_id][:limit]

    async def pending_of(self, org_id: int, customer_id: int, identifier: str) -> IdentityRequest | None:
        return next(
            (r for r in self._of(org_id) if (r.customer_id, r.identifier, r.status) == (customer_id, identifier, PENDING)),
            None,
        )

    async def count_pending_of(self, org_id: int, requester: str) -> int:
        return sum(r.status == PENDING and r.requester == requester for r in self._of(org_id))


class FakeEvents:
    """The outbox: each customer's events numbered on from its latest, as the stores number them."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables

    async def append(self, written: Written, appended: list[Event]) -> None:
        for event in appended:
            assert event.customer_id is not None
            customer = self.tables.customers[event.customer_id]
            customer.event_sequence += 1
            self.tables.events.append((event.customer_id, customer.event_sequence, event, written))

    async def append_new(self, written: Written, appended: list[Event]) -> None:
        for sequence, event in enumerate(appended, start=1):
            assert event.customer_id is not None
            self.tables.events.append((event.customer_id, sequence, event, written))


@dataclass
class FakeUnit:
    customers: FakeCustomers
    loyalty: FakeLoyalty
    identity_requests: FakeIdentityRequests
    events: FakeEvents


class FakeStorage:
    """customers.registration.Storage in memory. `fail_on(mobile)` makes writing that customer raise,
    as a fault of the database's would."""

    def __init__(self) -> None:
        self.tables = Tables()
        self._turn = asyncio.Lock()
        self._faulty: set[str] = set()
        self.units = 0

    def fail_on(self, mobile: str) -> None:
        self._faulty.add(mobile)

    @asynccontextmanager
    async def unit_of_work(self, *, readonly: bool = False) -> AsyncIterator[FakeUnit]:
        async with self._turn:
            self.units += 1
            before = copy.deepcopy(self.tables)
            try:
                yield FakeUnit(
                    FakeCustomers(self.tables), FakeLoyalty(self.tables), FakeIdentityRequests(self.tables),
                    FakeEvents(self.tables),
                )
                self._refuse_faulty()
            except BaseException:
                self.tables = before
                raise

    async def look_alikes(self, org_id: int, skeletons: list[str]) -> list[LookAlike]:
        return await FakeCustomers(self.tables).look_alikes(org_id, skeletons)

    async def insert_new(self, new_customers: list[NewCustomer], caller: Caller, at: datetime) -> list[int | None]:
        """Each new customer whole, unless one of its identifiers is taken (then nothing of it)."""
        ids: list[int | None] = []
        async with self.unit_of_work() as unit:
            for new in new_customers:
                try:
                    customer = await unit.customers.insert(new.customer, at)
                except IdentifierTaken:
                    ids.append(None)
                    continue
                await unit.customers.record_audit(caller, customer, "CREATE", new.changes, at)
                await unit.loyalty.join([dataclasses.replace(m, customer_id=customer.id) for m in new.memberships], at)
                await unit.loyalty.append(
                    [e if e.customer_id is not None else dataclasses.replace(e, customer_id=customer.id) for e in new.entries],
                    caller.request_id, at,
                )
                await unit.events.append_new(
                    caller.written(at), [dataclasses.replace(event, customer_id=customer.id) for event in new.events]
                )
                ids.append(customer.id)
        return ids

    def _refuse_faulty(self) -> None:
        for customer in self.tables.customers.values():
            if customer.mobile in self._faulty:
                raise RuntimeError(f"the database refused customer {customer.mobile}")

    # What tests read back.
    def customer(self, mobile: str) -> Customer | None:
        return next((c for c in self.tables.customers.values() if c.mobile == mobile), None)

    def points(self, customer_id: int, program_id: int) -> int:
        return self.tables.memberships[(customer_id, program_id)].loyalty_points


async def update(raw_item: Any, caller: Caller, storage: FakeStorage, now: datetime) -> ItemResult:
    """customer/update of one customer (member-care.md §1) as its handler calls it: the add path's
    update, which never creates."""
    (result,) = await register([raw_item], caller, storage, now, batch_limit=1, updating=True)
    return result
