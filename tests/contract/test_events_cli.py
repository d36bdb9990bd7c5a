"""`patron events status` and `patron events replay` (events.md §4) on every backend, as an operator
runs them: sinks' state written by the relay itself (tests/test_relay.py's sinks, answering as each
test scripts), then read, replayed and delivered again."""

from __future__ import annotations

import asyncio
import getpass
import time
from typing import Any

import orjson
import pytest

from support.api import Org
from test_relay import (  # noqa: F401 (sink_org: a fixture)
    Clock, Sinks, failing_with, register, relay_for, rename, rows_of, sink_org, webhook, without_its_row,
    no_relay_running,
)

from test_identity_change import storage_of

from patron.events.build import unix_ms
from patron.relay.run import Relay
from patron.relay.sinks import Delivery, Outcome
from patron.store.schema import event_replays, event_retries, event_sinks

OPERATOR = f"cli:{getpass.getuser()}"


async def run(patron: Any, *args: str) -> Any:
    """The command in a thread of its own: it runs its own event loop, as from a shell."""
    return await asyncio.to_thread(patron, "events", *args)


async def status(patron: Any, org: Org) -> tuple[int, dict[str, Any]]:
    result = await run(patron, "status", "--org", str(org.id), "--json")
    return result.exit_code, orjson.loads(result.output)


def sink_of(document: dict[str, Any], name: str) -> dict[str, Any]:
    (org,) = document["orgs"]
    return next(sink for sink in org["sinks"] if sink["sink"] == name)


async def delivered_once(app: Any, org: Org, sinks: Sinks, **options: Any) -> Relay:
    """Every event delivered by a relay pass (the sinks opened, their positions at the stream's end)."""
    relay = relay_for(app, org, sinks, **options)
    await relay.run(once=True)
    return relay


# --- status ------------------------------------------------------------------------------------


async def test_status_counts_the_events_each_sink_has_yet_to_take_of_the_names_it_is_sent(app, patron, sink_org):
    org = await sink_org(webhook("crm"), webhook("sms", events=["customerAdded"]))
    sinks = Sinks()
    await delivered_once(app, org, sinks)
    await register(org, 3)  # a customerAdded and a pointsIssued each, committed, no relay running
    _, document = await status(patron, org)
    crm, sms = sink_of(document, "crm"), sink_of(document, "sms")
    assert (crm["pending"], sms["pending"]) == (6, 3)
    assert crm["health"] == sms["health"] == "ok"
    assert crm["oldest_pending_at"] is not None and crm["oldest_pending_seconds"] >= 0


async def test_status_exits_1_when_events_are_pending_and_no_relay_runs_and_0_once_they_are_delivered(
    app, patron, sink_org
):
    org = await sink_org(webhook("crm"))
    sinks = Sinks()
    relay = await delivered_once(app, org, sinks)
    await register(org, 1)
    await no_relay_running(org)
    code, document = await status(patron, org)
    assert code == 1
    assert any("no relay has been seen" in line for line in document["alarms"])
    await relay.run(once=True)
    code, document = await status(patron, org)
    assert (code, document["alarms"], sink_of(document, "crm")["pending"]) == (0, [], 0)


async def test_status_of_a_sink_no_relay_has_started_counts_its_events_not_yet_positioned_and_exits_1(
    patron, sink_org
):
    org = await sink_org(webhook("crm"))
    await without_its_row(org, "crm")
    await register(org, 1)
    await no_relay_running(org)
    code, document = await status(patron, org)
    crm = sink_of(document, "crm")
    assert (crm["health"], crm["position"], crm["pending"]) == ("not started", None, 2)
    assert code == 1


async def test_status_shows_a_failing_sink_since_when_its_failures_in_a_row_and_last_error(app, patron, sink_org):
    org = await sink_org(webhook("crm"))
    sinks = Sinks.prepared(org, crm=failing_with(503))
    await register(org, 2)
    await delivered_once(app, org, sinks)
    code, document = await status(patron, org)
    crm = sink_of(document, "crm")
    assert crm["health"] == "failing" and crm["failing_since"] is not None
    assert crm["consecutive_failures"] >= 1 and crm["last_error"] == "HTTP 503: no"
    assert crm["pending"] == 4
    # Failing for less than an hour is not yet an alarm (retries are still on their schedule).
    assert not any("failing" in line for line in document["alarms"])


async def test_status_exits_1_for_a_sink_failing_for_more_than_an_hour(app, patron, sink_org):
    org = await sink_org(webhook("crm"))
    sinks = Sinks.prepared(org, crm=failing_with(503))
    await register(org, 1)
    clock = Clock()
    clock.advance(hours=-2)
    relay = relay_for(app, org, sinks)
    relay.clock = clock
    await relay.run(once=True)
    code, document = await status(patron, org)
    assert code == 1
    assert any(line.startswith(f"org {org.id} sink crm has been failing since") for line in document["alarms"])


async def test_status_counts_dead_letters(app, patron, sink_org):
    org = await sink_org(webhook("crm"))
    sinks = Sinks.prepared(org, crm=failing_with(422, when=lambda delivery: delivery.event_name == "customerAdded"))
    await register(org, 3)
    await delivered_once(app, org, sinks)
    code, document = await status(patron, org)
    crm = sink_of(document, "crm")
    assert (crm["dead_letters"], crm["pending"], crm["health"]) == (3, 0, "ok")
    assert code == 0


async def test_status_shows_a_disabled_sink_with_when_and_why_and_exits_1(app, patron, sink_org):
    org = await sink_org(webhook("crm"), webhook("warehouse"))
    sinks = Sinks.prepared(org, crm=failing_with(410))
    await register(org, 1)
    await delivered_once(app, org, sinks)
    code, document = await status(patron, org)
    crm = sink_of(document, "crm")
    assert crm["health"] == "disabled" and crm["disabled_at"] is not None
    assert crm["disabled_reason"].startswith("HTTP 410")
    assert sink_of(document, "warehouse")["health"] == "ok"
    assert code == 1
    assert any(line.startswith(f"org {org.id} sink crm is disabled: HTTP 410") for line in document["alarms"])


async def test_status_prints_a_table_of_the_sinks_and_the_relays_seen(app, patron, sink_org):
    org = await sink_org(webhook("crm"), webhook("warehouse"))
    sinks = Sinks.prepared(org, crm=failing_with(410))
    sinks["warehouse"].answer = failing_with(422, when=lambda delivery: delivery.event_name == "pointsIssued")
    await register(org, 2)
    await delivered_once(app, org, sinks)
    await no_relay_running(org)
    result = await run(patron, "status", "--org", str(org.id))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    crm = next(line for line in lines if " crm " in line)
    warehouse = next(line for line in lines if " warehouse " in line)
    assert "disabled at" in crm and "HTTP 410" in crm
    assert " ok " in warehouse and " 2 " in warehouse  # its two dead letters
    assert "No relay seen in the last 30 s." in result.output
    assert f"Attention: org {org.id} sink crm is disabled" in result.output


async def test_status_of_an_unknown_org_is_refused_with_exit_code_2(patron):
    result = await run(patron, "status", "--org", "999999999999")
    assert result.exit_code == 2
    assert "no org 999999999999" in result.output


# --- replay ------------------------------------------------------------------------------------


async def test_replaying_the_dead_letters_puts_them_back_and_the_relay_delivers_them(app, patron, sink_org):
    org = await sink_org(webhook("crm"))
    sinks = Sinks.prepared(org, crm=failing_with(422, when=lambda delivery: delivery.event_name == "customerAdded"))
    await register(org, 3)
    relay = await delivered_once(app, org, sinks)
    dead = {row["position"] for row in await rows_of(org, event_retries, status="dead")}
    assert len(dead) == 3
    result = await run(patron, "replay", "--org", str(org.id), "--sink", "crm", "--dead", "--reason", "the CRM fixed its schema")
    assert result.exit_code == 0, result.output
    assert "3 events put back in the queue of crm, due now." in result.output
    waiting = await rows_of(org, event_retries)
    assert {(row["position"], row["status"], row["attempts"]) for row in waiting} == {(p, "retry", 0) for p in dead}
    sinks["crm"].answer = lambda delivery: Outcome("delivered")
    await relay.run(once=True)
    assert [body["eventName"] for body in sinks["crm"].bodies].count("customerAdded") == 3
    assert await rows_of(org, event_retries) == []


async def test_a_replay_is_recorded_with_who_asked_the_reason_what_and_how_many(app, patron, sink_org):
    org = await sink_org(webhook("crm"))
    sinks = Sinks.prepared(org, crm=failing_with(422, when=lambda delivery: delivery.event_name == "pointsIssued"))
    await register(org, 2)
    await delivered_once(app, org, sinks)
    result = await run(patron, "replay", "--org", str(org.id), "--sink", "crm", "--dead", "--reason", "  points schema fixed ")
    assert result.exit_code == 0, result.output
    (record,) = await rows_of(org, event_replays)
    assert (record["sink"], record["requested_by"], record["reason"], record["events"]) == (
        "crm", OPERATOR, "points schema fixed", 2)
    assert (record["event_id"], record["from_at"], record["to_at"]) == (None, None, None)


async def test_replaying_one_delivered_event_sends_it_again_with_its_event_id(app, patron, sink_org):
    org = await sink_org(webhook("crm"))
    sinks = Sinks()
    await register(org, 2)
    relay = await delivered_once(app, org, sinks)
    event_id = sinks["crm"].bodies[0]["eventId"]
    result = await run(patron, "replay", "--org", str(org.id), "--sink", "crm", "--event", event_id, "--reason", "lost by the CRM")
    assert result.exit_code == 0, result.output
    assert "1 event put back in the queue of crm, due now." in result.output
    await relay.run(once=True)
    assert sinks["crm"].delivered_ids().count(event_id) == 2
    assert len(sinks["crm"].bodies) == 5
    (record,) = await rows_of(org, event_replays)
    assert (record["event_id"], record["events"]) == (event_id, 1)


async def test_replaying_a_range_sends_its_events_again_each_customers_in_sequence_order(app, patron, sink_org):
    org = await sink_org(webhook("crm"))
    sinks = Sinks()
    customers = await register(org, 2)
    for customer in customers:
        await rename(org, customer, "Rao")
        await rename(org, customer, "Iyer")
    relay = await delivered_once(app, org, sinks)
    first = sinks["crm"].bodies
    created = sorted(body["createdAt"] for body in first)
    result = await run(patron, "replay", "--org", str(org.id), "--sink", "crm", "--from", str(created[0]),
                       "--to", str(created[-1]), "--reason", "warehouse reload")
    assert result.exit_code == 0, result.output
    assert "8 events put back" in result.output
    sinks["crm"].bodies = []
    await relay.run(once=True)
    again: dict[str, list[int]] = {}
    for body in sinks["crm"].bodies:
        again.setdefault(body["refId"], []).append(body["sequence"])
    assert again == {f"{org.id}_{customer['user_id']}": [1, 2, 3, 4] for customer in customers}
    (record,) = await rows_of(org, event_replays)
    assert unix_ms(record["from_at"]) == created[0] and record["events"] == 8


async def test_a_replayed_event_goes_in_its_customers_sequence_order_among_those_waiting(app, patron, sink_org):
    org = await sink_org(webhook("crm"))
    sinks = Sinks.prepared(org)
    refused = {"customerAdded": 422, "customerUpdated": 503}

    def answer(delivery: Delivery) -> Outcome:
        status = refused.get(delivery.event_name)
        return Outcome("delivered") if status is None else failing_with(status)(delivery)

    sinks["crm"].answer = answer
    (customer,) = await register(org, 1)
    relay = await delivered_once(app, org, sinks)
    await rename(org, customer, "Rao")
    await relay.run(once=True)
    assert sorted((row["sequence"], row["status"]) for row in await rows_of(org, event_retries)) == [
        (1, "dead"), (3, "retry")]
    result = await run(patron, "replay", "--org", str(org.id), "--sink", "crm", "--dead", "--reason", "schema fixed")
    assert result.exit_code == 0, result.output
    refused.clear()
    sinks["crm"].bodies = []
    # The retry of 3 comes due on its own (scaled) schedule: a pass may end just before it does.
    for _ in range(100):
        await relay.run(once=True)
        if len(sinks["crm"].bodies) >= 2:
            break
        await asyncio.sleep(0.01)
    assert [body["sequence"] for body in sinks["crm"].bodies] == [1, 3]


async def test_a_replay_leaves_out_events_still_waiting_and_says_so(app, patron, sink_org):
    org = await sink_org(webhook("crm"))
    sinks = Sinks.prepared(org, crm=failing_with(503, when=lambda delivery: delivery.event_name == "customerAdded"))
    await register(org, 1)
    await delivered_once(app, org, sinks)
    (waiting,) = await rows_of(org, event_retries, status="retry")
    (behind,) = await rows_of(org, event_retries, status="behind")
    assert waiting and behind
    added = sinks["crm"].attempts[0].event_id
    result = await run(patron, "replay", "--org", str(org.id), "--sink", "crm", "--event", added, "--reason", "again")
    assert result.exit_code == 2
    assert "1 already waiting in the sink's queue" in result.output
    assert await rows_of(org, event_replays) == []


async def test_a_disabled_sink_stays_disabled_unless_the_replay_enables_it(app, patron, sink_org):
    org = await sink_org(webhook("crm"))
    sinks = Sinks()
    await register(org, 1)
    relay = await delivered_once(app, org, sinks)
    added = sinks["crm"].bodies[0]["eventId"]
    sinks["crm"].answer = failing_with(410)
    await register(org, 1)
    await relay.run(once=True)
    (crm,) = await rows_of(org, event_sinks)
    assert crm["disabled_at"] is not None
    sinks["crm"].answer = lambda delivery: Outcome("delivered")
    kept = await run(patron, "replay", "--org", str(org.id), "--sink", "crm", "--event", added, "--reason", "endpoint moved")
    assert kept.exit_code == 0, kept.output
    assert "1 event put back in the queue of crm, to be sent once it is enabled again (it is disabled)." in kept.output
    attempted = len(sinks["crm"].attempts)
    await relay.run(once=True)
    assert len(sinks["crm"].attempts) == attempted
    # No dead letter to replay, but --enable: the sink is enabled, and that is recorded too.
    enabled = await run(patron, "replay", "--org", str(org.id), "--sink", "crm", "--dead", "--reason", "endpoint is back",
                        "--enable")
    assert enabled.exit_code == 0, enabled.output
    assert "0 events put back in the queue of crm, due now. crm is enabled again." in enabled.output
    (crm,) = await rows_of(org, event_sinks)
    assert (crm["disabled_at"], crm["disabled_reason"], crm["failing_since"], crm["consecutive_failures"]) == (
        None, None, None, 0)
    await relay.run(once=True)
    assert sinks["crm"].delivered_ids().count(added) == 2
    # ...and the second customer's events, which the sink's 410 had left unsent.
    assert len(sinks["crm"].bodies) == 5 and len({body["refId"] for body in sinks["crm"].bodies}) == 2
    assert [(row["reason"], row["events"]) for row in sorted(await rows_of(org, event_replays), key=lambda row: row["id"])] == [
        ("endpoint moved", 1), ("endpoint is back", 0)]


@pytest.mark.parametrize("args, message", [
    (("--org", "999999999999", "--sink", "crm", "--dead", "--reason", "x"), "no org 999999999999"),
    (("--sink", "nowhere", "--dead", "--reason", "x"), "has no sink nowhere (its sinks: crm)"),
    (("--sink", "crm", "--dead", "--reason", "   "), "give a reason: it is kept with the replay"),
    (("--sink", "crm", "--dead", "--reason", "a\x00b"), "the reason holds a NUL character"),
    (("--sink", "crm", "--dead", "--reason", "x" * 501), "the reason is longer than 500 characters"),
    (("--sink", "crm", "--reason", "x"), "choose one of: an event (--event), a range"),
    (("--sink", "crm", "--from", "2020-01-01", "--reason", "x"), "a range needs both --from and --to"),
    (("--sink", "crm", "--from", "2020-01-02", "--to", "2020-01-01", "--reason", "x"), "the range ends"),
    (("--sink", "crm", "--from", "yesterday", "--to", "2020-01-01", "--reason", "x"), "'yesterday' is not a time"),
    (("--sink", "crm", "--from", "2020-01-01", "--to", "2020-01-01", "--reason", "x"),
     "no event to replay to crm was created in that range"),
    (("--sink", "crm", "--event", "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "--reason", "x"),
     "event 1b4e28ba-2fa1-11d2-883f-0016d3cca427 cannot be replayed to crm: no such event is stored"),
    (("--sink", "crm", "--dead", "--reason", "x"), "crm has no dead letter to replay"),
], ids=["unknown org", "unknown sink", "empty reason", "NUL", "long reason", "no selection", "half a range",
        "backwards range", "not a time", "empty range", "unknown event", "no dead letters"])
async def test_a_replay_that_cannot_be_made_is_refused_with_exit_code_2_and_nothing_written(
    app, patron, sink_org, args, message
):
    org = await sink_org(webhook("crm"))
    sinks = Sinks()
    await register(org, 1)
    await delivered_once(app, org, sinks)
    full = args if args[0] == "--org" else ("--org", str(org.id), *args)
    result = await run(patron, "replay", *full)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert await rows_of(org, event_replays) == []
    assert await rows_of(org, event_retries) == []


async def test_a_replay_to_a_sink_no_relay_has_started_is_refused(patron, sink_org):
    org = await sink_org(webhook("crm"))
    await without_its_row(org, "crm")
    result = await run(patron, "replay", "--org", str(org.id), "--sink", "crm", "--dead", "--reason", "x")
    assert result.exit_code == 2
    assert "no relay has started crm yet" in result.output


async def test_a_replay_of_events_not_yet_sent_to_the_sink_says_they_will_be(app, patron, sink_org):
    org = await sink_org(webhook("crm"))
    sinks = Sinks()
    await delivered_once(app, org, sinks)
    await register(org, 1)
    # Positioned in the org's stream, not yet sent to the sink.
    async with storage_of(app).unit_of_work() as unit:
        assert await unit.events.position_pending(org.id) == 2
    tomorrow = str(int(time.time() * 1000) + 86_400_000)
    result = await run(patron, "replay", "--org", str(org.id), "--sink", "crm", "--from", "0", "--to", tomorrow,
                       "--reason", "x")
    assert result.exit_code == 2
    assert "2 not yet sent to the sink (they will be)" in result.output
