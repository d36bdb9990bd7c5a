"""What operators may see and do with the event relay (events.md §4): a sink's health and when it
calls for attention, which events a replay puts back in a sink's queue, its reason, and who may ask."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

from patron import limits
from patron.codes import HOLDS_NUL
from patron.orgs.model import ACCESS_LEVELS
from patron.orgs.policy import AccessGroup, OrgFile

# A sink failing (no delivery since its first failure in a row) for longer than this, or disabled,
# makes `patron events status` exit 1: cron and monitoring call someone.
FAILING_ALARM = timedelta(hours=1)
# A relay that wrote its heartbeat within this long is running (it writes one every few seconds).
RELAY_SEEN = timedelta(seconds=30)
# Events one replay puts back at most: a larger catch-up is the feed's (GET /v1.1/events), not a
# queue of retries written in one transaction.
MOST_REPLAYED = 100_000

Health = Literal["ok", "failing", "disabled", "not started"]


@dataclass(frozen=True)
class SinkState:
    """One sink of an org as operators see it: its progress and health as the relay left them, and
    what it has yet to take. `opened` False: no relay has started it yet (no position; pending only
    its events not yet positioned)."""

    org_id: int
    sink: str
    kind: str
    # Whether the org file still declares it (a removed sink keeps its row and dead letters).
    configured: bool
    opened: bool
    position: int | None = None
    # Events it subscribes to that it has yet to take: past its position, not yet positioned, or
    # waiting for a retry (or behind one).
    pending: int | None = None
    oldest_pending_at: datetime | None = None
    failing_since: datetime | None = None
    consecutive_failures: int = 0
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_error: str | None = None
    dead_letters: int = 0
    disabled_at: datetime | None = None
    disabled_reason: str | None = None

    @property
    def health(self) -> Health:
        if not self.opened:
            return "not started"
        if self.disabled_at is not None:
            return "disabled"
        return "failing" if self.failing_since is not None else "ok"

    def lag(self, now: datetime) -> timedelta | None:
        """How long its oldest pending event has waited (None: nothing pending)."""
        if not self.pending or self.oldest_pending_at is None:
            return None
        return max(timedelta(0), now - self.oldest_pending_at)


@dataclass(frozen=True)
class DeclaredSink:
    """A sink as the org file declares it: its name, its kind, the event names it is sent (None: all)."""

    name: str
    kind: str
    events: list[str] | None

    def subscribes(self, event_name: str) -> bool:
        return self.events is None or event_name in self.events


def declared_sinks(org_file: OrgFile) -> list[DeclaredSink]:
    return [
        DeclaredSink(sink.name, sink.sink_kind, sink.events)
        for sink in org_file.sinks
    ]


@dataclass(frozen=True)
class DeadLetter:
    """An event a sink gave up on: its event (None once retention removed it), its customer, how
    many attempts it had, why the last failed, and when it was given up."""

    position: int
    customer_id: int
    event_id: str | None
    name: str | None
    created_at: datetime | None
    attempts: int
    last_error: str | None
    dead_at: datetime


@dataclass(frozen=True)
class ReplayRecord:
    """An event_replays row: who asked for a replay, when, why, what, and how many went back."""

    sink: str
    requested_at: datetime
    requested_by: str
    reason: str
    event_id: str | None
    from_at: datetime | None
    to_at: datetime | None
    events: int

    @property
    def what(self) -> str:
        if self.event_id is not None:
            return f"event {self.event_id}"
        if self.from_at is not None and self.to_at is not None:
            return f"created {iso(self.from_at)} to {iso(self.to_at)}"
        return "dead letters"


@dataclass(frozen=True)
class RelaySeen:
    relay_id: str
    started_at: datetime
    seen_at: datetime


def alarms(states: Sequence[SinkState], relays: Sequence[RelaySeen], now: datetime) -> list[str]:
    """What calls for an operator, one line each: a sink disabled, a sink failing for more than
    FAILING_ALARM, events pending while no relay runs (nothing would ever deliver them)."""
    found: list[str] = []
    for state in states:
        where = f"org {state.org_id} sink {state.sink}"
        if state.configured and state.disabled_at is not None:
            found.append(f"{where} is disabled: {state.disabled_reason or 'no reason given'}")
        elif state.configured and state.failing_since is not None and now - state.failing_since > FAILING_ALARM:
            found.append(f"{where} has been failing since {iso(state.failing_since)}")
    if not relays and any(state.configured and state.pending for state in states):
        found.append("events are pending and no relay has been seen in the last "
                     f"{int(RELAY_SEEN.total_seconds())} s: start `patron relay`")
    return found


def iso(moment: datetime) -> str:
    """A stored time (naive UTC) as the CLI shows it."""
    return moment.replace(microsecond=0).isoformat() + "Z"


def age(span: timedelta | None) -> str:
    """A duration in its two largest units: 45s, 3m 12s, 5h 0m, 2d 3h."""
    if span is None:
        return "—"
    seconds = int(span.total_seconds())
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    units = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
    first = next((index for index, (value, _) in enumerate(units) if value), len(units) - 1)
    return " ".join(f"{value}{unit}" for value, unit in units[first:first + 2])


# Who may see the sinks, and who may replay.


def may_see_events(group: AccessGroup | None) -> bool:
    """The Events page is for a group with `events` read or write: the same key that opens the
    event feed, since the page shows the org's events (ids, names, customers) and its sinks."""
    return group is not None and ACCESS_LEVELS[group.events] >= ACCESS_LEVELS["read"]


def may_replay(group: AccessGroup | None) -> bool:
    """A replay (and re-enabling a sink) sends events out of Patron again: `events` write."""
    return group is not None and ACCESS_LEVELS[group.events] >= ACCESS_LEVELS["write"]


def requested_by(where: Literal["cli", "console"], who: str) -> str:
    """event_replays.requested_by: console:LOGIN or cli:OS-USER, as long as the column holds."""
    return f"{where}:{who}"[:110]


# A replay.


class ReplayRefused(ValueError):
    """A replay that cannot be made as asked; the message says why, to the operator."""


def replay_reason(text: str | None) -> str:
    """The reason a replay is kept with: required, at most limits.REASON characters, no NUL (as
    every reason of the console)."""
    reason = (text or "").strip()
    if "\x00" in reason:
        raise ReplayRefused(f"the reason {HOLDS_NUL}")
    if not reason:
        raise ReplayRefused("give a reason: it is kept with the replay")
    if len(reason) > limits.REASON:
        raise ReplayRefused(f"the reason is longer than {limits.REASON} characters")
    return reason


@dataclass(frozen=True)
class Selection:
    """Which events a replay asks for: one event, those created in a range (both ends included),
    or every dead letter of the sink."""

    event_id: str | None = None
    from_at: datetime | None = None
    to_at: datetime | None = None
    dead: bool = False

    def describe(self) -> str:
        if self.event_id is not None:
            return f"event {self.event_id}"
        if self.dead:
            return "its dead letters"
        assert self.from_at is not None and self.to_at is not None
        return f"events created from {iso(self.from_at)} to {iso(self.to_at)}"


_EVENT_ID = re.compile(r"^[0-9A-Za-z-]{1,36}$")


def selection(event_id: str | None, from_at: datetime | None, to_at: datetime | None, dead: bool) -> Selection:
    """Exactly one of: an event, a range (from and to), the dead letters."""
    kinds = sum((event_id is not None, from_at is not None or to_at is not None, dead))
    if kinds != 1:
        raise ReplayRefused("choose one of: an event (--event), a range (--from and --to), the dead letters (--dead)")
    if event_id is not None:
        event_id = event_id.strip()
        if not _EVENT_ID.match(event_id):
            raise ReplayRefused(f"{event_id!r} is not an eventId")
        return Selection(event_id=event_id)
    if from_at is not None or to_at is not None:
        if from_at is None or to_at is None:
            raise ReplayRefused("a range needs both --from and --to")
        if from_at > to_at:
            raise ReplayRefused(f"the range ends ({iso(to_at)}) before it starts ({iso(from_at)})")
        return Selection(from_at=from_at, to_at=to_at)
    return Selection(dead=True)


def moment(text: str, *, end: bool = False) -> datetime:
    """A --from or --to as naive UTC: Unix milliseconds (as an event's createdAt), or ISO 8601; a
    time without an offset is UTC. An end includes the whole of its last unit: a date alone is its
    whole day, 09:30 its whole minute, a millisecond all of it."""
    text = text.strip()
    if text.isascii() and text.isdigit():
        if len(text) > 15:
            raise ReplayRefused(f"{text} is no time in Unix milliseconds")
        start = datetime.fromtimestamp(int(text) / 1000, timezone.utc).replace(tzinfo=None)
        return start + timedelta(milliseconds=1) - _TICK if end else start
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ReplayRefused(f"{text!r} is not a time: give ISO 8601 (2024-05-01T09:30:00Z) or Unix milliseconds") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed + _unit_of(text) - _TICK if end else parsed


_TICK = timedelta(microseconds=1)
_TIME = re.compile(r"[T ](\d{2})(:?\d{2})?(:?\d{2})?([.,]\d+)?")


def _unit_of(text: str) -> timedelta:
    """The last unit an ISO 8601 time gives: a day, an hour, a minute, a second, or (with a
    fraction) none more."""
    found = _TIME.search(text)
    if found is None:
        return timedelta(days=1)
    if found.group(4):
        return _TICK
    if found.group(3):
        return timedelta(seconds=1)
    return timedelta(minutes=1) if found.group(2) else timedelta(hours=1)


Queued = Literal["dead", "waiting"]


@dataclass(frozen=True)
class Candidate:
    """An event a replay asked for, as the sink has it: its row in the sink's queue (a dead
    letter, or waiting for a retry or behind one), and whether the event is still stored."""

    position: int
    customer_id: int
    sequence: int
    event_id: str | None
    name: str | None
    created_at: datetime | None
    queued: Queued | None
    stored: bool = True


@dataclass(frozen=True)
class ReplayPlan:
    """What a replay puts back (each customer's in sequence order) and what it leaves, and why."""

    replayed: list[Candidate]
    waiting: int = 0
    not_yet_sent: int = 0
    not_subscribed: int = 0
    gone: int = 0

    def left_out(self) -> str:
        """The events asked for and not replayed, in a phrase ('' when none)."""
        parts = [
            (self.waiting, "already waiting in the sink's queue"),
            (self.not_yet_sent, "not yet sent to the sink (they will be)"),
            (self.not_subscribed, "of names the sink is not sent"),
            (self.gone, "dead letters whose event retention has removed"),
        ]
        return "; ".join(f"{count} {what}" for count, what in parts if count)


def plan_replay(candidates: Sequence[Candidate], sink_position: int, subscribes: Callable[[str], bool]) -> ReplayPlan:
    """An event goes back if it is still stored, the sink is still sent its name, and it is a dead
    letter or was handed to the sink (at or before its position) and taken; an event waiting in
    the queue already, or not yet handed to the sink, stays as it is."""
    replayed: list[Candidate] = []
    waiting = not_yet_sent = not_subscribed = gone = 0
    for candidate in candidates:
        if candidate.queued == "waiting":
            waiting += 1
        elif not candidate.stored or candidate.name is None:
            gone += 1
        elif not subscribes(candidate.name):
            not_subscribed += 1
        elif candidate.queued != "dead" and candidate.position > sink_position:
            not_yet_sent += 1
        else:
            replayed.append(candidate)
    replayed.sort(key=lambda c: (c.customer_id, c.sequence))
    return ReplayPlan(replayed, waiting, not_yet_sent, not_subscribed, gone)


def nothing_to_replay(plan: ReplayPlan, asked: Selection, sink: str) -> str:
    """Why a replay that would put nothing back is refused."""
    left = plan.left_out()
    if asked.event_id is not None:
        return f"event {asked.event_id} cannot be replayed to {sink}: " + (left or "no such event is stored")
    if asked.dead:
        return f"{sink} has no dead letter to replay" + (f" ({left})" if left else "")
    return f"no event to replay to {sink} was created in that range" + (f" ({left})" if left else "")
