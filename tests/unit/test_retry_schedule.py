"""The relay's retry schedule (events.md §3): after about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, with
jitter, honouring Retry-After; then dead-lettered. A sink failing for 5 days is disabled."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from patron.relay.schedule import (
    DISABLE_AFTER,
    JITTER,
    RETRY_STEPS,
    Jitter,
    next_attempt,
    retry_scale,
    should_disable,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SPEC_STEPS = [
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
]


class Fixed:
    """Randomness that always draws the same point of the asked range: 0 its low end, 1 its high end."""

    def __init__(self, at: float) -> None:
        self.at = at

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.at


def wait(attempts_made: int, rng: Jitter = Fixed(0.5), retry_after: float | None = None, scale: float = 1.0) -> timedelta:
    when = next_attempt(attempts_made, NOW, retry_after, rng, scale)
    assert when is not None
    return when - NOW


def test_the_schedule_is_the_specs_seven_retries():
    assert list(RETRY_STEPS) == SPEC_STEPS


@pytest.mark.parametrize(("attempts_made", "step"), list(enumerate(SPEC_STEPS, start=1)))
def test_each_retry_waits_its_step(attempts_made, step):
    assert wait(attempts_made) == step


@pytest.mark.parametrize(("attempts_made", "step"), list(enumerate(SPEC_STEPS, start=1)))
def test_jitter_spreads_each_wait_by_at_most_a_fifth_either_way(attempts_made, step):
    assert JITTER == 0.2
    assert wait(attempts_made, Fixed(0)) == step * 0.8
    assert wait(attempts_made, Fixed(1)) == step * 1.2
    rng = random.Random(31)
    waits = [wait(attempts_made, rng) for _ in range(200)]
    assert all(step * 0.8 <= w <= step * 1.2 for w in waits)
    # Jittered, not fixed: a sink's failed events do not all come back at one moment.
    assert len(set(waits)) > 100


def test_retries_are_spent_after_the_seventh_and_the_event_is_dead_lettered():
    assert next_attempt(7, NOW, None, Fixed(0.5)) is not None
    assert next_attempt(8, NOW, None, Fixed(0.5)) is None
    assert next_attempt(9, NOW, 60, Fixed(0.5)) is None


def test_attempts_are_counted_from_the_first():
    with pytest.raises(ValueError, match="first attempt"):
        next_attempt(0, NOW, None, Fixed(0.5))


def test_retry_after_longer_than_the_step_is_honoured_never_earlier():
    # The first step is about 5 s; the endpoint asks for 2 minutes.
    assert wait(1, Fixed(0), retry_after=120) == timedelta(seconds=120)
    assert timedelta(seconds=120) <= wait(1, Fixed(1), retry_after=120) <= timedelta(seconds=144)


def test_retry_after_shorter_than_the_step_leaves_the_schedule():
    assert wait(2, retry_after=10) == timedelta(minutes=5)


@pytest.mark.parametrize("asked", [0, -30, float("nan"), float("inf")])
def test_a_retry_after_of_nothing_or_nonsense_leaves_the_schedule(asked):
    assert wait(3, retry_after=asked) == timedelta(minutes=30)


def test_retry_after_is_capped_at_the_longest_step():
    a_week = timedelta(days=7).total_seconds()
    assert wait(1, Fixed(0), retry_after=a_week) == timedelta(hours=10)
    assert wait(1, Fixed(1), retry_after=a_week) <= timedelta(hours=12)


def test_the_scale_runs_the_whole_schedule_faster():
    assert wait(4, scale=0.001) == timedelta(hours=2) * 0.001
    assert wait(1, Fixed(0), retry_after=120, scale=0.01) == timedelta(seconds=1.2)


@pytest.mark.parametrize("scale", [0, -1, float("nan")])
def test_the_scale_must_be_positive(scale):
    with pytest.raises(ValueError, match="positive"):
        next_attempt(1, NOW, None, Fixed(0.5), scale)


def test_the_scale_is_read_from_its_variable_and_defaults_to_one():
    assert retry_scale(None) == 1.0
    assert retry_scale("") == 1.0
    assert retry_scale("0.001") == 0.001
    for wrong in ("fast", "0", "-2", "inf"):
        with pytest.raises(ValueError, match="PATRON_EVENT_RETRY_SCALE must be a positive number"):
            retry_scale(wrong)


def test_a_sink_failing_for_five_days_is_disabled():
    assert DISABLE_AFTER == timedelta(days=5)
    assert should_disable(NOW - timedelta(days=5), NOW)
    assert should_disable(NOW - timedelta(days=9), NOW)
    assert not should_disable(NOW - timedelta(days=5) + timedelta(seconds=1), NOW)


def test_a_sink_that_is_not_failing_is_not_disabled():
    assert not should_disable(None, NOW)


def test_the_disabling_scales_with_the_schedule():
    assert should_disable(NOW - timedelta(minutes=8), NOW, scale=0.001)
    assert not should_disable(NOW - timedelta(minutes=7), NOW, scale=0.001)
