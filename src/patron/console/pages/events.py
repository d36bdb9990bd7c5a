"""The Events page (events.md §4): the org's sinks with their health and backlog, a sink's dead
letters, and replays: who may see them and who may replay are events.operations' rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from patron import limits
from patron.api.context import utc_now
from patron.codes import HOLDS_NUL
from patron.console.guards import action, page, pending_count
from patron.console.sessions import Signed
from patron.console.web import NOT_FOUND, Paging, Refused, at, flash_to, paging, render, sentence, services, start_of
from patron.customers.ports import ConsoleStorage, ConsoleUnit
from patron.events.operations import (
    RELAY_SEEN,
    DeadLetter,
    RelaySeen,
    ReplayRecord,
    ReplayRefused,
    Selection,
    SinkState,
    declared_sinks,
    replay_reason,
    requested_by,
    selection,
)
from patron.events.operators import replay

# Dead letters shown at a time on a sink's page; replays listed.
DEAD_LETTER_PAGE = 25
REPLAYS_SHOWN = 10
NUL_REFUSED = f"{HOLDS_NUL}."


@dataclass(frozen=True)
class Sinks:
    """The org's sinks, the relays seen lately and the latest replays, of one moment."""

    states: list[SinkState]
    relays: list[RelaySeen]
    replays: list[ReplayRecord]


@dataclass(frozen=True)
class EventsPage:
    states: list[SinkState]
    relays: list[RelaySeen]
    replays: list[ReplayRecord]
    now: datetime
    relay_seen: int  # seconds


@dataclass(frozen=True)
class SinkPage:
    s: SinkState
    dead: list[DeadLetter]
    paging: Paging
    relays: list[RelaySeen]
    replays: list[ReplayRecord]
    now: datetime
    reason_limit: int
    relay_seen: int  # seconds
    # A refused replay's form, as sent, with its errors by field.
    form: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


async def _sinks(unit: ConsoleUnit, signed: Signed) -> Sinks:
    org_id = signed.org.org_id
    states = await unit.event_ops.sink_states(org_id, declared_sinks(signed.org.definition))
    relays = await unit.event_ops.relays_seen(utc_now() - RELAY_SEEN)
    replays = await unit.event_ops.replays(org_id, 50)
    return Sinks(states, relays, replays)


@page(requires="events")
async def events_page(request: Request, signed: Signed) -> Response:
    storage: ConsoleStorage = services(request).storage
    async with storage.snapshot() as unit:
        sinks = await _sinks(unit, signed)
    data = EventsPage(sinks.states, sinks.relays, sinks.replays[:REPLAYS_SHOWN], utc_now(), int(RELAY_SEEN.total_seconds()))
    return render(request, "events.html", signed, data, pending=await pending_count(request, signed))


async def _render_sink(
    request: Request, signed: Signed, status: int = 200, form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    storage: ConsoleStorage = services(request).storage
    name, start = request.path_params["sink"], start_of(request)
    # The sink, its dead letters and the replays of one moment.
    async with storage.snapshot() as unit:
        sinks = await _sinks(unit, signed)
        state = next((state for state in sinks.states if state.sink == name), None)
        if state is None:
            raise Refused(404, NOT_FOUND)
        dead = await unit.event_ops.dead_letters(signed.org.org_id, state.sink, DEAD_LETTER_PAGE, start)
    data = SinkPage(
        s=state, dead=dead,
        paging=paging(lambda first: at(f"/console/events/{state.sink}", first), start, len(dead), state.dead_letters,
                      DEAD_LETTER_PAGE),
        relays=sinks.relays, replays=[r for r in sinks.replays if r.sink == state.sink][:REPLAYS_SHOWN], now=utc_now(),
        reason_limit=limits.REASON, relay_seen=int(RELAY_SEEN.total_seconds()), form=form or {}, errors=errors or {},
    )
    return render(request, "event_sink.html", signed, data, status=status, pending=await pending_count(request, signed))


@page(requires="events")
async def event_sink_page(request: Request, signed: Signed) -> Response:
    return await _render_sink(request, signed)


def _asked(form: dict[str, str], errors: dict[str, str]) -> Selection | None:
    """What the replay form asks to send again: the dead letters, or one event by its eventId."""
    what = form.get("what", "")
    event_id = form.get("event_id", "").strip()
    if what == "dead":
        return selection(None, None, None, True)
    if what != "event":
        errors["what"] = "Choose what to send again: the dead letters, or one event."
    elif "\x00" in event_id:
        errors["event_id"] = f"The eventId {NUL_REFUSED}"
    elif not event_id:
        errors["event_id"] = "Give the eventId of the event to send again."
    else:
        try:
            return selection(event_id, None, None, False)
        except ReplayRefused as refused:
            errors["event_id"] = sentence(str(refused))
    return None


@action(requires="replay")
async def replay_events(request: Request, signed: Signed, form: dict[str, str]) -> Response:
    name = request.path_params["sink"]
    declared = {sink.name: sink for sink in declared_sinks(signed.org.definition)}.get(name)
    if declared is None:
        raise Refused(404, NOT_FOUND)
    errors: dict[str, str] = {}
    try:
        reason = replay_reason(form.get("reason"))
    except ReplayRefused as refused:
        reason, errors["reason"] = "", sentence(str(refused))
    asked = _asked(form, errors)
    if errors or asked is None:
        return await _render_sink(request, signed, 400, form, errors)
    try:
        replayed = await replay(
            services(request).storage, signed.org.org_id, declared, asked, reason,
            requested_by("console", signed.login), utc_now(), enable=form.get("enable") == "yes",
        )
    except ReplayRefused as refused:
        return await _render_sink(request, signed, 400, form, {"replay": sentence(str(refused))})
    # Amber when not all of it will be sent: the sink is still disabled, or events were left out or lost.
    short = replayed.disabled or bool(replayed.plan.left_out()) or bool(replayed.removed_while_disabled)
    return flash_to(request, f"/console/events/{name}", replayed.message(), "warn" if short else "ok")


ROUTES = [
    Route("/events", events_page, methods=["GET"]),
    Route("/events/{sink}", event_sink_page, methods=["GET"]),
    Route("/events/{sink}/replay", replay_events, methods=["POST"]),
]
