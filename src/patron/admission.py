"""Searches admitted to run: at most so many at once in a worker, and fewer for any one caller.

A search may read every customer of an org, and holds one of the worker's database connections (or
a searcher's thread on SQLite) while it runs: admitted without a bound, a few callers' searches
would take every connection from the tills' look-ups and registrations. A caller at its own bound
is refused at once (it is the one asking too much); a search that finds every slot of the worker
taken by others waits briefly for one, in turn, then is refused too.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager


class SearchesBusy(Exception):
    """No search may start now; `message` says whose bound was reached."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SearchGate:
    def __init__(self, per_worker: int, per_caller: int, wait_seconds: float = 1.0) -> None:
        self.per_worker, self.per_caller, self.wait_seconds = per_worker, per_caller, wait_seconds
        self.slots = asyncio.Semaphore(per_worker)
        self.running: Counter[Hashable] = Counter()

    @asynccontextmanager
    async def admit(self, caller: Hashable) -> AsyncIterator[None]:
        """Hold one of the worker's slots and one of the caller's while the block runs."""
        running = self.running[caller]
        if running >= self.per_caller:
            raise SearchesBusy(
                "this caller already has a search running, the most one caller may; wait for it to answer"
                if running == 1
                else f"this caller already has {running} searches running, the most one caller may; wait for them to answer"
            )
        self.running[caller] += 1
        try:
            try:
                async with asyncio.timeout(self.wait_seconds):
                    await self.slots.acquire()
            except TimeoutError:
                raise SearchesBusy(
                    f"this server is running {self.per_worker} searches, the most it runs at once; try again shortly"
                ) from None
            try:
                yield
            finally:
                self.slots.release()
        finally:
            self.running[caller] -= 1
            if not self.running[caller]:
                del self.running[caller]
