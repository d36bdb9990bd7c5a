"""The ports: what the domain asks of a store, every one of them here; store/ implements them per engine.

The events room's operators (events.operators) keep their own port beside them, as events may
import no more of registration than its model.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from patron.codes import Code
from patron.customers.model import Caller, Change, Customer, CustomerFields, LookAlike, NewCustomer
from patron.events.model import Event, Written
from patron.events.operations import DeadLetter, DeclaredSink, RelaySeen, ReplayRecord, SinkState
from patron.loyalty.model import LedgerEntry, Membership

if TYPE_CHECKING:
    # Read for their types alone: the modules that hold them run on these ports.
    from patron.customers.identity_requests import IdentityRequest
    from patron.customers.search.query import Page
    from patron.customers.search.run import Criteria, Found


class CustomerRepository(Protocol):
    async def holders(self, org_id: int, identifiers: dict[str, str]) -> dict[str, Customer]:
        """The customers holding these identifier values, by identifier; no other unit changes
        them until this one ends."""
        ...

    async def find(self, org_id: int, field: str, value: str | int) -> Customer | None: ...

    async def locked(self, org_id: int, customer_id: int) -> Customer | None:
        """The customer by id; no other unit changes it until this one ends."""
        ...

    async def insert(self, customer: CustomerFields, at: datetime) -> Customer:
        """Write a new customer; the customer as stored, with the id the database gave it."""
        ...

    async def update(self, customer: Customer, at: datetime) -> None: ...

    async def look_alikes(self, org_id: int, skeletons: list[str]) -> list[LookAlike]:
        """The customers whose external id has one of these skeletons (external_ids.skeleton)."""
        ...

    async def record_audit(
        self, caller: Caller, customer: Customer, event_type: str, changes: list[Change], at: datetime,
        warnings: Sequence[Code] = (),
    ) -> None: ...


class LoyaltyRepository(Protocol):
    async def memberships(self, org_id: int, customer_id: int) -> list[Membership]: ...

    async def join(self, joined: list[Membership], at: datetime) -> None: ...

    async def append(self, entries: list[LedgerEntry], request_id: str, at: datetime) -> None: ...

    async def credit(self, org_id: int, customer_id: int, program_id: int, points: int) -> int | None: ...

    async def record_referral(self, org_id: int, referee_id: int, referrer_id: int, at: datetime) -> bool: ...


class IdentityRequestRepository(Protocol):
    """The identity change requests of the orgs, inside a unit of work; every call names its org."""

    async def supersede(
        self, org_id: int, customer_id: int, identifier: str, at: datetime, reason: str
    ) -> list[IdentityRequest]:
        """Mark the customer's PENDING request for this identifier SUPERSEDED, if it has one; the
        requests so marked."""
        ...

    async def insert(self, request: IdentityRequest) -> IdentityRequest:
        """Write a new request; raises PendingRequestRaced when a PENDING one for the same customer
        and identifier was written by a concurrent unit first."""
        ...

    async def get(self, org_id: int, request_id: int) -> IdentityRequest | None: ...

    async def decide(
        self, org_id: int, request_id: int, status: str, at: datetime, decided_by: str, reason: str
    ) -> IdentityRequest | None:
        """Settle a PENDING request; None when it is not (or no longer) PENDING."""
        ...

    async def pending(self, org_id: int, limit: int, offset: int) -> list[IdentityRequest]: ...

    async def count_pending(self, org_id: int) -> int: ...

    async def of_customer(self, org_id: int, customer_id: int, limit: int) -> list[IdentityRequest]: ...

    async def pending_of(self, org_id: int, customer_id: int, identifier: str) -> IdentityRequest | None:
        """The customer's PENDING request for this identifier, if it has one."""
        ...

    async def count_pending_of(self, org_id: int, requester: str) -> int:
        """How many of this caller's requests (Requester.key) are PENDING."""
        ...


class EventRepository(Protocol):
    async def append(self, written: Written, events: list[Event]) -> None:
        """Write the events of existing customers in the unit, each customer's numbered on from its
        latest (customers.event_sequence, moved on in the same statement that locks it)."""
        ...

    async def append_new(self, written: Written, events: list[Event]) -> None:
        """Write the events of a customer the unit inserted, numbered from 1 in this order."""
        ...


class Repositories(Protocol):
    """The repositories of one unit of work."""

    @property
    def customers(self) -> CustomerRepository: ...

    @property
    def loyalty(self) -> LoyaltyRepository: ...

    @property
    def identity_requests(self) -> IdentityRequestRepository: ...

    @property
    def events(self) -> EventRepository: ...


class Storage(Protocol):
    """Where registrations read and write: units of work, and new customers written on their own."""

    def unit_of_work(self, *, readonly: bool = False) -> AbstractAsyncContextManager[Repositories]:
        """One transaction: committed when the block ends, rolled back on any exception."""
        ...

    async def look_alikes(self, org_id: int, skeletons: list[str]) -> list[LookAlike]:
        """The customers whose external id has one of these skeletons, read outside any unit of work."""
        ...

    async def insert_new(self, new_customers: list[NewCustomer], caller: Caller, at: datetime) -> list[int | None]:
        """Write each new customer with its audit record, memberships, ledger entries and events, unless
        one of its identifiers is taken (then nothing of it), each atomic and committed on its own,
        outside any unit of work; each one's new id, or None. Concurrent registrations' new
        customers may be written together, in the order they came."""
        ...


class IdentityStorage(Protocol):
    """Where identity change requests are made and decided: units of work alone."""

    def unit_of_work(self, *, readonly: bool = False) -> AbstractAsyncContextManager[Repositories]: ...


class Lookups(Protocol):
    """customer/get's one read of every value asked for."""

    async def find_with_memberships(
        self, org_id: int, field: str, values: list[str | int]
    ) -> dict[str | int, tuple[Customer, list[Membership]]]: ...


class AuditReader(Protocol):
    async def audits(self, org_id: int, customer_id: int, limit: int = 100) -> list[dict[str, Any]]: ...


class AuditUnit(Protocol):
    @property
    def customers(self) -> AuditReader: ...


class AuditStorage(Protocol):
    def unit_of_work(self, *, readonly: bool = False) -> AbstractAsyncContextManager[AuditUnit]: ...


class SearchRepository(Protocol):
    async def search(self, criteria: Criteria, page: Page, most: int) -> tuple[int, list[Found]]:
        """How many customers meet the criteria, counted up to `most` + 1 (no further: past it the
        number is of no use to a person, and costs what the rows cost), and the page of them,
        newest registration first (registered_on, then id, descending)."""
        ...


class SearchUnit(Protocol):
    @property
    def customers(self) -> SearchRepository: ...


class SearchStorage(Protocol):
    def search_unit(self, timeout: float) -> AbstractAsyncContextManager[SearchUnit]:
        """A unit of work for one search, run off the event loop, on one snapshot, whose statements
        the database stops `timeout` seconds after the unit begins: then it raises SearchTimedOut."""
        ...


# The member-care console (console/): its sessions, what a customer's page shows beside the
# customer, the review queue's names and the overview's counts. Its writes go where every unit's
# do (on SQLite, the file's writer), and a page that shows several things reads them in one
# snapshot (ConsoleStorage.snapshot).


@dataclass(frozen=True)
class ConsoleSession:
    """A live session and its user, as the user is now."""

    login: str
    org_id: int
    name: str
    access_group: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class NewSession:
    """A session to start: `session_id` is the SHA-256 of the cookie's secret, never the secret."""

    session_id: str
    login: str
    org_id: int
    generation: int
    csrf_token: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class Referral:
    """One side of a referral, as a customer's page names the other customer."""

    customer_id: int
    firstname: str
    lastname: str
    at: datetime


@dataclass(frozen=True)
class LedgerLine:
    """A points ledger row as a customer's page lists it."""

    created_at: datetime
    program_id: int
    kind: str
    currency: str
    amount: int


class ConsoleRepository(Protocol):
    """The console's own reads and writes, inside a unit of work; every read of an org's data names it."""

    async def start_session(self, session: NewSession) -> None: ...

    async def live_session(self, session_id: str, now: datetime) -> ConsoleSession | None:
        """The session, unless it ended or expired, or its user was disabled, moved to another org or
        given a new password (a new session generation) since it started."""
        ...

    async def end_session(self, session_id: str, now: datetime) -> None: ...

    async def purge_sessions(self, login: str, now: datetime, started_before: datetime) -> None:
        """Delete the user's sessions that are over: ended, expired, or started before `started_before`."""
        ...

    async def customer_names(self, org_id: int, customer_ids: Sequence[int]) -> dict[int, tuple[str, str]]: ...

    async def ledger(self, org_id: int, customer_id: int, limit: int) -> list[LedgerLine]:
        """The customer's ledger rows, newest first."""
        ...

    async def referred_by(self, org_id: int, customer_id: int) -> Referral | None: ...

    async def referred(self, org_id: int, customer_id: int, limit: int) -> list[Referral]: ...

    async def registrations_per_day(self, org_id: int, bounds: Sequence[datetime]) -> list[int]:
        """Customers registered in each [bounds[i], bounds[i+1]) (UTC moments)."""
        ...

    async def registrations_by(
        self, org_id: int, column: Literal["source", "registered_till"], since: datetime
    ) -> list[tuple[str | None, int]]:
        """Customers registered since `since`, by source or by till, most first."""
        ...

    async def customers_by_type(self, org_id: int) -> dict[str, int]: ...

    async def members_by_slab(self, org_id: int) -> list[tuple[int, int, int]]:
        """(programme id, slab serial, members) of the org's memberships."""
        ...

    async def warnings_since(self, org_id: int, since: datetime) -> list[list[int]]:
        """The warning codes of each CREATE and UPDATE audit record since `since` that has any."""
        ...


class ConsoleCustomers(AuditReader, Protocol):
    async def find_many_with_memberships(
        self, org_id: int, field: str, values: list[str | int]
    ) -> dict[str | int, tuple[Customer, list[Membership]]]: ...


class SinkReports(Protocol):
    """The Events page's reads of the relay's tables (events.md §4)."""

    async def sink_states(self, org_id: int, declared: Sequence[DeclaredSink]) -> list[SinkState]: ...

    async def relays_seen(self, since: datetime) -> list[RelaySeen]: ...

    async def replays(self, org_id: int, limit: int) -> list[ReplayRecord]:
        """The org's latest replays, newest first."""
        ...

    async def dead_letters(self, org_id: int, sink: str, limit: int, offset: int = 0) -> list[DeadLetter]:
        """The sink's dead letters, the most recently given up first."""
        ...


class ConsoleUnit(Protocol):
    """What the console reads in one unit: its own repository, the customers, their requests, and
    the relay's tables."""

    @property
    def console(self) -> ConsoleRepository: ...

    @property
    def customers(self) -> ConsoleCustomers: ...

    @property
    def identity_requests(self) -> IdentityRequestRepository: ...

    @property
    def event_ops(self) -> SinkReports: ...


class ConsoleStorage(Protocol):
    def unit_of_work(self, *, readonly: bool = False) -> AbstractAsyncContextManager[ConsoleUnit]:
        """One transaction (on SQLite, a turn of the file's writer; read-only, its reader)."""
        ...

    def snapshot(self) -> AbstractAsyncContextManager[ConsoleUnit]:
        """A read-only unit on one snapshot of the database: what a page shows together is of one moment."""
        ...

    def search_unit(self, timeout: float) -> AbstractAsyncContextManager[ConsoleUnit]:
        """A search's kind of unit, for reads that may take a while (the overview's counts of an
        org): read-only, on one snapshot, off the event loop, stopped `timeout` seconds after it begins."""
        ...
