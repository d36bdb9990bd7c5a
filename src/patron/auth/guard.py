"""Guessing made slow: failed credential checks limited, and slow hashes budgeted, per name, address and network."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from patron.auth.ratelimit import BudgetRefused, FailureCounter, FairBudget, RecentKeys, network_of, retry_after
from patron.codes import Code
from patron.errors import ApiError
from patron.observability.metrics import metrics
from patron.security import HashQueueFull, HashSlots, lowest_priority, verify_secret
from patron.settings import Settings

# How long a credential that verified stays exempt from the failure limits (not from checking).
_TRUSTED_SECONDS = 24 * 3600.0
log = logging.getLogger("patron.auth")


@dataclass(frozen=True)
class Attempt:
    """One check of a secret that no cache vouches for."""

    kind: str  # "till", "client" or "console": namespaces of their own, a till may share a client's name
    name: str  # the till code or client key named
    key: bytes  # the credential cache's key for the name and secret
    address: str  # the client address of the request


class CredentialGuard:
    """What makes guessing a till password, client secret or console password slow and cheap to
    refuse, without letting a flood from some addresses shut out callers from others.

    - Failures are counted per credential named, per client address and per network (its /24,
      or /64 for IPv6: `network_of`), in a window (FailureCounter). An address or network past
      its limit is refused with 429 before any database read or slow hash, until the window
      passes. Refused attempts count against their address and network too, so a flood that is
      mostly refused still uses up its own budget: a dozen addresses cannot keep it up forever.
    - A credential past its limit is refused (429) only to the networks that failed on it in the
      window: the right secret from a network that has not been failing still gets its check.
      So nobody locks a named till or console user out from afar; a guesser gets one more guess
      per fresh network, each then locked too, on top of the network's and address's limits.
      An unknown till or client key is counted like a known one, so a refusal tells nothing
      about which exist.
    - Only failures that cost a slow hash count. A wrong secret is remembered with the stored hash
      it failed against; the same secret against the same hash is refused from memory (the answer
      cannot differ), uncounted. The memory is per name, so an unknown till costs a hash as a known
      one does, and a new password (a new hash) is checked afresh.
    - A network with failures in the window waits behind the others for the budget below, holds
      at most all hash slots but one, and its hashes run at the lowest priority (nice 19), so a
      flood slows itself rather than the first sign-in of a caller from elsewhere.
    - A credential that verified within the last day in this worker (`trusted`) is neither
      refused by the limits nor held by the budget below; it is still checked with a slow hash
      (unless its persisted digest vouches for it: Authenticator). A guesser cannot be trusted
      without knowing the secret, and a trusted credential that fails is trusted no more.
    - At most `hash_concurrency` slow hashes at a time, on threads, and at most `hash_queue`
      callers waiting; then 503 with Retry-After (HashSlots).
    - At most `unverified_hashes_per_second` slow hashes a second (bursts of twice that) for
      credentials not verified in this worker before, handed out in turn between the networks
      and addresses asking, those of networks that have been failing after the others
      (FairBudget): at most `unverified_per_address` attempts of an address wait for one, each
      at most `unverified_wait` seconds; beyond, 503 with Retry-After.
    """

    def __init__(
        self,
        failures_per_credential: int = 10,
        failures_per_address: int = 50,
        window: float = 300.0,
        hash_concurrency: int = 2,
        hash_queue: int = 64,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 50_000,
        unverified_hashes_per_second: int = 0,
        failures_per_network: int = 200,
        unverified_per_address: int = 2,
        unverified_wait: float = 10.0,
    ) -> None:
        self._key = secrets.token_bytes(32)
        self.credentials = FailureCounter(failures_per_credential, window, clock, max_entries)
        self.addresses = FailureCounter(failures_per_address, window, clock, max_entries)
        self.networks = FailureCounter(failures_per_network, window, clock, max_entries)
        # Which networks failed on which credential in the window: those a locked credential refuses.
        self.failed_from = RecentKeys(window, clock, max_entries)
        self.refused = RecentKeys(window, clock, max_entries)
        self.trusted = RecentKeys(_TRUSTED_SECONDS, clock, max_entries)
        self.hashes = HashSlots(hash_concurrency, hash_queue)
        # Slow hashes for credentials not verified before, per second (0: no budget): what a
        # flood of guesses may take of the CPU, whatever its addresses and names.
        self.unverified_rate = unverified_hashes_per_second
        self.budget = FairBudget(
            unverified_hashes_per_second, 2 * unverified_hashes_per_second, unverified_per_address, hash_queue,
            unverified_wait, clock,
        )
        # Hashes for networks that have been failing run on threads of the lowest priority: the
        # event loop, and the hashes of everyone else, always get a core first, so guesses only
        # ever take what the machine leaves idle; and they hold all slots but one, so that a
        # slot is always free for a caller from elsewhere however slowly they run.
        self._failing_slots = asyncio.Semaphore(max(1, hash_concurrency - 1))
        self._unverified_hashing = ThreadPoolExecutor(
            hash_concurrency, thread_name_prefix="unverified-hash", initializer=lowest_priority
        )

    @classmethod
    def from_settings(cls, settings: Settings, clock: Callable[[], float] = time.monotonic) -> CredentialGuard:
        return cls(
            settings.auth_failures_per_credential,
            settings.auth_failures_per_address,
            settings.auth_failure_window_seconds,
            settings.auth_hash_concurrency,
            settings.auth_hash_queue,
            clock,
            unverified_hashes_per_second=settings.auth_unverified_hashes_per_second,
            failures_per_network=settings.auth_failures_per_network,
            unverified_per_address=settings.auth_unverified_hashes_waiting_per_address,
            unverified_wait=settings.auth_unverified_hash_wait_seconds,
        )

    def _digest(self, *parts: str) -> bytes:
        joined = "\0".join(parts).encode("utf-8", "surrogatepass")
        return hashlib.blake2b(joined, key=self._key, digest_size=16).digest()

    def admit(self, attempt: Attempt) -> None:
        """Refuse with 429 an attempt from an address or network past its limit, or on a
        credential past its limit from a network that failed on it; the refusal is counted."""
        if attempt.key in self.trusted:
            return
        network = network_of(attempt.address)
        wait = max(self.addresses.wait(attempt.address), self.networks.wait(network))
        if not wait:
            locked = self.credentials.wait(self._digest(attempt.kind, attempt.name))
            if locked and self._digest(attempt.kind, attempt.name, network) in self.failed_from:
                wait = locked
        if wait:
            self._count_against(attempt, network, "limit")
            raise ApiError(Code.TOO_MANY_REQUESTS, headers={"Retry-After": retry_after(wait)})

    async def check(self, attempt: Attempt, stored: str, secret: str) -> bool:
        """Whether `secret` matches the `stored` hash: one slow hash in a bounded slot, on a thread,
        unless this secret was refused against this hash a moment ago. Failures are counted."""
        refusal = self._digest(attempt.kind, attempt.name, stored, secret)
        if refusal in self.refused:
            return False
        trusted = attempt.key in self.trusted
        network = network_of(attempt.address)
        # A network with failures in the window may be guessing: it waits behind the others for
        # the budget, holds at most all slots but one, and hashes at the lowest priority.
        failing = not trusted and self.networks.failures(network) > 0
        if not trusted:
            try:
                await self.budget.take(attempt.address, failing=failing)
            except BudgetRefused as exc:
                self._count_against(attempt, network, "busy")
                raise ApiError(Code.SERVICE_UNAVAILABLE, headers={"Retry-After": retry_after(exc.wait)}) from exc
        try:
            async with self._failing_slots if failing else contextlib.nullcontext(), self.hashes.slot(must_wait=trusted):
                # Again: failures counted while this attempt waited for its slot may have
                # reached a limit, and a refused attempt must cost no hash.
                self.admit(attempt)
                if failing:
                    loop = asyncio.get_running_loop()
                    matches = await loop.run_in_executor(self._unverified_hashing, verify_secret, stored, secret)
                else:
                    matches = await asyncio.to_thread(verify_secret, stored, secret)
        except HashQueueFull as exc:
            self._count_against(attempt, network, "busy")
            raise ApiError(Code.SERVICE_UNAVAILABLE, headers={"Retry-After": "1"}) from exc
        if not matches:
            self.refused.add(refusal)
            self.failed(attempt)
        return matches

    def verified(self, attempt: Attempt) -> None:
        # A success does not clear the counts: a till verifying every minute would otherwise
        # hand a guesser of its password a fresh budget each time.
        self.trusted.add(attempt.key)

    def failed(self, attempt: Attempt) -> None:
        self.trusted.discard(attempt.key)
        network = network_of(attempt.address)
        self.failed_from.add(self._digest(attempt.kind, attempt.name, network))
        credential = self.credentials.add(self._digest(attempt.kind, attempt.name))
        if credential and credential == self.credentials.limit:
            _lockout(
                attempt.kind, "credential", attempt.name, credential, self.credentials.window,
                f"refused to the networks that failed on it; last from {attempt.address}",
            )
        self._count_against(attempt, network, None)

    def _count_against(self, attempt: Attempt, network: str, refused: str | None) -> None:
        """A failure, or a refusal ("limit": 429, "busy": 503), counts against the address and
        its network; a limit reached is logged and counted once."""
        if refused is not None:
            metrics().auth_refusal(attempt.kind, refused)
        address = self.addresses.add(attempt.address)
        if address and address == self.addresses.limit:
            _lockout(attempt.kind, "address", attempt.address, address, self.addresses.window, "every credential")
        failures = self.networks.add(network)
        if failures and failures == self.networks.limit:
            _lockout(attempt.kind, "network", network, failures, self.networks.window, "every credential")


def _lockout(kind: str, scope: str, name: str, count: int, window: float, refused: str) -> None:
    """One structured warning line and one count of patron_auth_lockouts_total per lockout."""
    metrics().auth_lockout(kind, scope)
    log.warning(
        "auth lockout: scope=%s kind=%s name=%.64r failures=%d window_s=%.0f refused=%s",
        scope, kind, name, count, window, refused,
    )
