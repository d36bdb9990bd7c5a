"""Per-caller rate limits: a token bucket for each till and API client, and a count of failed
credential checks for each credential and client address, in this worker's memory."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

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
