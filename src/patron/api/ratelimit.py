"""Per-caller rate limits: a token bucket for each till and API client, in this worker's memory."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

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


def retry_after(seconds: float) -> str:
    """The Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
