"""When a failed delivery is tried again, when it is given up, and when a failing sink is disabled."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Protocol

# The waits after each failed attempt (events.md §3): seven retries after the first attempt.
RETRY_STEPS: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
# Each wait is spread by up to this fraction either way, so that the events a sink refused together
# (an outage) do not all come back at the same moment.
JITTER = 0.2
# A sink that asks for longer (Retry-After) is waited for, up to the schedule's longest step: an
# endpoint cannot park its events for a week.
RETRY_AFTER_CAP = max(RETRY_STEPS)
# A sink that has failed this long without a success is disabled (events.md §3).
DISABLE_AFTER = timedelta(days=5)
# Stress tests run the schedule faster; the relay reads the factor from here (default 1).
RETRY_SCALE_ENV = "PATRON_EVENT_RETRY_SCALE"


class Jitter(Protocol):
    """What the schedule asks of its randomness (random.Random has it)."""

    def uniform(self, a: float, b: float) -> float: ...


def next_attempt(
    attempts_made: int, now: datetime, retry_after: float | None, rng: Jitter, scale: float = 1.0
) -> datetime | None:
    """When to try again after `attempts_made` failed attempts, or None when the retries are spent
    (the event is then dead-lettered for this sink). `retry_after` is the seconds the sink asked
    for: honoured when longer than the schedule's wait, capped at RETRY_AFTER_CAP. `scale`
    multiplies the whole wait, the sink's Retry-After included (stress tests)."""
    if attempts_made < 1:
        raise ValueError(f"attempts_made is counted from the first attempt, not {attempts_made}")
    _check_scale(scale)
    if attempts_made > len(RETRY_STEPS):
        return None
    step = RETRY_STEPS[attempts_made - 1].total_seconds()
    wait = step * rng.uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
        asked = min(retry_after, RETRY_AFTER_CAP.total_seconds())
        # Never earlier than asked; spread only later, for the same reason as the schedule's jitter.
        if asked > wait:
            wait = asked * rng.uniform(1, 1 + JITTER)
    return now + timedelta(seconds=wait * scale)


def should_disable(failing_since: datetime | None, now: datetime, scale: float = 1.0) -> bool:
    """Whether a sink failing since `failing_since` (None: it is not failing) is to be disabled."""
    _check_scale(scale)
    return failing_since is not None and now - failing_since >= DISABLE_AFTER * scale


def retry_scale(value: str | None) -> float:
    """The schedule's scale from RETRY_SCALE_ENV's value: 1 when unset, refused unless positive."""
    if value is None or not value.strip():
        return 1.0
    try:
        scale = float(value)
    except ValueError:
        raise ValueError(f"{RETRY_SCALE_ENV} must be a positive number, not {value!r}") from None
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"{RETRY_SCALE_ENV} must be a positive number, not {value!r}")
    return scale


def _check_scale(scale: float) -> None:
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"the retry schedule's scale must be a positive number, not {scale!r}")
