"""PostgreSQL: the new customers of an org's concurrent registrations, written together in one statement."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from patron.store.customers import CustomerStore, Registration
from patron.store.db import DatabaseUnavailable, DriverPool

# Statements of one org's new customers in flight at once, per worker. Two keep the database
# busy while one's answer travels back; more would mostly split the waiting registrations into
# smaller statements.
LANES = 2
# Customers in one statement at most: a batch request's hundred and then some.
MOST_CUSTOMERS = 250


@dataclass
class _Group:
    """Registrations waiting for the same statement, in the order they came."""

    members: list[tuple[Registration, asyncio.Future[list[int | None]]]] = field(default_factory=list)
    customers: int = 0


@dataclass
class _Org:
    in_flight: int = 0
    waiting: deque[_Group] = field(default_factory=deque)


class RegistrationWriter:
    """Writes registrations' new customers with at most LANES statements in flight per org; the
    registrations that arrive meanwhile wait together and go in the next statement, in the order
    they came, each of them still written only where none of its identifiers is taken.

    A registration's statement costs the driver and PostgreSQL several times what one customer in
    it does (a round trip, executing a five-part statement, a commit). Under load a worker's
    registrations wait for the database anyway; joined, they share that cost. With fewer
    statements in flight than lanes, a registration is written at once, on its own.
    """

    def __init__(self, driver: DriverPool, *, lanes: int = LANES, most_customers: int = MOST_CUSTOMERS) -> None:
        self.driver = driver
        self.lanes = lanes
        self.most_customers = most_customers
        # Told how many registrations each statement wrote (the metrics).
        self.on_statement: Callable[[int], None] = lambda registrations: None
        self._orgs: dict[int, _Org] = {}
        self._statements: set[asyncio.Task[None]] = set()

    async def write(self, registration: Registration) -> list[int | None]:
        """The new ids of the registration's customers, None for one whose identifier was taken."""
        org_id = registration.caller.org.org_id
        org = self._orgs.get(org_id)
        if org is None:
            org = self._orgs[org_id] = _Org()
        if org.in_flight < self.lanes and not org.waiting:
            org.in_flight += 1
            try:
                (ids,) = await self._statement([registration])
                return ids
            finally:
                self._finished(org_id, org)
        return await self._join(org, registration)

    def waiting(self, org_id: int) -> int:
        """Registrations of the org waiting for a statement now."""
        org = self._orgs.get(org_id)
        return sum(len(group.members) for group in org.waiting) if org else 0

    def _join(self, org: _Org, registration: Registration) -> asyncio.Future[list[int | None]]:
        customers = len(registration.new_customers)
        if not org.waiting or org.waiting[-1].customers + customers > self.most_customers:
            org.waiting.append(_Group())
        group = org.waiting[-1]
        answer: asyncio.Future[list[int | None]] = asyncio.get_running_loop().create_future()
        group.members.append((registration, answer))
        group.customers += customers
        return answer

    def _finished(self, org_id: int, org: _Org) -> None:
        """A statement of the org is done: the next waiting group goes, on a task of its own, so
        that no request's answer waits for other requests' statement."""
        org.in_flight -= 1
        if org.waiting:
            org.in_flight += 1
            task = asyncio.get_running_loop().create_task(self._write_group(org_id, org, org.waiting.popleft()))
            self._statements.add(task)
            task.add_done_callback(self._statements.discard)
        elif org.in_flight == 0:
            del self._orgs[org_id]

    async def _write_group(self, org_id: int, org: _Org, group: _Group) -> None:
        try:
            # A request that stopped waiting (cancelled) before its statement went writes nothing.
            members = [(registration, answer) for registration, answer in group.members if not answer.done()]
            if members:
                await self._answer(members)
        finally:
            for _, answer in group.members:
                if not answer.done():
                    answer.cancel()
            self._finished(org_id, org)

    async def _answer(self, members: list[tuple[Registration, asyncio.Future[list[int | None]]]]) -> None:
        try:
            written = await self._statement([registration for registration, _ in members])
        except DatabaseUnavailable as exc:
            for _, answer in members:
                _fail(answer, DatabaseUnavailable(*exc.args))
            return
        except Exception as exc:  # noqa: BLE001 (answered to the requests, which raise it)
            if len(members) == 1:
                _fail(members[0][1], exc)
                return
            # The database refused the statement: each registration again on its own, so that
            # only a request whose values were refused fails.
            for registration, answer in members:
                try:
                    (ids,) = await self._statement([registration])
                except Exception as own:  # noqa: BLE001 (answered to its request)
                    _fail(answer, own)
                else:
                    _succeed(answer, ids)
            return
        for (_, answer), ids in zip(members, written, strict=True):
            _succeed(answer, ids)

    async def _statement(self, registrations: list[Registration]) -> list[list[int | None]]:
        async with self.driver.connection() as conn:
            written = await CustomerStore(conn).register_new(registrations)
        self.on_statement(len(registrations))
        return written


def _succeed(answer: asyncio.Future[list[int | None]], ids: list[int | None]) -> None:
    if not answer.done():
        answer.set_result(ids)


def _fail(answer: asyncio.Future[list[int | None]], exc: BaseException) -> None:
    if not answer.done():
        answer.set_exception(exc)
