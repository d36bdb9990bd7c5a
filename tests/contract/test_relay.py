"""The relay (events.md §2, §4) on every backend: customers registered and updated through the HTTP
API, their events delivered by `patron relay`'s Relay to sinks of the test's own (in memory, with
scripted answers) and to one real webhook endpoint."""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import standardwebhooks
from sqlalchemy import select

from support.api import Org, item, new_mobile
from support.orgs import org_document
from test_customer_update import update as update_customer
from test_identity_change import storage_of
from test_relay_webhooks import Endpoint

from patron.orgs.apply import apply_org
from patron.orgs.file import parse_org_document
from patron.relay import plan, schedule
from patron.relay.metrics import RelayMetrics, serve
from patron.relay.run import Relay, RelayOptions, SinkConfig, utc_now
from patron.relay.sinks import Delivery, Outcome
from patron.store.schema import event_attempts, event_retries, event_sinks, event_streams, events

# A relay that notices everything at once: leases of 1 s, a supervisor's pass every 0.1 s.
FAST = RelayOptions(poll_seconds=0.01, lease_seconds=1.0, supervise_seconds=0.1, metrics_seconds=0.05,
                    retry_scale=1e-4, stop_grace_seconds=2.0, backoff_seconds=0.1)
HOOK_SECRET_ENV = "PATRON_TEST_RELAY_HOOK_SECRET"
HOOK_SECRET = "whsec_" + base64.b64encode(b"the-relay-tests-own-webhook-key!").decode()

Answer = Callable[[Delivery], "Outcome | Awaitable[Outcome]"]


def delivered(delivery: Delivery) -> Outcome:
    return Outcome("delivered", status_code=200)


class FakeSink:
    """An in-memory sink: keeps every attempt, answers as its script says (delivered by default),
    and notes any event sent to it again while an attempt of it is in flight."""

    def __init__(self, config: SinkConfig) -> None:
        self.name = config.name
        self.pii = config.pii
        self.config = config
        self.answer: Answer = delivered
        self.attempts: list[Delivery] = []
        self.bodies: list[dict[str, Any]] = []
        self.in_flight: set[str] = set()
        self.most_in_flight = 0
        self.overlapping: list[str] = []

    def subscribes(self, event_name: str) -> bool:
        return self.config.subscribes(event_name)

    async def deliver(self, delivery: Delivery) -> Outcome:
        if delivery.event_id in self.in_flight:
            self.overlapping.append(delivery.event_id)
        self.in_flight.add(delivery.event_id)
        self.most_in_flight = max(self.most_in_flight, len(self.in_flight))
        self.attempts.append(delivery)
        try:
            answer = self.answer(delivery)
            outcome = await answer if isinstance(answer, Awaitable) else answer
        finally:
            self.in_flight.discard(delivery.event_id)
        if outcome.result == "delivered":
            self.bodies.append(orjson.loads(delivery.body))
        return outcome

    async def close(self) -> None:
        pass

    def delivered_ids(self) -> list[str]:
        return [body["eventId"] for body in self.bodies]


class Sinks:
    """The test's sinks by name, as the relays open them (each relay's openings noted)."""

    def __init__(self) -> None:
        self.by_name: dict[str, FakeSink] = {}
        self.opened_by: dict[str, set[str]] = {}

    def __getitem__(self, name: str) -> FakeSink:
        return self.by_name[name]

    def factory(self, relay_name: str = "relay") -> Callable[[int, SinkConfig], FakeSink]:
        def open_sink(org_id: int, config: SinkConfig) -> FakeSink:
            sink = self.by_name.setdefault(config.name, FakeSink(config))
            sink.config = config
            self.opened_by.setdefault(relay_name, set()).add(config.name)
            return sink

        return open_sink

    def prepare(self, org: Org) -> None:
        for config in org.file.sinks:
            self.by_name.setdefault(config.name, FakeSink(config))

    @classmethod
    def prepared(cls, org: Org, **answers: Any) -> Sinks:
        """The org's sinks, each ready before a relay opens it; `answers` by sink name (failing_with)."""
        sinks = cls()
        sinks.prepare(org)
        for name, answer in answers.items():
            sinks[name].answer = answer
        return sinks


class Clock:
    """The relay's time, moved by the test (the schedule's hours in an instant)."""

    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def webhook(name: str, **options: Any) -> dict[str, Any]:
    return {"name": name, "url": "http://127.0.0.1:9/hooks", "secret_env": HOOK_SECRET_ENV, "allow_private": True,
            **options}


async def apply(app: Any, http: Any, document: dict[str, Any]) -> Org:
    org_file = parse_org_document(document, "tests/orgs/retail.toml")
    engine = app.state.services.engine
    await apply_org(engine, org_file)
    passwords = {t.code: t.password for s in org_file.stores for t in s.tills if t.password}
    return Org(http, org_file, passwords, engine)


@pytest.fixture
def sink_org(app: Any, http: Any) -> Callable[..., Awaitable[Org]]:
    """An org of the retail test file with these [[webhooks]] (the relay's sinks)."""

    async def make(*hooks: dict[str, Any], **configs: Any) -> Org:
        document = org_document("retail", **configs)
        document["webhooks"] = list(hooks)
        org = await apply(app, http, document)
        org.document = document  # type: ignore[attr-defined]
        return org

    return make


def relay_for(app: Any, org: Org, sinks: Sinks, *, name: str = "relay", **options: Any) -> Relay:
    return Relay(storage_of(app), options=replace(FAST, **options), sinks=sinks.factory(name), orgs={org.id},
                 metrics=RelayMetrics(private=True), relay_id=f"test:{name}:{random.getrandbits(32):08x}")


@asynccontextmanager
async def running(relay: Relay) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(relay.run())
    try:
        yield task
    finally:
        relay.stop()
        await asyncio.wait_for(asyncio.shield(task), 20)


async def until(condition: Callable[[], Any], what: str, within: float = 30.0) -> None:
    """Wait for a condition the relay brings about (polled; the bound only ends a hung test)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await _holds(condition):
        if loop.time() > deadline:
            raise AssertionError(f"never came about: {what}")
        await asyncio.sleep(0.01)


async def _holds(condition: Callable[[], Any]) -> bool:
    value = condition()
    return bool(await value if isinstance(value, Awaitable) else value)


async def register(org: Org, count: int) -> list[dict[str, Any]]:
    """New customers, each with its events (customerAdded, pointsIssued), as the API answered them."""
    response = await org.add(*({"mobile": new_mobile(), "firstname": f"Asha{n}"} for n in range(count)))
    assert response.status_code == 200, response.text
    customers: list[dict[str, Any]] = response.json()["response"]["customers"]["customer"]
    assert all(customer["item_status"]["code"] == "1000" for customer in customers), response.text
    return customers


async def rename(org: Org, customer: dict[str, Any], lastname: str) -> None:
    response = await update_customer(org, {"mobile": customer["mobile"], "lastname": lastname})
    assert response.status_code == 200, response.text
    assert item(response)["item_status"]["code"] == "1000", response.text


async def without_its_row(org: Org, sink: str) -> None:
    """The sink as no relay has started it: no row (applying an org file opens one; an operator
    may remove it by hand to start a sink afresh)."""
    from sqlalchemy import delete

    async with org.engine.begin() as conn:
        await conn.execute(delete(event_sinks).where(event_sinks.c.org_id == org.id, event_sinks.c.sink == sink))


async def no_relay_running(org: Org) -> None:
    """Forget every relay's heartbeat: the relays are one table for the whole installation, and a
    relay of an earlier test (tests run one at a time) may still count as seen for 30 s."""
    from sqlalchemy import delete

    from patron.store.schema import event_relays

    async with org.engine.begin() as conn:
        await conn.execute(delete(event_relays))


async def stored_events(org: Org) -> list[dict[str, Any]]:
    async with org.engine.connect() as conn:
        rows = await conn.execute(select(events).where(events.c.org_id == org.id).order_by(events.c.position, events.c.id))
        return [dict(row._mapping) for row in rows]


async def rows_of(org: Org, table: Any, **where: Any) -> list[dict[str, Any]]:
    async with org.engine.connect() as conn:
        query = select(table).where(table.c.org_id == org.id, *(table.c[name] == value for name, value in where.items()))
        return [dict(row._mapping) for row in await conn.execute(query)]


async def event_ids(org: Org) -> list[str]:
    return [event["event_id"] for event in await stored_events(org)]


def by_customer(bodies: list[dict[str, Any]]) -> dict[str, list[int]]:
    sequences: dict[str, list[int]] = {}
    for body in bodies:
        sequences.setdefault(body["refId"], []).append(body["sequence"])
    return sequences


def sample(relay: Relay, name: str, org: Org, sink: str, **labels: str) -> float | None:
    value: float | None = relay.metrics.registry.get_sample_value(name, {"org": str(org.id), "sink": sink, **labels})
    return value


def failing_with(status: int, *, when: Callable[[Delivery], bool] = lambda delivery: True) -> Answer:
    def answer(delivery: Delivery) -> Outcome:
        if when(delivery):
            kind = "retry" if status >= 500 or status in (408, 429) else "disable" if status == 410 else "dead"
            return Outcome(kind, status_code=status, answer="no")  # type: ignore[arg-type]
        return Outcome("delivered", status_code=200)

    return answer


# --- At least once, in order per customer ------------------------------------------------------


async def test_every_event_reaches_every_sink_once_with_its_event_id(app, sink_org):
    org = await sink_org(webhook("crm"), webhook("warehouse", pii=True))
    sinks = Sinks()
    customers = await register(org, 12)
    await rename(org, customers[0], "Rao")
    await relay_for(app, org, sinks).run(once=True)
    stored = await stored_events(org)
    assert all(event["position"] is not None for event in stored)
    for name in ("crm", "warehouse"):
        sink = sinks[name]
        assert sorted(sink.delivered_ids()) == sorted(event["event_id"] for event in stored)
        assert all(orjson.loads(attempt.body)["eventId"] == attempt.event_id for attempt in sink.attempts)
    mobiles = {body["data"]["customerIdentifiers"]["instore"]["mobile"] for body in sinks["warehouse"].bodies}
    assert None not in mobiles
    assert {body["data"]["customerIdentifiers"]["instore"]["mobile"] for body in sinks["crm"].bodies} == {None}


async def test_each_customers_events_reach_a_sink_in_sequence_order_while_customers_go_in_parallel(app, sink_org):
    org = await sink_org(webhook("crm"))
    sinks = Sinks.prepared(org)
    jitter = random.Random(3)

    async def slowly(delivery: Delivery) -> Outcome:
        await asyncio.sleep(jitter.random() * 0.004)
        return Outcome("delivered")

    sinks["crm"].answer = slowly
    customers = await register(org, 20)
    for customer in customers:
        await rename(org, customer, "Rao")
        await rename(org, customer, "Iyer")
    await relay_for(app, org, sinks).run(once=True)
    sequences = by_customer(sinks["crm"].bodies)
    assert len(sequences) == 20
    assert all(sequence == list(range(1, 5)) for sequence in sequences.values()), sequences
    assert sinks["crm"].most_in_flight > 1


async def test_an_event_waiting_for_a_retry_holds_back_its_customers_later_events(app, sink_org):
    org = await sink_org(webhook("crm"))
    sinks = Sinks.prepared(org)
    first_tries: set[str] = set()

    def once_refused(delivery: Delivery) -> Outcome:
        if delivery.event_name == "customerAdded" and delivery.event_id not in first_tries:
            first_tries.add(delivery.event_id)
            return Outcome("retry", status_code=503)
        return Outcome("delivered")

    sinks["crm"].answer = once_refused
    customers = await register(org, 5)
    for customer in customers:
        await rename(org, customer, "Rao")
    relay = relay_for(app, org, sinks)
    async with running(relay):
        await until(lambda: len(sinks["crm"].bodies) == 15, "every event delivered")
    assert all(sequence == [1, 2, 3] for sequence in by_customer(sinks["crm"].bodies).values())
    assert len(sinks["crm"].attempts) == 20
    assert await rows_of(org, event_retries) == []


async def test_retries_follow_the_schedule_then_the_event_is_dead_lettered_and_its_customers_next_goes(app, sink_org):
    org = await sink_org(webhook("crm"))
    sinks = Sinks.prepared(org, crm=failing_with(503, when=lambda delivery: delivery.event_name == "customerAdded"))
    clock = Clock()
    relay = Relay(storage_of(app), options=replace(FAST, retry_scale=1.0), sinks=sinks.factory(), orgs={org.id},
                  metrics=RelayMetrics(private=True), clock=clock, rng=random.Random(31))
    draws = random.Random(31)
    await register(org, 1)
    await relay.run(once=True)
    for attempts_made in range(1, len(schedule.RETRY_STEPS) + 1):
        (row,) = await rows_of(org, event_retries, status="retry")
        assert row["attempts"] == attempts_made
        assert row["next_attempt_at"] == schedule.next_attempt(attempts_made, clock.now, None, draws, 1.0)
        assert len(sinks["crm"].attempts) == attempts_made
        # Not a moment early...
        clock.now = row["next_attempt_at"] - timedelta(milliseconds=1)
        await relay.run(once=True)
        assert len(sinks["crm"].attempts) == attempts_made
        # ...and tried again once due; the customer's pointsIssued waits behind it all along.
        assert [r["status"] for r in await rows_of(org, event_retries, status="behind")] == ["behind"]
        clock.now = row["next_attempt_at"]
        await relay.run(once=True)
    # Eight failures in a row: the sink is failing, and the customer's next event is its next probe.
    clock.advance(seconds=plan.PROBE_SECONDS)
    await relay.run(once=True)
    (dead,) = await rows_of(org, event_retries)
    assert (dead["status"], dead["attempts"]) == ("dead", len(schedule.RETRY_STEPS) + 1)
    assert dead["last_error"].startswith(f"gave up after {len(schedule.RETRY_STEPS) + 1} attempts: HTTP 503")
    assert [body["eventName"] for body in sinks["crm"].bodies] == ["pointsIssued"]
    results = [row["result"] for row in sorted(await rows_of(org, event_attempts), key=lambda row: row["id"])]
    assert results == ["retry"] * len(schedule.RETRY_STEPS) + ["dead", "delivered"]


async def test_a_refusal_is_dead_lettered_at_once_and_the_customers_next_event_goes_on(app, sink_org):
    org = await sink_org(webhook("crm"))
    sinks = Sinks.prepared(org, crm=failing_with(422, when=lambda delivery: delivery.event_name == "customerAdded"))
    await register(org, 3)
    await relay_for(app, org, sinks).run(once=True)
    dead = await rows_of(org, event_retries)
    assert sorted((row["status"], row["attempts"]) for row in dead) == [("dead", 1)] * 3
    assert all(row["last_error"] == "HTTP 422: no" for row in dead)
    assert [body["eventName"] for body in sinks["crm"].bodies] == ["pointsIssued"] * 3


async def test_a_410_disables_the_sink_and_the_others_go_on(app, sink_org):
    org = await sink_org(webhook("crm"), webhook("warehouse"))
    sinks = Sinks.prepared(org, crm=failing_with(410))
    await register(org, 4)
    relay = relay_for(app, org, sinks, concurrency=1)
    await relay.run(once=True)
    (crm,) = await rows_of(org, event_sinks, sink="crm")
    assert crm["disabled_at"] is not None and crm["disabled_reason"].startswith("HTTP 410")
    assert len(sinks["crm"].attempts) == 1
    await register(org, 2)
    await relay.run(once=True)
    assert len(sinks["crm"].attempts) == 1
    assert sorted(sinks["warehouse"].delivered_ids()) == sorted(await event_ids(org))


async def test_a_slow_or_failing_sink_does_not_delay_another(app, sink_org):
    org = await sink_org(webhook("crm"), webhook("warehouse"))
    sinks = Sinks.prepared(org)
    hung = asyncio.Event()

    async def never_answers(delivery: Delivery) -> Outcome:
        await hung.wait()
        return Outcome("retry", error="timed out")

    sinks["crm"].answer = never_answers
    relay = relay_for(app, org, sinks, stop_grace_seconds=0.1)
    async with running(relay):
        for _ in range(3):
            await register(org, 5)
        await until(lambda: len(sinks["warehouse"].bodies) == 30, "the warehouse has every event")
        await until(lambda: sample(relay, "patron_events_pending", org, "warehouse") == 0
                    and (sample(relay, "patron_events_pending", org, "crm") or 0) > 0, "the metrics say so")
        assert sample(relay, "patron_event_lag_seconds", org, "warehouse") == 0
        assert sinks["crm"].bodies == []


# --- Several relays, and one killed ------------------------------------------------------------


async def test_two_relays_share_the_sinks_and_never_deliver_one_event_twice_at_once(app, sink_org):
    names = ("crm", "warehouse", "sms", "fraud")
    org = await sink_org(*(webhook(name) for name in names))
    sinks = Sinks.prepared(org)

    async def slowly(delivery: Delivery) -> Outcome:
        await asyncio.sleep(0.001)
        return Outcome("delivered")

    for name in names:
        sinks[name].answer = slowly
    first, second = relay_for(app, org, sinks, name="first"), relay_for(app, org, sinks, name="second")
    async with running(first), running(second):
        for _ in range(6):
            await register(org, 5)
        expected = sorted(await event_ids(org))
        for name in names:
            await until(lambda name=name: sorted(set(sinks[name].delivered_ids())) == expected, f"{name} has every event")
        await until(lambda: len(first.workers) == len(second.workers) == 2, "two sinks each")
    assert all(sinks[name].overlapping == [] for name in names)
    assert sinks.opened_by["first"] and sinks.opened_by["second"]


async def test_a_killed_relays_sinks_are_taken_over_once_its_leases_lapse(app, sink_org):
    org = await sink_org(webhook("crm"), webhook("warehouse"))
    sinks = Sinks()
    killed = relay_for(app, org, sinks, name="killed")
    task = asyncio.create_task(killed.run())
    await until(lambda: len(killed.workers) == 2, "the first relay holds both sinks")
    await register(org, 3)
    await until(lambda: len(sinks["crm"].bodies) == len(sinks["warehouse"].bodies) == 6, "delivered by the first")
    task.cancel()  # as kill -9: nothing released
    with pytest.raises(asyncio.CancelledError):
        await task
    assert {row["lease_owner"] for row in await rows_of(org, event_sinks)} == {killed.id}
    await register(org, 3)
    survivor = relay_for(app, org, sinks, name="survivor")
    async with running(survivor):
        expected = sorted(await event_ids(org))
        for name in ("crm", "warehouse"):
            await until(lambda name=name: sorted(set(sinks[name].delivered_ids())) == expected, f"{name} has every event")
        assert {row["lease_owner"] for row in await rows_of(org, event_sinks)} == {survivor.id}
    # The killed relay's heartbeat would say for 30 s more that a relay runs (patron events status).
    async with storage_of(app).unit_of_work() as unit:
        await unit.deliveries.forget_relay(killed.id)


async def test_a_stopped_relay_ends_its_deliveries_in_flight_writes_them_and_releases_its_leases(app, sink_org):
    org = await sink_org(webhook("crm"))
    sinks = Sinks.prepared(org)
    answering = asyncio.Event()

    async def slow(delivery: Delivery) -> Outcome:
        await answering.wait()
        return Outcome("delivered")

    sinks["crm"].answer = slow
    relay = relay_for(app, org, sinks, stop_grace_seconds=30.0)
    task = asyncio.create_task(relay.run())
    await until(lambda: len(relay.workers) == 1, "the relay holds the sink")
    await register(org, 2)
    # Each customer's first event (its second waits for it).
    await until(lambda: len(sinks["crm"].in_flight) == 2, "two deliveries in flight")
    relay.stop()
    await asyncio.sleep(2 * FAST.lease_seconds)  # longer than a lease: it is kept while they end
    (crm,) = await rows_of(org, event_sinks)
    assert crm["lease_owner"] == relay.id and crm["lease_until"] > utc_now()
    answering.set()
    await asyncio.wait_for(task, 10)
    assert len(sinks["crm"].bodies) == 4
    assert sorted(row["event_id"] for row in await rows_of(org, event_attempts)) == sorted(await event_ids(org))
    (crm,) = await rows_of(org, event_sinks)
    assert (crm["position"], crm["lease_owner"]) == (4, None)
    assert {row["lease_owner"] for row in await rows_of(org, event_streams)} == {None}


# --- Sink health -------------------------------------------------------------------------------


async def test_a_sink_back_after_failing_gets_its_backlog_at_once_not_at_each_retrys_next_step(app, sink_org):
    org = await sink_org(webhook("crm"))
    sinks = Sinks.prepared(org)
    down = True

    def answer(delivery: Delivery) -> Outcome:
        return Outcome("retry", error="connection refused") if down else Outcome("delivered")

    sinks["crm"].answer = answer
    clock = Clock()
    relay = Relay(storage_of(app), options=replace(FAST, retry_scale=1.0), sinks=sinks.factory(), orgs={org.id},
                  metrics=RelayMetrics(private=True), clock=clock)
    await register(org, 8)
    await relay.run(once=True)
    (crm,) = await rows_of(org, event_sinks)
    assert crm["consecutive_failures"] >= plan.FAILING_AFTER and crm["failing_since"] == clock.now
    attempts_while_failing = len(sinks["crm"].attempts)
    # Down for a while: only probed, one retry at a time, each pushed on to its schedule's next step.
    while any(row["attempts"] < 2 for row in await rows_of(org, event_retries, status="retry")):
        clock.advance(seconds=plan.PROBE_SECONDS + 1)
        await relay.run(once=True)
        assert len(sinks["crm"].attempts) == attempts_while_failing + 1
        attempts_while_failing += 1
    scheduled = [row["next_attempt_at"] for row in await rows_of(org, event_retries, status="retry")]
    down = False
    clock.now = min(scheduled)
    await relay.run(once=True)
    assert clock.now < max(scheduled)
    assert sorted(sinks["crm"].delivered_ids()) == sorted(await event_ids(org))
    assert await rows_of(org, event_retries) == []
    (crm,) = await rows_of(org, event_sinks)
    assert (crm["consecutive_failures"], crm["failing_since"]) == (0, None)


async def test_a_failing_sink_with_every_retry_given_up_is_probed_with_its_next_event(app, sink_org):
    org = await sink_org(webhook("crm"))
    sinks = Sinks.prepared(org)
    down = True
    sinks["crm"].answer = lambda delivery: Outcome("retry", status_code=503) if down else Outcome("delivered")
    clock = Clock()
    relay = Relay(storage_of(app), options=replace(FAST, retry_scale=1.0), sinks=sinks.factory(), orgs={org.id},
                  metrics=RelayMetrics(private=True), clock=clock)
    await register(org, 3)
    await relay.run(once=True)
    while waiting := await rows_of(org, event_retries, status="retry"):
        clock.now = max(min(row["next_attempt_at"] for row in waiting), clock.now + timedelta(seconds=plan.PROBE_SECONDS))
        await relay.run(once=True)
    assert {row["status"] for row in await rows_of(org, event_retries)} == {"dead"}
    (crm,) = await rows_of(org, event_sinks)
    assert crm["consecutive_failures"] >= plan.FAILING_AFTER and crm["disabled_at"] is None
    (newcomer,) = await register(org, 1)
    down = False
    clock.advance(seconds=plan.PROBE_SECONDS)
    await relay.run(once=True)
    assert {body["refId"] for body in sinks["crm"].bodies} == {f"{org.id}_{newcomer['user_id']}"}
    assert len(sinks["crm"].bodies) == 2


# --- Retention, a new sink, a real endpoint, the command ---------------------------------------


async def test_retention_removes_delivered_events_older_than_it_and_never_an_undelivered_one(app, sink_org):
    org = await sink_org(webhook("crm"), webhook("warehouse"), CONF_EVENT_RETENTION_DAYS=30)
    sinks = Sinks.prepared(org)
    (first,) = await register(org, 1)
    (held_back,) = await register(org, 1)
    await register(org, 1)
    held_ref = f"{org.id}_{held_back['user_id']}"
    sinks["warehouse"].answer = failing_with(503, when=lambda delivery: orjson.loads(delivery.body)["refId"] == held_ref)
    sinks["crm"].answer = failing_with(422, when=lambda delivery: delivery.event_name == "pointsIssued")
    clock = Clock()
    relay = Relay(storage_of(app), options=FAST, sinks=sinks.factory(), orgs={org.id}, metrics=RelayMetrics(private=True),
                  clock=clock)
    await relay.run(once=True)
    stored = await stored_events(org)
    (oldest_waiting,) = [row["position"] for row in await rows_of(org, event_retries, status="retry")]
    assert len(await rows_of(org, event_retries, sink="crm", status="dead")) == 3
    attempted = await rows_of(org, event_attempts)
    clock.advance(days=31)
    await relay.run(once=True)
    # The first customer's events, delivered (or dead-lettered) to both sinks, are gone; the held
    # back customer's, still waiting at the warehouse, and everything after it, are kept.
    kept = await stored_events(org)
    assert [event["position"] for event in kept] == [event["position"] for event in stored if event["position"] >= oldest_waiting]
    assert [event["customer_id"] for event in stored if event["position"] < oldest_waiting] == [first["user_id"]] * 2
    (stream,) = await rows_of(org, event_streams)
    assert stream["removed_through"] == oldest_waiting - 1
    # Attempts and dead letters older than the retention are gone too.
    assert {row["id"] for row in await rows_of(org, event_attempts)}.isdisjoint(row["id"] for row in attempted)
    assert await rows_of(org, event_retries, sink="crm") == []


async def test_a_sink_added_to_an_org_file_is_sent_what_is_committed_after_the_file_was_applied(app, http, sink_org):
    org = await sink_org(webhook("crm"))
    sinks = Sinks()
    relay = relay_for(app, org, sinks)
    await register(org, 2)
    await relay.run(once=True)
    await apply(app, http, {**org.document, "webhooks": [webhook("crm"), webhook("late")]})
    (customer,) = await register(org, 1)
    await relay.run(once=True)
    assert {body["refId"] for body in sinks["late"].bodies} == {f"{org.id}_{customer['user_id']}"}
    assert len(sinks["crm"].bodies) == 6


async def test_the_relay_delivers_to_a_real_webhook_endpoint_signed(app, sink_org, monkeypatch):
    monkeypatch.setenv(HOOK_SECRET_ENV, HOOK_SECRET)
    endpoint = Endpoint()
    await endpoint.start()
    try:
        org = await sink_org(webhook("crm", url=endpoint.url()))
        await register(org, 3)
        relay = Relay(storage_of(app), options=FAST, orgs={org.id}, metrics=RelayMetrics(private=True))
        await relay.run(once=True)
    finally:
        await endpoint.stop()
    verifier = standardwebhooks.Webhook(HOOK_SECRET)
    bodies = [verifier.verify(received.body, received.headers) for received in endpoint.received]
    assert sorted(body["eventId"] for body in bodies) == sorted(await event_ids(org))
    assert all(received.headers["webhook-id"] == orjson.loads(received.body)["eventId"] for received in endpoint.received)


async def test_the_relays_metrics_are_served_over_http_on_this_host(app, sink_org):
    org = await sink_org(webhook("crm"))
    sinks = Sinks.prepared(org, crm=failing_with(400, when=lambda delivery: delivery.event_name == "pointsIssued"))
    await register(org, 2)
    relay = relay_for(app, org, sinks)
    await relay.run(once=True)
    server = serve(relay.metrics, 0)
    try:
        assert server.server_address[0] == "127.0.0.1"
        async with httpx.AsyncClient() as client:
            scraped = (await client.get(f"http://127.0.0.1:{server.server_port}/metrics")).text
    finally:
        server.shutdown()
        server.server_close()
    labels = f'org="{org.id}",result="{{}}",sink="crm"'
    assert f"patron_event_deliveries_total{{{labels.format('delivered')}}} 2.0" in scraped
    assert f"patron_event_deliveries_total{{{labels.format('dead')}}} 2.0" in scraped
    assert f'patron_event_delivery_seconds_count{{org="{org.id}",sink="crm"}} 4.0' in scraped


async def test_patron_relay_once_gives_every_committed_event_its_position(patron, sink_org):
    org = await sink_org()
    await register(org, 2)
    result = await asyncio.to_thread(patron, "relay", "--once")
    assert result.exit_code == 0, result.output
    positions = [event["position"] for event in await stored_events(org)]
    assert None not in positions and len(positions) == 4
    async with org.engine.connect() as conn:
        assert not (await conn.execute(select(event_streams).where(event_streams.c.lease_owner.is_not(None),
                                                                   event_streams.c.org_id == org.id))).first()



def test_patron_relay_refuses_a_retry_scale_that_is_not_a_positive_number(patron, monkeypatch):
    monkeypatch.setenv(schedule.RETRY_SCALE_ENV, "fast")
    result = patron("relay", "--once")
    assert result.exit_code == 1
    assert f"{schedule.RETRY_SCALE_ENV} must be a positive number, not 'fast'" in result.output


class CountingStorage:
    """A storage that counts the units of work open at once (and the most it saw)."""

    def __init__(self, storage: Any) -> None:
        self.storage, self.open, self.most = storage, 0, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.storage, name)

    @asynccontextmanager
    async def unit_of_work(self, *, readonly: bool = False) -> AsyncIterator[Any]:
        self.open += 1
        self.most = max(self.most, self.open)
        try:
            await asyncio.sleep(0.001)  # a unit's round trip: others may start meanwhile
            async with self.storage.unit_of_work(readonly=readonly) as unit:
                yield unit
        finally:
            self.open -= 1


async def test_a_relay_opens_no_more_units_at_once_than_its_pool_allows_whatever_its_orgs_and_sinks(app, sink_org):
    orgs = [await sink_org(webhook("crm"), webhook("warehouse")) for _ in range(12)]
    for org in orgs:
        await register(org, 1)
    storage = CountingStorage(storage_of(app))
    sinks = Sinks()
    relay = Relay(storage, options=replace(FAST, units=3), sinks=sinks.factory(), orgs={org.id for org in orgs},
                  metrics=RelayMetrics(private=True))
    await relay.run(once=True)
    assert storage.most == 3
    for org in orgs:
        assert None not in [event["position"] for event in await stored_events(org)]
    assert len(sinks["crm"].bodies) == len(sinks["warehouse"].bodies) == 2 * len(orgs)


async def test_a_sink_declared_by_an_org_file_is_sent_what_is_committed_from_then_even_if_the_file_is_applied_again(
    app, http, sink_org
):
    org = await sink_org()
    await register(org, 1)
    sinks = Sinks()
    relay = Relay(storage_of(app), options=FAST, sinks=sinks.factory(), orgs={org.id}, metrics=RelayMetrics(private=True))
    await relay.run(once=True)  # the stream's end moves on before the sink is declared
    document = {**org.document, "webhooks": [webhook("crm")]}  # type: ignore[attr-defined]
    await apply(app, http, document)
    (after_declared,) = await register(org, 1)
    # Applied again (any change) before any relay has seen the sink: it still starts where it was declared.
    await apply(app, http, {**document, "configs": {**document.get("configs", {}), "BATCH_LIMIT": 99}})
    await relay.run(once=True)
    assert {body["refId"] for body in sinks["crm"].bodies} == {f"{org.id}_{after_declared['user_id']}"}
    assert len(sinks["crm"].bodies) == 2
