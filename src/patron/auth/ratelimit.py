"""Per-caller rate limits: a token bucket for each till and API client, a count of failed
credential checks for each credential, client address and network, and the worker's budget of
slow hashes shared in turn between the networks and addresses asking, in this worker's memory."""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from typing import Any

# A bucket is [tokens left, when they were counted]: a two-slot list is the cheapest mutable
# record in CPython, and this runs on every authenticated request.
_TOKENS, _COUNTED_AT = 0, 1
# A bucket untouched this long has refilled under any limit worth setting.
_IDLE_SECONDS = 60.0


class RateLimiter:
    """Token buckets by caller: each holds up to `burst` requests and refills `rate` per second.

    The buckets live in the process, so with several workers each worker admits its own `rate`;
    that is the documented behaviour (docs/scale-out.md), and it needs no shared state.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_callers: int = 100_000) -> None:
        self._clock = clock
        self._max_callers = max_callers
        self._buckets: dict[str, list[float]] = {}

    def wait(self, caller: str, rate: int, burst: int) -> float:
        """0.0 when the caller may go ahead (and its request is counted), else the seconds until
        its next request would be admitted. A rate of 0 means unlimited."""
        if rate <= 0:
            return 0.0
        now = self._clock()
        bucket = self._buckets.get(caller)
        if bucket is None:
            self._make_room()
            self._buckets[caller] = [burst - 1.0, now]
            return 0.0
        # A changed org file may have lowered the burst: never keep more than it allows.
        tokens = min(float(burst), bucket[_TOKENS] + (now - bucket[_COUNTED_AT]) * rate)
        bucket[_COUNTED_AT] = now
        if tokens >= 1.0:
            bucket[_TOKENS] = tokens - 1.0
            return 0.0
        bucket[_TOKENS] = tokens
        return (1.0 - tokens) / rate

    def _make_room(self) -> None:
        """Keep a worker's memory bounded however many callers come and go. A forgotten caller
        starts again with a full bucket, so callers idle for a while go first (theirs is full
        already, or nearly), then those first seen longest ago."""
        if len(self._buckets) < self._max_callers:
            return
        now = self._clock()
        idle = [caller for caller, bucket in self._buckets.items() if now - bucket[_COUNTED_AT] > _IDLE_SECONDS]
        for caller in idle:
            del self._buckets[caller]
        # Dicts keep insertion order: the first key is the caller first seen longest ago.
        while len(self._buckets) >= self._max_callers:
            del self._buckets[next(iter(self._buckets))]


# A failure record is [failures counted, when its window opened]; like a bucket, the cheapest
# mutable record.
_FAILURES, _OPENED = 0, 1


class FailureCounter:
    """Failures by name in a window that opens at the name's first failure: once `limit` have been
    counted the name is refused until its window closes, and the next failure opens a new one.

    So a name gets `limit` failures per window however it spreads them (at most twice that across
    the edge of two windows), and a refusal lasts until the window passes rather than for a moment
    per failure: the lockout is temporary, never permanent. A limit of 0 counts nothing.

    At most `max_names` names are kept, so a flood of made-up till codes or addresses cannot grow
    a worker's memory: a name whose window has closed goes first, then the one whose last failure
    is oldest. A forgotten name starts again with a full budget; the names being guessed right now
    are the most recent, so the flood must outrun every other limit to push one out.
    """

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic, max_names: int = 50_000
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_names = max_names
        self._names: OrderedDict[Hashable, list[float]] = OrderedDict()

    def wait(self, name: Hashable) -> float:
        """0.0 while the name may still be tried, else the seconds until its window closes."""
        record = self._names.get(name)
        if record is None or record[_FAILURES] < self.limit or self.limit <= 0:
            return 0.0
        return max(0.0, record[_OPENED] + self.window - self._clock())

    def add(self, name: Hashable) -> int:
        """Counts a failure of `name`; returns the failures counted in its window, this one included."""
        if self.limit <= 0:
            return 0
        now = self._clock()
        record = self._names.get(name)
        if record is None:
            self._make_room(now)
            record = self._names[name] = [0.0, now]
        else:
            # Least recently failed first: the order in which names are forgotten.
            self._names.move_to_end(name)
            if now - record[_OPENED] >= self.window:
                record[_FAILURES], record[_OPENED] = 0.0, now
        record[_FAILURES] += 1
        return int(record[_FAILURES])

    def __len__(self) -> int:
        return len(self._names)

    def failures(self, name: Hashable) -> int:
        """The failures of `name` counted in its window (0 once the window has passed)."""
        record = self._names.get(name)
        if record is None or self._clock() - record[_OPENED] >= self.window:
            return 0
        return int(record[_FAILURES])

    def _make_room(self, now: float) -> None:
        names = self._names
        while names:
            record = names[next(iter(names))]
            if now - record[_OPENED] < self.window:
                break
            names.popitem(last=False)
        while len(names) >= self._max_names:
            names.popitem(last=False)


class RecentKeys:
    """Keys seen in the last `ttl` seconds, at most `max_keys` of them (the oldest go first)."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic, max_keys: int = 50_000) -> None:
        self.ttl = ttl
        self._clock = clock
        self._max_keys = max_keys
        self._keys: OrderedDict[Hashable, float] = OrderedDict()

    def __contains__(self, key: Hashable) -> bool:
        seen = self._keys.get(key)
        if seen is None:
            return False
        if self._clock() - seen >= self.ttl:
            del self._keys[key]
            return False
        return True

    def add(self, key: Hashable) -> None:
        now = self._clock()
        keys = self._keys
        keys[key] = now
        keys.move_to_end(key)
        while keys and (now - keys[next(iter(keys))] >= self.ttl or len(keys) > self._max_keys):
            keys.popitem(last=False)

    def discard(self, key: Hashable) -> None:
        self._keys.pop(key, None)

    def __len__(self) -> int:
        return len(self._keys)


def retry_after(seconds: float) -> str:
    """The Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


def network_of(address: str) -> str:
    """The network an address belongs to for the limits: its /24 for IPv4 (an IPv4-mapped IPv6
    address counts as IPv4), its /64 for IPv6, which is what one subscriber or office is usually
    given; anything else (a test client's name, no address) is a network of its own."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network((ip, prefix), strict=False))


class FairQueue:
    """Waiters by network, then by address, served in turn: `pop` takes the oldest waiter of the
    next address of the next network, so a network with a thousand waiters is served once a
    round, like one with a single waiter. A new network joins at the end of the round: it waits
    for at most one waiter of each network already waiting.

    At most `per_address` waiters from one address and `total` in all. When full, a newcomer
    from a network with fewer waiters than the largest one takes the place of that network's
    newest waiter (returned, so that the caller can refuse it): a flood holding every place
    cannot keep out another network.
    """

    def __init__(self, per_address: int, total: int) -> None:
        self.per_address = per_address
        self.total = total
        self._networks: OrderedDict[str, OrderedDict[str, deque[Any]]] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def push(self, address: str, item: Any) -> tuple[bool, Any]:
        """(whether `item` now waits, the waiter it displaced or None)."""
        network = network_of(address)
        addresses = self._networks.get(network)
        waiting = addresses.get(address) if addresses is not None else None
        if waiting is not None and len(waiting) >= self.per_address:
            return False, None
        evicted = None
        if self._count >= self.total:
            largest = max(self._sizes, key=self._sizes.__getitem__, default=None)
            if largest is None or self._sizes[largest] <= self._sizes.get(network, 0) + 1:
                return False, None
            evicted = self._evict_newest(largest)
            addresses = self._networks.get(network)
            waiting = addresses.get(address) if addresses is not None else None
        if addresses is None:
            addresses = self._networks[network] = OrderedDict()
        if waiting is None:
            waiting = addresses[address] = deque()
        waiting.append(item)
        self._sizes[network] = self._sizes.get(network, 0) + 1
        self._count += 1
        return True, evicted

    def pop(self) -> Any:
        """The next waiter in turn, or None when none waits."""
        if not self._networks:
            return None
        network, addresses = next(iter(self._networks.items()))
        address, waiting = next(iter(addresses.items()))
        item = waiting.popleft()
        # The address and the network go to the back of their rounds.
        if waiting:
            addresses.move_to_end(address)
        else:
            del addresses[address]
        self._forget_one(network, addresses)
        if network in self._networks:
            self._networks.move_to_end(network)
        return item

    def remove(self, address: str, item: Any) -> bool:
        """Take `item` out (a waiter that gave up); whether it was waiting."""
        network = network_of(address)
        addresses = self._networks.get(network)
        waiting = addresses.get(address) if addresses is not None else None
        if waiting is None or item not in waiting:
            return False
        waiting.remove(item)
        if not waiting:
            del addresses[address]  # type: ignore[union-attr]
        self._forget_one(network, addresses)  # type: ignore[arg-type]
        return True

    def _evict_newest(self, network: str) -> Any:
        addresses = self._networks[network]
        address = max(addresses, key=lambda a: len(addresses[a]))
        waiting = addresses[address]
        item = waiting.pop()
        if not waiting:
            del addresses[address]
        self._forget_one(network, addresses)
        return item

    def _forget_one(self, network: str, addresses: OrderedDict[str, deque[Any]]) -> None:
        self._count -= 1
        self._sizes[network] -= 1
        if not addresses:
            del self._networks[network]
            del self._sizes[network]


class BudgetRefused(Exception):
    """No slow hash for this attempt: its address has enough waiting, the queue is full, or its
    turn did not come within the longest wait; `wait` is a fair time to come back."""

    def __init__(self, wait: float) -> None:
        super().__init__(wait)
        self.wait = wait


class FairBudget:
    """`rate` slow hashes a second (bursts of `burst`) for the whole worker, handed out in turn.

    While tokens are left an attempt goes at once; otherwise it waits in a FairQueue, and each
    token, as it comes, goes to the next network's next address in turn. Attempts from networks
    that have been failing wait in a queue of their own, served only when no attempt from a
    network in good standing waits: a flood's networks fail, so a first sign-in from elsewhere
    waits for the next token, not for a round of the flood; and a flood from many networks
    still takes only its share of what is left. An attempt waits at most `max_wait` seconds
    (then BudgetRefused). A rate of 0 is no budget.
    """

    def __init__(
        self, rate: float, burst: float, per_address: int, queue: int, max_wait: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_wait = max_wait
        self._clock = clock
        self._tokens = float(burst)
        self._counted_at = clock()
        self.queue = FairQueue(per_address, queue)
        self.failing = FairQueue(per_address, queue)
        self._timer: asyncio.TimerHandle | None = None

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + max(0.0, now - self._counted_at) * self.rate)
        self._counted_at = now

    def _come_back(self) -> float:
        return (len(self.queue) + len(self.failing) + 1) / self.rate

    async def take(self, address: str, failing: bool = False) -> None:
        """Returns when this attempt may spend a slow hash; raises BudgetRefused otherwise.
        `failing`: the attempt's network has been failing, and waits behind those that have not."""
        if self.rate <= 0:
            return
        self._refill()
        if not len(self.queue) and not len(self.failing) and self._tokens >= 1.0:
            self._tokens -= 1.0
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self.failing if failing else self.queue
        accepted, evicted = queue.push(address, future)
        if evicted is not None and not evicted.done():
            evicted.set_exception(BudgetRefused(self._come_back()))
        if not accepted:
            raise BudgetRefused(self._come_back())
        self._schedule()
        try:
            await asyncio.wait_for(future, self.max_wait)
        except (TimeoutError, asyncio.CancelledError) as exc:
            queue.remove(address, future)
            if isinstance(exc, TimeoutError):
                raise BudgetRefused(self._come_back()) from exc
            raise

    def wake(self) -> None:
        """Hand the tokens the clock allows now to the waiters in turn."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._refill()
        while self._tokens >= 1.0:
            future = self.queue.pop()
            if future is None:
                future = self.failing.pop()
            if future is None:
                break
            if not future.done():
                future.set_result(None)
                self._tokens -= 1.0
        self._schedule()

    def _schedule(self) -> None:
        if self._timer is not None or not (len(self.queue) or len(self.failing)):
            return
        delay = max(0.0, (1.0 - self._tokens) / self.rate)
        self._timer = asyncio.get_running_loop().call_later(delay, self.wake)
