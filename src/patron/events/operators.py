"""The operators' use cases of the event relay (events.md §4), for `patron events` and the console's
Events page alike: each sink's state, and a replay, checked, written and recorded in one unit."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from patron.events.operations import (
    MOST_REPLAYED,
    Candidate,
    DeclaredSink,
    ReplayPlan,
    ReplayRecord,
    ReplayRefused,
    Selection,
    SinkState,
    nothing_to_replay,
    plan_replay,
)

log = logging.getLogger("patron.events")


class OperationsRepository(Protocol):
    async def sink(self, org_id: int, declared: DeclaredSink, *, backlog: bool = True) -> SinkState: ...

    async def stream(self, org_id: int) -> tuple[int, int]: ...

    async def candidate_event(self, org_id: int, sink: str, event_id: str) -> list[Candidate]: ...

    async def candidates_in_range(
        self, org_id: int, sink: str, from_at: datetime, to_at: datetime, limit: int
    ) -> list[Candidate]: ...

    async def dead_candidates(self, org_id: int, sink: str, limit: int) -> list[Candidate]: ...

    async def requeue(self, org_id: int, sink: str, replayed: Sequence[Candidate], at: datetime) -> int: ...

    async def enable(self, org_id: int, sink: str, at: datetime) -> bool: ...

    async def record_replay(self, org_id: int, record: ReplayRecord) -> None: ...


class OperationsUnit(Protocol):
    @property
    def event_ops(self) -> OperationsRepository: ...


class OperationsStorage(Protocol):
    def unit_of_work(self, *, readonly: bool = False) -> AbstractAsyncContextManager[OperationsUnit]: ...


@dataclass(frozen=True)
class Replayed:
    """A replay's outcome: how many events went back, what was left out, and the sink's state."""

    sink: str
    count: int
    plan: ReplayPlan
    enabled: bool
    # Still disabled (it was, and was not enabled): the events wait until it is.
    disabled: bool
    # Enabled after retention removed events it had yet to take (positions after its own): those
    # are gone for it.
    removed_while_disabled: int = 0

    def message(self) -> str:
        """The outcome in a sentence or two, as the CLI and the console say it."""
        text = f"{self.count} event{'' if self.count == 1 else 's'} put back in the queue of {self.sink}"
        text += ", due now." if not self.disabled else (
            ", to be sent once it is enabled again (it is disabled)."
        )
        if self.plan.left_out():
            text += f" Left out: {self.plan.left_out()}."
        if self.enabled:
            text += f" {self.sink} is enabled again."
            if self.removed_while_disabled:
                text += (f" While it was disabled, retention removed {self.removed_while_disabled} event"
                         f"{'' if self.removed_while_disabled == 1 else 's'} it had not taken: those cannot be sent.")
        return text


async def replay(
    storage: OperationsStorage,
    org_id: int,
    declared: DeclaredSink,
    asked: Selection,
    reason: str,
    requested_by: str,
    now: datetime,
    *,
    enable: bool = False,
) -> Replayed:
    """Put the events asked for back in the sink's queue, due now (dead letters, or events it took
    that are still stored), enable it if asked and it is disabled, and record who asked and why,
    all in one unit. ReplayRefused (nothing written) for a sink no relay has started, a selection
    of more than MOST_REPLAYED events, or one with nothing to replay (unless it enables the sink)."""
    name = declared.name
    async with storage.unit_of_work() as unit:
        ops = unit.event_ops
        state = await ops.sink(org_id, declared, backlog=False)
        if not state.opened or state.position is None:
            raise ReplayRefused(f"no relay has started {name} yet: nothing was sent to it, so nothing can be replayed")
        candidates = await _candidates(ops, org_id, name, asked)
        if len(candidates) > MOST_REPLAYED:
            raise ReplayRefused(
                f"more than {MOST_REPLAYED:,} events asked for: narrow the range (a larger catch-up is the feed's, "
                "GET /v1.1/events)"
            )
        plan = plan_replay(candidates, state.position, declared.subscribes)
        enabling = enable and state.disabled_at is not None
        if not plan.replayed and not enabling:
            raise ReplayRefused(nothing_to_replay(plan, asked, name))
        count = await ops.requeue(org_id, name, plan.replayed, now)
        removed = 0
        if enabling and await ops.enable(org_id, name, now):
            _, removed_through = await ops.stream(org_id)
            removed = max(0, removed_through - state.position)
        await ops.record_replay(org_id, ReplayRecord(
            sink=name, requested_at=now, requested_by=requested_by, reason=reason, event_id=asked.event_id,
            from_at=asked.from_at, to_at=asked.to_at, events=count,
        ))
    log.info("org %s sink %s: %s replayed %d event(s) (%s)%s", org_id, name, requested_by, count, asked.describe(),
             "; the sink is enabled again" if enabling else "")
    return Replayed(name, count, plan, enabled=enabling, disabled=state.disabled_at is not None and not enabling,
                    removed_while_disabled=removed)


async def _candidates(ops: OperationsRepository, org_id: int, sink: str, asked: Selection) -> list[Candidate]:
    if asked.event_id is not None:
        return await ops.candidate_event(org_id, sink, asked.event_id)
    if asked.dead:
        return await ops.dead_candidates(org_id, sink, MOST_REPLAYED + 1)
    assert asked.from_at is not None and asked.to_at is not None
    return await ops.candidates_in_range(org_id, sink, asked.from_at, asked.to_at, MOST_REPLAYED + 1)
