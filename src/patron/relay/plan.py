"""What the relay decides, as rules over plain data (events.md §2-4): which events of a batch go now
and which wait behind an earlier event of their customer, what an attempt's answer leaves behind,
a sink's health, each relay's share of the sinks, and how far retention may remove a stream."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from patron.events.model import StoredEvent
from patron.relay.sinks import Outcome
from patron.store.relay import BEHIND, DEAD, RETRY, RetryRow

# Retryable failures in a row after which a sink is failing: it reads no new events, and is only
# probed, with its oldest due retry, until one gets through.
FAILING_AFTER = 5
# While failing, a sink is probed at most this often (times the schedule's scale): a dead
# receiver is not sent one request per waiting event as each comes due.
PROBE_SECONDS = 5.0

Verdict = Literal["delivered", "retry", "dead", "disabled"]
# When to try again after n failed attempts, or None when the retries are spent (relay.schedule,
# with its randomness and scale bound).
NextAttempt = Callable[[int, datetime, "float | None"], "datetime | None"]


@dataclass(frozen=True)
class BatchPlan:
    """A batch of a sink's stream, planned: each customer's events to deliver now (a chain, in
    sequence order, delivered one after the other), and those waiting behind an earlier event of
    their customer that waits for a retry. `through`: the sink's position once the batch is done."""

    chains: list[list[StoredEvent]]
    behind: list[StoredEvent]
    through: int


def plan_batch(
    batch: Sequence[StoredEvent], subscribes: Callable[[str], bool], outstanding: set[int], held: set[int]
) -> BatchPlan:
    """`batch`: the stream's next events, in position order (each customer's in sequence order);
    `outstanding`: customers with an event waiting for a retry at this sink; `held`: positions
    the sink's retries own already (a replay, a batch written before its relay stopped)."""
    chains: dict[int, list[StoredEvent]] = {}
    behind: list[StoredEvent] = []
    for event in batch:
        if event.position in held or not subscribes(event.name):
            continue
        if event.customer_id in outstanding:
            behind.append(event)
        else:
            chains.setdefault(event.customer_id, []).append(event)
    return BatchPlan(list(chains.values()), behind, batch[-1].position if batch else 0)


def describe(outcome: Outcome) -> str:
    """An attempt's failure in a line: the status and the start of the answer, or the error."""
    if outcome.status_code is not None:
        answer = f": {outcome.answer[:200]}" if outcome.answer else ""
        return f"HTTP {outcome.status_code}{answer}" + (f" ({outcome.error})" if outcome.error else "")
    return outcome.error or outcome.result


@dataclass(frozen=True)
class Settled:
    """What the relay made of one attempt: its verdict, when to try again (retry), and why."""

    verdict: Verdict
    next_attempt_at: datetime | None = None
    error: str | None = None


def settle(outcome: Outcome, attempts_made: int, now: datetime, next_attempt: NextAttempt) -> Settled:
    """A retryable failure is tried again on the schedule until its retries are spent, then
    dead-lettered; another refusal is dead at once; a sink that asks to be disabled is."""
    if outcome.result == "delivered":
        return Settled("delivered")
    error = describe(outcome)
    if outcome.result == "retry":
        at = next_attempt(attempts_made, now, outcome.retry_after)
        if at is None:
            return Settled("dead", None, f"gave up after {attempts_made} attempts: {error}")
        return Settled("retry", at, error)
    if outcome.result == "dead":
        return Settled("dead", None, error)
    return Settled("disabled", None, error)


def chain_rows(chain: Sequence[StoredEvent], settled: Sequence[Settled], now: datetime, *, leftovers: bool = True) -> list[RetryRow]:
    """The retry rows a chain of first attempts leaves: `settled` holds the verdicts of its first
    events, attempted in order (the chain stops at a retry, or when the sink fails or is
    disabled). A retry waits for its next attempt and every later event of the customer waits
    behind it; a dead letter lets the next go on. Events not attempted because the sink began
    failing wait for a retry due now (`leftovers`); otherwise they are left to be read again."""
    rows: list[RetryRow] = []
    for index, event in enumerate(chain):
        if index >= len(settled):
            if not leftovers:
                break
            # Not attempted: the first waits for a retry (its first attempt), the rest behind it.
            rows.append(_row(event, RETRY, 0, now, "not attempted: the sink was failing"))
            rows += [_row(later, BEHIND, 0, None, None) for later in chain[index + 1:]]
            break
        result = settled[index]
        if result.verdict == "retry":
            rows.append(_row(event, RETRY, 1, result.next_attempt_at, result.error))
            rows += [_row(later, BEHIND, 0, None, None) for later in chain[index + 1:]]
            break
        if result.verdict == "dead":
            rows.append(_row(event, DEAD, 1, None, result.error))
        elif result.verdict == "disabled":
            break
    return rows


def behind_rows(events: Iterable[StoredEvent]) -> list[RetryRow]:
    return [_row(event, BEHIND, 0, None, None) for event in events]


def _row(event: StoredEvent, status: str, attempts: int, next_at: datetime | None, error: str | None) -> RetryRow:
    return RetryRow(event.position, event.customer_id, event.sequence, status, attempts, next_at, error)


def retried(row: RetryRow, result: Settled) -> RetryRow | None:
    """A retry row after its attempt: None when delivered (the row goes), else its new state."""
    if result.verdict == "delivered":
        return None
    if result.verdict == "retry":
        return RetryRow(row.position, row.customer_id, row.sequence, RETRY, row.attempts + 1, result.next_attempt_at,
                        result.error)
    if result.verdict == "dead":
        return RetryRow(row.position, row.customer_id, row.sequence, DEAD, row.attempts + 1, None, result.error)
    return row


def frees_next(result: Settled) -> bool:
    """Whether the customer's next event, waiting behind this one, may go now: this one was
    delivered or given up."""
    return result.verdict in ("delivered", "dead")


@dataclass(frozen=True)
class Health:
    """A sink's run of retryable failures, and since when it has been failing."""

    consecutive_failures: int = 0
    failing_since: datetime | None = None

    @property
    def failing(self) -> bool:
        return self.consecutive_failures >= FAILING_AFTER


def health_after(health: Health, outcome: Outcome, now: datetime) -> Health:
    """A delivery ends a run of failures; a retryable failure (a timeout, a connection error, 408,
    429, 5xx) extends it, failing since the run's first. A refusal of one event says nothing of
    the sink's health."""
    if outcome.result == "delivered":
        return Health()
    if outcome.result == "retry":
        return Health(health.consecutive_failures + 1, health.failing_since or now)
    return health


@dataclass
class Tally:
    """A pass's attempts, folded into the sink's health as they end, in the order they end."""

    health: Health
    recovered: bool = False
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_error: str | None = None
    disabled: str | None = None
    verdicts: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: Outcome, result: Settled, now: datetime) -> None:
        was_failing = self.health.failing
        self.health = health_after(self.health, outcome, now)
        if was_failing and not self.health.failing:
            self.recovered = True
        if outcome.result == "delivered":
            self.last_success_at = now
        else:
            self.last_failure_at, self.last_error = now, result.error
        if result.verdict == "disabled" and self.disabled is None:
            self.disabled = result.error or "the sink asked to be disabled"
        self.verdicts[result.verdict] = self.verdicts.get(result.verdict, 0) + 1


def fair_share(sinks: int, relays: int) -> int:
    """How many sinks one relay delivers to: an equal share of them among the relays running,
    rounded up, so that together they hold every one."""
    return -(-sinks // max(1, relays))


def removable_through(last_position: int, sink_positions: Iterable[int], oldest_outstanding: Iterable[int | None]) -> int:
    """The last position retention may remove: one every enabled sink has passed, and before any
    event still waiting for a retry (or behind one). Its age is the store's to check."""
    through = last_position
    for position in sink_positions:
        through = min(through, position)
    for oldest in oldest_outstanding:
        if oldest is not None:
            through = min(through, oldest - 1)
    return max(0, through)
