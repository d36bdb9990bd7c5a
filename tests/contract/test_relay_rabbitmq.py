"""The RabbitMQ sink (events.md §3), against the real broker on 127.0.0.1:5672: persistent messages
counted delivered only when confirmed, message_id = eventId, routing key <orgId>.<eventName>, the
exchange declared a durable topic exchange if missing; a cut connection loses no confirmed event and
is reopened; a configuration that cannot work disables the sink; the URL's password is never shown."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractQueue

from patron.orgs.policy import Broker
from patron.relay.rabbitmq import LAST_BACKOFF, RabbitMqSink, backoff, routing_key, without_secret
from patron.relay.sinks import Delivery, Outcome, Sink
from support.tcp_proxy import TcpProxy

BROKER_URL = os.environ.get("PATRON_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/")
REQUIRE_RABBITMQ = os.environ.get("PATRON_TEST_REQUIRE_RABBITMQ") == "1"
URL_ENV = "PATRON_TEST_AMQP_URL"
BROKER_HOST = aio_pika.connection.make_url(BROKER_URL).host or "127.0.0.1"
BROKER_PORT = aio_pika.connection.make_url(BROKER_URL).port or 5672
# How long a test waits for something that happens in milliseconds (a reconnection, a socket to close).
PATIENCE = 10.0


def through(port: int) -> str:
    """The broker's URL, reached through a proxy on `port`."""
    return str(aio_pika.connection.make_url(BROKER_URL).with_host("127.0.0.1").with_port(port))


def event(org_id: int = 42, event_name: str = "customerAdded", body: bytes | None = None) -> Delivery:
    event_id = f"evt_{uuid.uuid4().hex}"
    return Delivery(
        event_id=event_id,
        event_name=event_name,
        org_id=org_id,
        body=body if body is not None else b'{"eventId":"' + event_id.encode() + b'","data":{"firstName":"Zo\xc3\xab"}}',
        attempt=1,
    )


def broker_entry(exchange: str, **fields: Any) -> Broker:
    return Broker(name="warehouse", url_env=URL_ENV, exchange=exchange, **fields)


async def drained(queue: AbstractQueue) -> dict[str, aio_pika.abc.AbstractIncomingMessage]:
    """Every message in the queue now, by message_id."""
    found = {}
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        found[str(message.message_id)] = message
    return found


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + PATIENCE
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"not within {PATIENCE:g} s: {what}")
        await asyncio.sleep(0.02)


# --- the broker, as a consumer of the test's own sees it ------------------------------------------


@pytest.fixture
async def observer() -> AsyncIterator[AbstractConnection]:
    try:
        connection = await aio_pika.connect(BROKER_URL, timeout=5)
    except (OSError, aiormq.exceptions.AMQPError, asyncio.TimeoutError) as problem:
        if REQUIRE_RABBITMQ:
            pytest.fail(f"RabbitMQ is required (PATRON_TEST_REQUIRE_RABBITMQ=1) but unreachable: {problem!r}")
        pytest.skip(f"no RabbitMQ at {BROKER_HOST}:{BROKER_PORT} (set PATRON_TEST_RABBITMQ): {problem!r}")
    yield connection
    await connection.close()


@pytest.fixture
async def exchange(observer: AbstractConnection) -> AsyncIterator[str]:
    """A name for the test's own exchange, deleted at the end (it is durable: it would outlive the test)."""
    name = f"patron-test-{uuid.uuid4().hex[:12]}"
    yield name
    # A channel of its own: a test may have closed another with an error.
    channel = await observer.channel()
    await channel.exchange_delete(name)
    await channel.close()


@pytest.fixture
async def channel(observer: AbstractConnection) -> AsyncIterator[AbstractChannel]:
    opened = await observer.channel()
    yield opened
    if not opened.is_closed:
        await opened.close()


async def queue_on(channel: AbstractChannel, exchange: str, binding: str = "#", **arguments: Any) -> AbstractQueue:
    """The exchange, declared as the sink declares it, and an exclusive queue bound to it (deleted
    with the observer's connection)."""
    declared = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True, arguments=arguments or None)
    await queue.bind(declared, binding)
    return queue


@pytest.fixture
async def sinks() -> AsyncIterator[Callable[..., RabbitMqSink]]:
    made: list[RabbitMqSink] = []

    def make(exchange: str, url: str | None = BROKER_URL, **options: Any) -> RabbitMqSink:
        sink = RabbitMqSink(broker_entry(exchange), {} if url is None else {URL_ENV: url}, **options)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        await sink.close()


# --- rules ---------------------------------------------------------------------------------------


def test_the_routing_key_is_the_org_then_the_event_name() -> None:
    assert routing_key(event(org_id=7, event_name="pointsIssued")) == "7.pointsIssued"


def test_connection_attempts_back_off_doubling_to_a_ceiling() -> None:
    assert [backoff(failures, 1.0, 30.0) for failures in (1, 2, 3, 4, 5, 6, 7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff(1000) == LAST_BACKOFF


def test_the_password_is_taken_out_of_a_librarys_words_in_every_form_it_may_quote() -> None:
    url = aio_pika.connection.make_url("amqp://relay:p%40ss%2Fw0rd@broker.example:5672/crm")
    said = "could not log in amqp://relay:p%40ss%2Fw0rd@broker.example as relay with p@ss/w0rd"
    assert without_secret(said, url) == "could not log in amqp://relay:***@broker.example as relay with ***"


def test_the_sink_subscribes_to_the_events_its_entry_lists() -> None:
    sink: Sink = RabbitMqSink(broker_entry("crm", events=["customerAdded"]), {URL_ENV: BROKER_URL})
    assert sink.subscribes("customerAdded")
    assert not sink.subscribes("pointsIssued")


# --- configuration that cannot work: disabled ----------------------------------------------------


async def test_a_missing_url_variable_disables_the_sink_naming_the_variable(sinks: Callable[..., RabbitMqSink]) -> None:
    outcome = await sinks("crm", url=None).deliver(event())
    assert outcome.result == "disable"
    assert outcome.error is not None and URL_ENV in outcome.error and "not set" in outcome.error


@pytest.mark.parametrize(
    "value",
    [
        "https://relay:hunter2-secret@broker.example/",
        "relay:hunter2-secret@broker.example",
        "amqp://relay:hunter2-secret@:5672/",
        "amqp://relay:hunter2-secret@broker.example:99999/",
        "amqp://relay:hunter2-secret@[broker.example/",
    ],
)
async def test_a_variable_without_an_amqp_url_disables_the_sink_without_showing_the_password(
    value: str, sinks: Callable[..., RabbitMqSink]
) -> None:
    sink = sinks("crm", url=value)
    outcome = await sink.deliver(event())
    assert outcome.result == "disable"
    assert outcome.error is not None and URL_ENV in outcome.error
    assert "hunter2" not in outcome.error and "hunter2" not in repr(sink)


# --- delivery ------------------------------------------------------------------------------------


async def test_a_confirmed_event_is_a_persistent_json_message_with_the_event_id_routed_by_org_and_event_name(
    channel: AbstractChannel, exchange: str, sinks: Callable[..., RabbitMqSink]
) -> None:
    queue = await queue_on(channel, exchange, binding="42.customerAdded")
    delivery = event(org_id=42, event_name="customerAdded")

    outcome = await sinks(exchange).deliver(delivery)

    assert outcome.result == "delivered", outcome.error
    message = await queue.get(no_ack=True, fail=False)
    assert message is not None
    assert message.message_id == delivery.event_id
    assert message.routing_key == "42.customerAdded"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.content_type == "application/json"
    assert message.body == delivery.body
    assert message.type == "customerAdded"


async def test_a_missing_exchange_is_declared_a_durable_topic_exchange(
    channel: AbstractChannel, exchange: str, sinks: Callable[..., RabbitMqSink]
) -> None:
    outcome = await sinks(exchange).deliver(event())

    assert outcome.result == "delivered", outcome.error
    # It exists (a passive declare fails otherwise), and a declare as a durable topic exchange is
    # equivalent to it (the broker compares type and durability, and closes the channel if they differ).
    await channel.get_exchange(exchange, ensure=True)
    await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)


async def test_an_exchange_of_another_kind_is_retried_with_the_brokers_reason(
    channel: AbstractChannel, exchange: str, sinks: Callable[..., RabbitMqSink]
) -> None:
    await channel.declare_exchange(exchange, aio_pika.ExchangeType.DIRECT, durable=True)

    outcome = await sinks(exchange).deliver(event())

    assert outcome.result == "retry"
    assert outcome.error is not None and "inequivalent arg 'type'" in outcome.error and exchange in outcome.error


async def test_a_nacked_message_is_retried(channel: AbstractChannel, exchange: str, sinks: Callable[..., RabbitMqSink]) -> None:
    # A queue that holds one message and refuses more: the broker nacks what it cannot enqueue.
    queue = await queue_on(channel, exchange, **{"x-max-length": 1, "x-overflow": "reject-publish"})
    sink = sinks(exchange)

    first, second = event(), event()
    assert (await sink.deliver(first)).result == "delivered"
    outcome = await sink.deliver(second)

    assert outcome.result == "retry"
    assert outcome.error is not None and "Nack" in outcome.error
    assert set(await drained(queue)) == {first.event_id}


async def test_concurrent_first_deliveries_share_one_connection_and_are_all_confirmed(
    channel: AbstractChannel, exchange: str, sinks: Callable[..., RabbitMqSink]
) -> None:
    queue = await queue_on(channel, exchange)
    deliveries = [event(org_id=org_id) for org_id in range(1, 301)]
    async with TcpProxy(BROKER_HOST, BROKER_PORT) as proxy:
        sink = sinks(exchange, through(proxy.port))

        outcomes = await asyncio.gather(*(sink.deliver(delivery) for delivery in deliveries))

        assert [outcome.error for outcome in outcomes if outcome.result != "delivered"] == []
        assert proxy.accepted == 1
    assert set(await drained(queue)) == {delivery.event_id for delivery in deliveries}


# --- the broker unreachable, refusing or cut off -------------------------------------------------


async def test_wrong_credentials_are_retried_with_an_error_that_says_so_without_the_password(
    observer: AbstractConnection, sinks: Callable[..., RabbitMqSink]
) -> None:
    url = aio_pika.connection.make_url(BROKER_URL).with_password("hunter2-wrong")
    outcome = await sinks("crm", str(url)).deliver(event())

    assert outcome.result == "retry"
    assert outcome.error is not None and "user or password is wrong" in outcome.error
    assert "hunter2" not in outcome.error


async def test_an_unconfirmed_message_is_retried_after_the_attempts_timeout(
    channel: AbstractChannel, exchange: str, sinks: Callable[..., RabbitMqSink]
) -> None:
    await queue_on(channel, exchange)
    async with TcpProxy(BROKER_HOST, BROKER_PORT) as proxy:
        sink = sinks(exchange, through(proxy.port), timeout=0.5)
        assert (await sink.deliver(event())).result == "delivered"
        proxy.stall()

        outcome = await sink.deliver(event())

        assert outcome.result == "retry"
        assert outcome.error is not None and "had not confirmed" in outcome.error
        await proxy.restore()


async def test_a_broker_that_never_answers_is_retried_after_the_attempts_timeout(sinks: Callable[..., RabbitMqSink]) -> None:
    held: list[asyncio.StreamWriter] = []
    silent = await asyncio.start_server(lambda reader, writer: held.append(writer), "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        outcome = await sinks("crm", f"amqp://relay:hunter2@127.0.0.1:{port}/", timeout=0.3).deliver(event())
    finally:
        silent.close()
        for writer in held:
            writer.close()

    assert outcome.result == "retry"
    assert outcome.error is not None and f"127.0.0.1:{port}" in outcome.error and "no connection" in outcome.error


async def test_a_broker_that_is_down_is_not_knocked_on_by_every_delivery(sinks: Callable[..., RabbitMqSink]) -> None:
    knocks = 0

    def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal knocks
        knocks += 1
        writer.transport.abort()

    down = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = down.sockets[0].getsockname()[1]
    try:
        sink = sinks("crm", f"amqp://relay:hunter2@127.0.0.1:{port}/", first_backoff=60.0)
        outcomes = await asyncio.gather(*(sink.deliver(event()) for _ in range(50)))
        later = await sink.deliver(event())
    finally:
        down.close()

    assert {outcome.result for outcome in outcomes} == {"retry"}
    assert later.result == "retry"
    assert later.error is not None and "next attempt in" in later.error
    assert knocks == 1


async def test_a_cut_connection_loses_no_confirmed_event_and_deliveries_resume_when_it_is_back(
    channel: AbstractChannel, exchange: str, sinks: Callable[..., RabbitMqSink]
) -> None:
    queue = await queue_on(channel, exchange)
    async with TcpProxy(BROKER_HOST, BROKER_PORT) as proxy:
        sink = sinks(exchange, through(proxy.port), first_backoff=0.05, last_backoff=0.2)
        outcomes: dict[str, Outcome] = {}
        pending = iter([event(org_id=1 + number % 100) for number in range(5000)])
        in_flight: set[str] = set()
        in_flight_at_cut: set[str] = set()

        async def publisher() -> None:
            for delivery in pending:
                if proxy.is_cut:
                    return
                in_flight.add(delivery.event_id)
                outcomes[delivery.event_id] = await sink.deliver(delivery)
                in_flight.discard(delivery.event_id)
                confirmed = sum(outcome.result == "delivered" for outcome in outcomes.values())
                if confirmed >= 500 and not in_flight_at_cut:
                    in_flight_at_cut.update(in_flight)
                    await proxy.cut()

        # A hundred deliveries at once, as the relay runs them, until the cut.
        await asyncio.gather(*(publisher() for _ in range(100)))

        assert in_flight_at_cut, "the cut came when no delivery was in flight"
        assert {outcomes[event_id].result for event_id in in_flight_at_cut} <= {"delivered", "retry"}
        during_the_cut = await sink.deliver(event())
        assert during_the_cut.result == "retry"

        await proxy.restore()
        after = event()

        async def delivered_after() -> bool:
            return (await sink.deliver(after)).result == "delivered"

        await eventually(delivered_after, "a delivery after restore() is confirmed")
        assert proxy.accepted == 2

    queued = await drained(queue)
    reported_delivered = {event_id for event_id, outcome in outcomes.items() if outcome.result == "delivered"}
    assert reported_delivered - set(queued) == set(), "reported delivered but not in the queue"
    assert after.event_id in queued


async def test_close_closes_the_connection(channel: AbstractChannel, exchange: str, sinks: Callable[..., RabbitMqSink]) -> None:
    async with TcpProxy(BROKER_HOST, BROKER_PORT) as proxy:
        sink = sinks(exchange, through(proxy.port))
        assert (await sink.deliver(event())).result == "delivered"
        assert proxy.live == 1

        await sink.close()

        async def gone() -> bool:
            return proxy.live == 0

        await eventually(gone, "the connection is closed")
        after = await sink.deliver(event())
        assert after.result == "retry" and after.error is not None and "closed" in after.error
        assert proxy.accepted == 1
