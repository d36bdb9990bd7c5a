"""Slow, salted hashes of till passwords and API-client secrets (argon2id)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

# PATRON_FAST_HASHES=1 picks argon2's cheapest profile: for test suites only, which apply many
# org files; a production hash must stay slow.
_hasher = PasswordHasher.from_parameters(
    profiles.CHEAPEST if os.environ.get("PATRON_FAST_HASHES") == "1" else profiles.RFC_9106_LOW_MEMORY
)


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def is_current_hash(stored_hash: str) -> bool:
    """Whether a hash is argon2id with this installation's parameters (as hash_secret makes them)."""
    try:
        return stored_hash.startswith("$argon2id$") and not _hasher.check_needs_rehash(stored_hash)
    except (InvalidHashError, ValueError):
        return False


def verify_secret(stored_hash: str, secret: str) -> bool:
    try:
        return _hasher.verify(stored_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


# A valid hash to verify against when the user is unknown, so that an unknown till takes as
# long as a wrong password.
DECOY_HASH = _hasher.hash("patron-decoy")


def lowest_priority() -> None:
    """Make the calling thread the last to get a core (nice 19; Linux schedules threads one by one,
    and argon2's own lane threads inherit it). Lowering one's priority needs no privilege."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class HashQueueFull(Exception):
    """Every slow-hash slot is taken and as many callers as allowed already wait for one."""


class HashSlots:
    """At most `slots` slow hashes at a time in this process, and at most `queue` callers waiting.

    An argon2id check costs ~150 ms of CPU and 64 MiB, and argon2 releases the GIL while it runs,
    so without a bound a flood of wrong credentials runs as many hashes at once as there are
    executor threads, and every other request (cached callers too) waits for a core. Callers
    without a slot wait in turn, up to `queue` of them; the next one is refused (HashQueueFull)
    rather than queued without end. `must_wait` callers are never refused, only queued: they are
    for credentials known to be good, whose number the caller bounds.
    """

    def __init__(self, slots: int, queue: int) -> None:
        self.slots = slots
        self.queue = queue
        self._semaphore = asyncio.Semaphore(slots)
        self.waiting = 0
        self.busy = 0

    @asynccontextmanager
    async def slot(self, must_wait: bool = False) -> AsyncIterator[None]:
        if self._semaphore.locked() and self.waiting >= self.queue and not must_wait:
            raise HashQueueFull
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1
            self._semaphore.release()
