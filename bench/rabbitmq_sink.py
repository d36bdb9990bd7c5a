"""Confirmed messages per second through the RabbitMQ sink, as the relay drives it: many deliveries at once on one sink.

Publishes `count` events of about 1 KB (the size of a customerAdded envelope) with `concurrency`
deliveries in flight, to an exchange of its own with one queue bound (so that every message is
enqueued before it is confirmed, as for a real consumer), and prints confirmed messages per second
and the latency's p50 and p99. The exchange and queue are deleted at the end.

    .venv/bin/python bench/rabbitmq_sink.py [count] [concurrency]

BENCH_AMQP_URL names the broker (amqp://guest:guest@127.0.0.1:5672/ by default). PROF=1 prints
cProfile's top functions.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import sys
import time
import uuid
from collections import Counter

import aio_pika

from patron.loop import run as run_in_patrons_loop
from patron.orgs.policy import Broker
from patron.relay.rabbitmq import RabbitMqSink
from patron.relay.sinks import Delivery, Outcome

URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
BODY = b'{"eventName":"customerAdded","data":' + b'{"x":"' + b"a" * 960 + b'"}}'


async def run(count: int, concurrency: int) -> None:
    exchange = f"patron-bench-{uuid.uuid4().hex[:10]}"
    observer = await aio_pika.connect(URL)
    channel = await observer.channel()
    await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, "#")
    sink = RabbitMqSink(Broker(name="bench", url_env="BENCH_AMQP_URL", exchange=exchange), {"BENCH_AMQP_URL": URL})
    numbers = iter(range(count))
    outcomes: list[Outcome] = []

    async def deliverer() -> None:
        for number in numbers:
            outcomes.append(await sink.deliver(Delivery(f"evt_{number}", "customerAdded", 1 + number % 50, BODY, 1)))

    try:
        await sink.deliver(Delivery("warm-up", "customerAdded", 1, BODY, 1))
        profile = cProfile.Profile() if os.environ.get("PROF") else None
        if profile:
            profile.enable()
        started = time.perf_counter()
        await asyncio.gather(*(deliverer() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
        if profile:
            profile.disable()
            pstats.Stats(profile).sort_stats(os.environ.get("SORT", "tottime")).print_stats(25)
    finally:
        await sink.close()
        await channel.exchange_delete(exchange)
        await observer.close()
    results = Counter(outcome.result for outcome in outcomes)
    latencies = sorted(outcome.latency_ms for outcome in outcomes)
    print(f"{count} deliveries, {concurrency} at once: {results['delivered'] / seconds:,.0f} confirmed messages/s "
          f"({dict(results)}); latency p50 {latencies[len(latencies) // 2]} ms, p99 {latencies[len(latencies) * 99 // 100]} ms")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    # The loop `patron relay` runs in (uvloop where it is installed).
    run_in_patrons_loop(run(count, concurrency))


if __name__ == "__main__":
    main()
