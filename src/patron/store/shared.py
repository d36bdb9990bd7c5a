"""PostgreSQL: statements that concurrent requests share (an org's new customers, its look-ups)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from patron.store.db import DatabaseUnavailable

Item = TypeVar("Item")
Result = TypeVar("Result")

# Statements of one key (an org, say) in flight at once, per worker. Two keep the database busy
# while one's answer travels back; more would mostly split the waiting requests into smaller
# statements (one lane and three measured no better).
LANES = 2
# What one statement carries at most, counted by `size` (customers, look-up values): a batch
# request's hundred and then some.
MOST_PER_STATEMENT = 250


@dataclass
class _Group(Generic[Item, Result]):
    """Items waiting for the same statement, in the order they came."""

    members: list[tuple[Item, asyncio.Future[Result]]] = field(default_factory=list)
    size: int = 0


@dataclass
class _Key(Generic[Item, Result]):
    in_flight: int = 0
    waiting: deque[_Group[Item, Result]] = field(default_factory=deque)


class SharedStatements(Generic[Item, Result]):
    """Runs `statement` over the items of one key with at most LANES statements in flight per key;
    the items that arrive meanwhile wait together and go in the next statement, in the order they
    came. `statement` answers each item of its list, in order, as if it had come alone.

    A request's statement costs the driver, the kernel and PostgreSQL several times what one row
    in it does (a round trip of two system calls, executing the statement, a commit). Under load a
    worker's requests wait for the database anyway; joined, they share that cost. With fewer
    statements in flight than lanes, an item goes at once, on its own.
    """

    def __init__(
        self,
        statement: Callable[[list[Item]], Awaitable[list[Result]]],
        size: Callable[[Item], int],
        *,
        lanes: int = LANES,
        most: int = MOST_PER_STATEMENT,
        on_statement: Callable[[int], None] = lambda items: None,
    ) -> None:
        self.statement = statement
        self.size = size
        self.lanes = lanes
        self.most = most
        # Told how many items each statement carried (the metrics).
        self.on_statement = on_statement
        self._keys: dict[Hashable, _Key[Item, Result]] = {}
        self._statements: set[asyncio.Task[None]] = set()

    async def run(self, key: Hashable, item: Item) -> Result:
        """The item's answer, from a statement of its own or one it shares with others of its key."""
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _Key()
        if state.in_flight < self.lanes and not state.waiting:
            state.in_flight += 1
            try:
                (result,) = await self._statement([item])
                return result
            finally:
                self._finished(key, state)
        return await self._join(state, item)

    def waiting(self, key: Hashable) -> int:
        """Items of the key waiting for a statement now."""
        state = self._keys.get(key)
        return sum(len(group.members) for group in state.waiting) if state else 0

    def _join(self, state: _Key[Item, Result], item: Item) -> asyncio.Future[Result]:
        size = self.size(item)
        if not state.waiting or state.waiting[-1].size + size > self.most:
            state.waiting.append(_Group())
        group = state.waiting[-1]
        answer: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        group.members.append((item, answer))
        group.size += size
        return answer

    def _finished(self, key: Hashable, state: _Key[Item, Result]) -> None:
        """A statement of the key is done: the next waiting group goes, on a task of its own, so
        that no request's answer waits for other requests' statement."""
        state.in_flight -= 1
        if state.waiting:
            state.in_flight += 1
            task = asyncio.get_running_loop().create_task(self._run_group(key, state, state.waiting.popleft()))
            self._statements.add(task)
            task.add_done_callback(self._statements.discard)
        elif state.in_flight == 0:
            del self._keys[key]

    async def _run_group(self, key: Hashable, state: _Key[Item, Result], group: _Group[Item, Result]) -> None:
        try:
            # A request that stopped waiting (cancelled) before its statement went is left out.
            members = [(item, answer) for item, answer in group.members if not answer.done()]
            if members:
                await self._answer(members)
        finally:
            for _, answer in group.members:
                if not answer.done():
                    answer.cancel()
            self._finished(key, state)

    async def _answer(self, members: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._statement([item for item, _ in members])
        except DatabaseUnavailable as exc:
            for _, answer in members:
                _fail(answer, DatabaseUnavailable(*exc.args))
            return
        except Exception as exc:  # noqa: BLE001 (answered to the requests, which raise it)
            if len(members) == 1:
                _fail(members[0][1], exc)
                return
            # The database refused the statement: each item again on its own, so that only a
            # request whose values were refused fails.
            for item, answer in members:
                try:
                    (result,) = await self._statement([item])
                except Exception as own:  # noqa: BLE001 (answered to its request)
                    _fail(answer, own)
                else:
                    _succeed(answer, result)
            return
        for (_, answer), result in zip(members, results, strict=True):
            _succeed(answer, result)

    async def _statement(self, items: list[Item]) -> list[Result]:
        results = await self.statement(items)
        self.on_statement(len(items))
        return results


def _succeed(answer: asyncio.Future[Result], result: Result) -> None:
    if not answer.done():
        answer.set_result(result)


def _fail(answer: asyncio.Future[Result], exc: BaseException) -> None:
    if not answer.done():
        answer.set_exception(exc)
