"""Scenarios 17-20 (issue #31, events): the relay's guarantees (events.md §2) under registration load and faults.

Each scenario has a database of its own on the private PostgreSQL cluster, an org file of its own
(stress/stress-org.toml's org under another id) with [[webhooks]] (allow_private = true, a
`whsec_` secret through secret_env) and one [[brokers]] entry (RabbitMQ at 127.0.0.1:5672,
guest/guest: an exchange and a queue of the run's own, deleted at the end), all subscribed to every
event; `patron serve` with 2 workers, and one or two real `patron relay` processes with
PATRON_EVENT_RETRY_SCALE=0.01, so that the schedule's retries (5 s, 5 min, 30 min, ...) come after
0.05 s, 3 s, 18 s, ... and a failing sink is probed every 0.05 s. The spent retries of one event
then take at least 0.8 x 993 s, about 13 minutes: longer than any fault here, so that nothing is
dead-lettered by the schedule itself.

The retailer's side runs on an event loop of its own in a thread: each webhook's receiver, a small
asyncio HTTP/1.1 server on 127.0.0.1 whose mode is `up`, `down` (listening socket closed and every
connection dropped: connection refused), `error_rate` (a 500 to that share of deliveries, at
random) or `delay` (every delivery answered after that many seconds), verifying each delivery's
Standard Webhooks signature with the standardwebhooks package; and a consumer of the run's queue.
Each receipt keeps (eventId, customerId, sequence, createdAt, received_at). A delivery refused with
a 500 is not a receipt; one answered late (delay) is, at its arrival: the consumer has it.

The registration load: 3 clients of the stress till, each every ~0.1 s a single add (some with a
referral code), a batch of 5 adds, an update of a last name, an update that changes nothing, or an
add re-sent with another city (an update through add).

17. The webhook's receiver down for 10 minutes under the load (60 s with STRESS_QUICK=1), then back;
    the time the webhook took to catch up is printed.
18. Three webhooks and the broker: while the load runs (60 s), one receiver answers 500 to 30 % of
    deliveries at random and another takes 20 s to answer each (past the relay's 15 s timeout);
    the third receiver and the broker are healthy, and their lag (receipt time minus the event's
    createdAt) must stay under 2 s. Afterwards both faulty receivers answer at once, for the
    catch-up: kept failing, the slow one would only get a 15 s probe at a time, and 30 % of random
    500s would leave about 0.3^8 of the events (one in 15,000) dead-lettered once the schedule's
    eight attempts are spent (about 16 minutes at this scale). Retries due after the load still
    wait for their step: the flaky sink's last events may take a few minutes to come.
19. Two relays at once under the load; one of them killed with SIGKILL three times (the first, the
    second, the first again), each restarted a second later.
20. The relay reaches RabbitMQ through a TCP proxy (tests' tcp_proxy.py, imported by path), cut
    mid-stream for 10 s and then for 1 s, each time restored.

Afterwards, once every sink has every event (or a drain deadline passed), the relays are stopped and
each scenario checks, from the database: every committed change produced its event (per customer and
request, each CREATE audit a customerAdded, each UPDATE audit whose changes hold more than
updated_on a customerUpdated, each ID_* audit a requestUpdated; no such event without its audit),
each customer's events numbered 1, 2, 3, ... in stream order; and from what the sinks got: each
sink received every event at least once, each customer's in sequence order (first receipts;
duplicates ignored). It prints the counts (committed changes, events, deliveries, duplicates, out of
order, lost) and passes when lost = 0 and out of order = 0 at every sink, every change has its
event, and, in 18, the lag rule holds.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.util
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, TypeVar

import httpx
import orjson

import abuse
import infra
from infra import LOG_DIR, ROOT, SECRET_KEY, STRESS, VENV_BIN, ForeignCpu, PatronServer, PgCluster, cluster_pids, free_port
from invariants import fetch
from load import Stats, body_of, client, items_of, mobiles, new_item, referral_codes, send
from scenarios import Result, check_invariants, log_findings, percentile

T = TypeVar("T")

RABBITMQ_HOST, RABBITMQ_PORT = "127.0.0.1", 5672
RABBITMQ_LOGIN = "guest:guest"
RETRY_SCALE = "0.01"
UPDATE = "/v1.1/customer/update"
# The events of an audit record (events.md §1); an UPDATE only when it changed more than updated_on.
UNREPORTED_CHANGES = frozenset({"updated_on"})
LAG_BOUND = 2.0  # seconds, scenario 18's rule for the healthy sinks
# Once the load has stopped and the faults are repaired: how long every sink may take to have every
# event. After scenario 17's 10 minutes, the webhook is tried again only at its oldest retry's next
# step (up to 2.6 minutes at this scale), then has some 45,000 events to catch up on.
DRAIN_SECONDS = 900.0
LOAD_CLIENTS, LOAD_PAUSE = 3, 0.1


# =============================================================================================
# What must hold: pure rules over plain data


@dataclass(frozen=True)
class AuditRow:
    customer_id: int
    request_id: str
    event_type: str
    changed: frozenset[str]  # the fields its changes name


@dataclass(frozen=True)
class EventRow:
    event_id: str
    customer_id: int
    sequence: int
    name: str
    request_id: str
    position: int | None
    created_at: float  # Unix seconds


@dataclass(frozen=True)
class Receipt:
    """One delivery a sink accepted, as the retailer's side saw it."""

    event_id: str
    customer_id: int
    sequence: int
    created_at: float  # the envelope's createdAt, in Unix seconds
    received_at: float  # time.time() at arrival
    arrival: int  # the sink's own count of receipts: their order


def expected_event(audit: AuditRow) -> str | None:
    """The event a committed change must have produced, or None when it reports nothing."""
    if audit.event_type == "CREATE":
        return "customerAdded"
    if audit.event_type == "UPDATE":
        return "customerUpdated" if audit.changed - UNREPORTED_CHANGES else None
    if audit.event_type.startswith("ID_"):
        return "requestUpdated"
    return None


@dataclass
class Matching:
    """The audit records beside the events: every committed change with its event, and back."""

    changes: int = 0  # audit records that must have produced an event
    silent: int = 0  # audit records that report nothing (an update that changed nothing)
    by_kind: Counter = field(default_factory=Counter)
    missing: int = 0  # changes without their event
    stray: int = 0  # customerAdded/customerUpdated/requestUpdated without their change
    unpositioned: int = 0
    sequence_faults: int = 0  # customers whose events are not numbered 1..n in stream order
    samples: list[str] = field(default_factory=list)

    def note(self, sample: str) -> None:
        if len(self.samples) < 8:
            self.samples.append(sample)


def match(audits: Iterable[AuditRow], events: Sequence[EventRow]) -> Matching:
    result = Matching()
    wanted: Counter = Counter()
    for audit in audits:
        name = expected_event(audit)
        if name is None:
            result.silent += 1
            continue
        result.changes += 1
        result.by_kind[audit.event_type if not audit.event_type.startswith("ID_") else "ID_*"] += 1
        wanted[(audit.customer_id, audit.request_id, name)] += 1
    reported = {"customerAdded", "customerUpdated", "requestUpdated"}
    have = Counter((e.customer_id, e.request_id, e.name) for e in events if e.name in reported)
    for key in wanted.keys() | have.keys():
        short, extra = wanted[key] - have[key], have[key] - wanted[key]
        if short > 0:
            result.missing += short
            result.note(f"customer {key[0]}, request {key[1]}: {short} change(s) without a {key[2]} event")
        if extra > 0:
            result.stray += extra
            result.note(f"customer {key[0]}, request {key[1]}: {extra} {key[2]} event(s) without their change")
    per_customer: dict[int, list[EventRow]] = defaultdict(list)
    for event in events:
        if event.position is None:
            result.unpositioned += 1
        per_customer[event.customer_id].append(event)
    for customer_id, own in per_customer.items():
        in_stream = sorted(own, key=lambda e: (e.position is None, e.position or 0))
        numbers = [e.sequence for e in in_stream]
        if numbers != list(range(1, len(numbers) + 1)):
            result.sequence_faults += 1
            result.note(f"customer {customer_id}: sequences in stream order {numbers[:12]}")
    return result


@dataclass
class SinkTally:
    """What one sink got, against the events it subscribes to (every one, here)."""

    sink: str
    events: int = 0
    deliveries: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    lost: int = 0
    unknown: int = 0  # receipts of events the database does not hold, or that disagree with it
    lags: list[float] = field(default_factory=list)  # of first receipts, in seconds
    created: list[float] = field(default_factory=list)  # createdAt of each first receipt, beside its lag
    first_receipts: list[float] = field(default_factory=list)  # received_at of each first receipt
    samples: list[str] = field(default_factory=list)

    def note(self, sample: str) -> None:
        if len(self.samples) < 6:
            self.samples.append(sample)


def tally(sink: str, events: Sequence[EventRow], receipts: Sequence[Receipt]) -> SinkTally:
    """Lost: an event never received. Out of order: a customer's event first received after a
    later event of that customer was first received. Duplicates: receipts beyond an event's first."""
    known = {event.event_id: event for event in events}
    result = SinkTally(sink, events=len(events), deliveries=len(receipts))
    seen: set[str] = set()
    highest: dict[int, int] = {}
    for receipt in sorted(receipts, key=lambda r: r.arrival):
        if receipt.event_id in seen:
            result.duplicates += 1
            continue
        seen.add(receipt.event_id)
        stored = known.get(receipt.event_id)
        if stored is None or (stored.customer_id, stored.sequence) != (receipt.customer_id, receipt.sequence):
            result.unknown += 1
            result.note(f"received {receipt.event_id} (customer {receipt.customer_id}, sequence {receipt.sequence}): "
                        f"{'not in the database' if stored is None else f'the database says sequence {stored.sequence}'}")
            continue
        result.lags.append(receipt.received_at - receipt.created_at)
        result.created.append(receipt.created_at)
        result.first_receipts.append(receipt.received_at)
        before = highest.get(receipt.customer_id, 0)
        if receipt.sequence < before:
            result.out_of_order += 1
            result.note(f"customer {receipt.customer_id}: sequence {receipt.sequence} first received after {before}")
        highest[receipt.customer_id] = max(before, receipt.sequence)
    lost = [event for event in events if event.event_id not in seen]
    result.lost = len(lost)
    for event in lost[:3]:
        result.note(f"never received: {event.name} {event.event_id} of customer {event.customer_id}, sequence {event.sequence}")
    return result


def lag_timeline(receipts_lags: Sequence[tuple[float, float]], since: float, width: float = 10.0) -> list[float]:
    """The largest lag of the events created in each `width` seconds from `since`: (createdAt, lag) pairs."""
    worst: dict[int, float] = {}
    for created_at, lag in receipts_lags:
        slot = max(0, int((created_at - since) // width))
        worst[slot] = max(worst.get(slot, 0.0), lag)
    return [worst.get(slot, 0.0) for slot in range(max(worst, default=-1) + 1)]


def longest_pause(moments: Sequence[float], since: float, until: float) -> float:
    """The longest stretch between `since` and `until` in which no first receipt came."""
    inside = sorted(m for m in moments if since <= m <= until)
    edges = [since, *inside, until]
    return max((b - a for a, b in zip(edges, edges[1:])), default=0.0)


# =============================================================================================
# The retailer's side: webhook receivers and a broker consumer, on an event loop of their own

Mode = Literal["up", "down", "error_rate", "delay"]


class Receiver:
    """A webhook endpoint on 127.0.0.1: HTTP/1.1 with keep-alive, as httpx (the relay's client) speaks it."""

    def __init__(self, name: str, secret: str) -> None:
        from standardwebhooks import Webhook

        self.name = name
        self.secret = secret
        self.port = free_port()
        self.mode: Mode = "up"
        self.error_rate = 0.0
        self.delay = 0.0
        self.receipts: list[Receipt] = []
        self.answers: Counter = Counter()  # status answered (or "dropped") -> count
        self.bad: list[str] = []  # deliveries whose signature or body did not hold
        self.bad_count = 0
        self._verifier = Webhook(secret)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._random = random.Random()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{self.name}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def set_mode(self, mode: Mode, value: float = 0.0) -> None:
        if mode == "down":
            self.mode = "down"
            server, self._server = self._server, None
            if server is not None:
                server.close()
            for writer in list(self._connections):
                writer.transport.abort()
            return
        self.mode, self.error_rate, self.delay = mode, value if mode == "error_rate" else 0.0, value if mode == "delay" else 0.0
        if self._server is None:
            await self.start()

    async def stop(self) -> None:
        await self.set_mode("down")

    def _bad(self, what: str) -> None:
        self.bad_count += 1
        if len(self.bad) < 6:
            self.bad.append(what[:300])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        key, value = line.split(":", 1)
                        headers[key.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status = await self._answer(lines[0], headers, body)
                if self.mode == "down":
                    break
                reason = {200: "OK", 401: "Unauthorized", 500: "Internal Server Error"}.get(status, "Status")
                text = b"ok" if status == 200 else b"refused"
                writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(text)}\r\n\r\n".encode() + text)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, OSError, ValueError):
            pass
        finally:
            self._connections.discard(writer)
            writer.transport.abort()

    async def _answer(self, request_line: str, headers: dict[str, str], body: bytes) -> int:
        if not request_line.startswith("POST "):
            self._bad(f"not a POST: {request_line}")
            self.answers[405] += 1
            return 405
        if self.mode == "error_rate" and self._random.random() < self.error_rate:
            self.answers[500] += 1
            return 500
        from standardwebhooks import WebhookVerificationError

        try:
            envelope = self._verifier.verify(body, headers)
        except WebhookVerificationError as refused:
            self._bad(f"signature refused ({refused}): webhook-id {headers.get('webhook-id')}")
            self.answers[401] += 1
            return 401
        receipt = _receipt(envelope, len(self.receipts))
        if receipt is None or receipt.event_id != headers.get("webhook-id"):
            self._bad(f"not an event envelope, or webhook-id {headers.get('webhook-id')} is not its eventId: {body[:200]!r}")
        else:
            self.receipts.append(receipt)
        if self.mode == "delay" and self.delay:
            await asyncio.sleep(self.delay)
        self.answers[200] += 1
        return 200


def _receipt(envelope: Any, arrival: int) -> Receipt | None:
    try:
        customer_id = int(str(envelope["refId"]).rsplit("_", 1)[1])
        return Receipt(str(envelope["eventId"]), customer_id, int(envelope["sequence"]), int(envelope["createdAt"]) / 1000,
                       time.time(), arrival)
    except (KeyError, TypeError, ValueError, IndexError):
        return None


class BrokerConsumer:
    """The run's own durable topic exchange and queue on RabbitMQ (bound to the org's routing keys),
    consumed with acknowledgements; both deleted by close()."""

    def __init__(self, name: str, org_id: int, exchange: str) -> None:
        self.name = name
        self.org_id = org_id
        self.exchange_name = exchange
        self.queue_name = exchange + ".queue"
        self.receipts: list[Receipt] = []
        self.bad: list[str] = []
        self.bad_count = 0
        self._connection: Any = None
        self._queue: Any = None
        self._exchange: Any = None
        self._consumer_tag: str | None = None

    async def start(self) -> None:
        import aio_pika

        self._connection = await aio_pika.connect(f"amqp://{RABBITMQ_LOGIN}@{RABBITMQ_HOST}:{RABBITMQ_PORT}/")
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=500)
        # Declared as the sink declares it (a durable topic exchange), before any event is published.
        self._exchange = await channel.declare_exchange(self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
        self._queue = await channel.declare_queue(self.queue_name, durable=True)
        await self._queue.bind(self._exchange, routing_key=f"{self.org_id}.#")
        self._consumer_tag = await self._queue.consume(self._on_message)

    async def _on_message(self, message: Any) -> None:
        try:
            envelope = orjson.loads(message.body)
        except orjson.JSONDecodeError:
            envelope = None
        receipt = _receipt(envelope, len(self.receipts))
        if receipt is None:
            self._bad(f"not an event envelope: {message.body[:200]!r}")
        else:
            expected_key = f"{envelope.get('orgId')}.{envelope.get('eventName')}"
            if message.message_id != receipt.event_id or message.routing_key != expected_key or message.delivery_mode != 2:
                self._bad(f"event {receipt.event_id}: message_id {message.message_id}, routing key {message.routing_key} "
                          f"(want {expected_key}), delivery mode {message.delivery_mode}")
            self.receipts.append(receipt)
        await message.ack()

    def _bad(self, what: str) -> None:
        self.bad_count += 1
        if len(self.bad) < 6:
            self.bad.append(what[:300])

    async def close(self) -> None:
        if self._connection is None:
            return
        with contextlib.suppress(Exception):
            if self._queue is not None:
                if self._consumer_tag is not None:
                    await self._queue.cancel(self._consumer_tag)
                await self._queue.delete(if_unused=False, if_empty=False)
            if self._exchange is not None:
                await self._exchange.delete()
        with contextlib.suppress(Exception):
            await self._connection.close()
        self._connection = None


class SinkSide:
    """The receivers and the consumer, served by an event loop of their own in a daemon thread, so
    that the load's clients and the checks never delay a receipt's timestamp."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stress-sinks", daemon=True)
        self._thread.start()
        self.receivers: dict[str, Receiver] = {}
        self.consumer: BrokerConsumer | None = None

    async def call(self, work: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))

    async def add_receiver(self, name: str, secret: str) -> Receiver:
        receiver = Receiver(name, secret)
        await self.call(receiver.start())
        self.receivers[name] = receiver
        return receiver

    async def add_consumer(self, name: str, org_id: int, exchange: str) -> BrokerConsumer:
        consumer = BrokerConsumer(name, org_id, exchange)
        self.consumer = consumer  # closed at the end even when start() fails part way
        await self.call(consumer.start())
        return consumer

    async def set_mode(self, name: str, mode: Mode, value: float = 0.0) -> None:
        await self.call(self.receivers[name].set_mode(mode, value))

    def receipts(self, sink: str) -> list[Receipt]:
        if self.consumer is not None and sink == self.consumer.name:
            return list(self.consumer.receipts)
        return list(self.receivers[sink].receipts)

    def sinks(self) -> list[str]:
        return [*self.receivers, *([self.consumer.name] if self.consumer else [])]

    async def close(self) -> None:
        for receiver in self.receivers.values():
            with contextlib.suppress(Exception):
                await self.call(receiver.stop())
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                await self.call(self.consumer.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()


# =============================================================================================
# `patron relay`, and the broker's TCP proxy


_relay_logs = iter(range(1000))


@dataclass
class RelayProcess:
    """`patron relay` in a session of its own (SIGKILL reaches all of it), its log in the run's logs."""

    database_url: str
    env: dict[str, str]
    name: str = "relay"
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log_path: Path = field(default_factory=lambda: LOG_DIR / f"relay-{next(_relay_logs)}.log")
    starts: int = 0

    def start(self) -> None:
        env = {
            **os.environ,
            "PATRON_DATABASE_URL": self.database_url,
            "PATRON_SECRET_KEY": SECRET_KEY,
            "PATRON_EVENT_RETRY_SCALE": RETRY_SCALE,
            **self.env,
        }
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "patron"), "relay", "--metrics-port", str(self.metrics_port)],
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        if self.starts == 0:
            infra._cleanups.append(self.stop)
        self.starts += 1

    def wait_ready(self, timeout: float = 60) -> float:
        """Until its metrics answer: the process is up and serving."""
        started = time.monotonic()
        while time.monotonic() < started + timeout:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"patron relay exited with {self.process.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"patron relay did not serve its metrics within {timeout}s; see {self.log_path}")

    def kill9(self) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        infra.stop_group(self.process, grace=40)

    def log_text(self) -> str:
        return infra.log_text(self.log_path)


def tcp_proxy_module() -> ModuleType:
    """The tests' TCP proxy (tests/support/tcp_proxy.py), imported by its path."""
    spec = importlib.util.spec_from_file_location("patron_stress_tcp_proxy", ROOT / "tests" / "support" / "tcp_proxy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# =============================================================================================
# One scenario's stage: database, org file, sinks, server, relays


@dataclass
class Stage:
    number: int
    org_id: int
    url: str
    org_file: Path
    server: PatronServer
    side: SinkSide
    relays: list[RelayProcess]
    proxy: Any  # tcp_proxy.ProxyThread, when the broker is reached through one
    cluster: PgCluster
    marks: dict[str, float] = field(default_factory=dict)  # time.time() of the scenario's moments
    foreign_cpu: float | None = None  # % of a core used by other processes on the machine during the load
    cpu: dict[str, float] = field(default_factory=dict)  # % of a core used by each party of the run during the load

    def ours(self) -> set[int]:
        relays = {relay.process.pid for relay in self.relays if relay.process is not None}
        return set(self.server.group_pids()) | cluster_pids(self.cluster) | relays

    def mark(self, what: str) -> float:
        self.marks[what] = time.time()
        return self.marks[what]


BROKER = "queue"


def org_text(number: int, org_id: int, hooks: dict[str, str], broker_exchange: str) -> str:
    """stress/stress-org.toml's org under the scenario's id, with its webhooks (name -> url) and broker."""
    text = (STRESS / "stress-org.toml").read_text()
    text = text.replace("id = 880001", f"id = {org_id}", 1).replace('name = "Stress Retail"', f'name = "Stress Events {number}"', 1)
    sinks = "".join(
        f'\n[[webhooks]]\nname = "{name}"\nurl = "{url}"\nsecret_env = "{_secret_env(name)}"\nallow_private = true\n'
        for name, url in hooks.items()
    )
    sinks += (f'\n[[brokers]]\nname = "{BROKER}"\nkind = "rabbitmq"\nurl_env = "STRESS_EVENTS_BROKER_URL"\n'
              f'exchange = "{broker_exchange}"\n')
    return text + sinks


def _secret_env(hook: str) -> str:
    return f"STRESS_EVENTS_{hook.upper()}_SECRET"


@contextlib.asynccontextmanager
async def staged(cluster: PgCluster, number: int, hooks: Sequence[str], *, relays: int = 1,
                 broker_via_proxy: bool = False) -> AsyncIterator[Stage]:
    org_id = 880000 + number
    side = SinkSide()
    proxy = None
    server: PatronServer | None = None
    started: list[RelayProcess] = []
    folder = Path(tempfile.mkdtemp(prefix=f"patron-stress-events-{number}-"))
    try:
        secrets_of = {name: "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode() for name in hooks}
        urls = {name: (await side.add_receiver(name, secrets_of[name])).url for name in hooks}
        exchange = f"patron.stress.events.{number}.{secrets.token_hex(4)}"
        await side.add_consumer(BROKER, org_id, exchange)
        broker_port = RABBITMQ_PORT
        if broker_via_proxy:
            proxy = tcp_proxy_module().ProxyThread(RABBITMQ_HOST, RABBITMQ_PORT)
            broker_port = proxy.port
        env = {_secret_env(name): secret for name, secret in secrets_of.items()}
        env["STRESS_EVENTS_BROKER_URL"] = f"amqp://{RABBITMQ_LOGIN}@127.0.0.1:{broker_port}/"
        org_file = folder / "events-org.toml"
        org_file.write_text(org_text(number, org_id, urls, exchange))
        url = await cluster.create_database(f"stress_events_{number}")
        await asyncio.to_thread(infra.prepare_database, url, org_file)
        server = PatronServer(url, workers=2)
        await asyncio.to_thread(server.start)
        await asyncio.to_thread(abuse._warm_till, server)
        for index in range(relays):
            relay = RelayProcess(url, env, name=f"relay {'AB'[index] if relays > 1 else ''}".strip())
            relay.start()
            started.append(relay)
        for relay in started:
            await asyncio.to_thread(relay.wait_ready)
        yield Stage(number, org_id, url, org_file, server, side, started, proxy, cluster)
    finally:
        for relay in started:
            await asyncio.to_thread(relay.stop)
        if server is not None:
            await asyncio.to_thread(server.stop)
        if proxy is not None:
            await asyncio.to_thread(proxy.stop)
        await side.close()
        shutil.rmtree(folder, ignore_errors=True)


# =============================================================================================
# The registration load


@dataclass
class LoadReport:
    stats: Stats = field(default_factory=Stats)
    kinds: Counter = field(default_factory=Counter)  # requests answered, by kind

    def line(self, seconds: float) -> str:
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(self.kinds.items()))
        return (f"registration load {seconds:.0f} s, {LOAD_CLIENTS} clients: {kinds}; HTTP {dict(self.stats.statuses)}, "
                f"item codes {dict(self.stats.item_codes)}")


async def _post(http: httpx.AsyncClient, path: str, body: bytes, stats: Stats, deadline: float) -> int | None:
    """An update, sent again while it has no answer (or a 503) until the deadline: the status, or None."""
    stats.requests += 1
    while True:
        stats.sent += 1
        try:
            response = await http.post(path, content=body)
        except httpx.TransportError as exc:
            stats.no_answer[type(exc).__name__] += 1
            response = None
        if response is not None:
            stats.answered += 1
            stats.statuses[response.status_code] += 1
            if response.status_code not in (429, 503):
                if response.status_code != 200:
                    stats.note_unexpected(f"{path} HTTP {response.status_code}: {response.text}")
                return response.status_code
        if time.monotonic() > deadline:
            stats.lost += 1
            return None
        stats.retried += 1
        await asyncio.sleep(0.2 * (0.5 + random.random()))


async def registration_load(stage: Stage, seconds: float, report: LoadReport) -> None:
    """Single adds (a fifth with a referral code), batches of 5, updates that change a last name,
    updates that change nothing and adds re-sent with another city, from LOAD_CLIENTS clients."""
    end = time.monotonic() + seconds
    deadline = end + 60
    codes: list[str] = []
    stats = report.stats
    others = ForeignCpu(stage.ours)
    parties = _cpu_ticks(stage)
    began = time.monotonic()

    def took(answer: Any, sent: list[dict[str, Any]], kind: str) -> list[str]:
        if answer is None:
            return []
        items = items_of(answer)
        if answer.status != 200 or len(items) != len(sent):
            stats.note_unexpected(f"{kind}: HTTP {answer.status}: {answer.text}")
        report.kinds[kind] += 1
        done = []
        for item, got in zip(sent, items):
            code = got.get("item_status", {}).get("code")
            stats.item_codes[code] += 1
            if code == "1000":
                done.append(item["mobile"])
        return done

    async def one_client(index: int) -> None:
        fresh = mobiles(stage.number, index)
        known: dict[str, dict[str, Any]] = {}  # mobile -> the item last sent for it
        async with client(stage.server.base, timeout=15) as http:
            while time.monotonic() < end:
                roll = random.random()
                if roll < 0.45 or len(known) < 5:
                    code = random.choice(codes) if codes and random.random() < 0.2 else None
                    item = new_item(next(fresh), code)
                    answer = await send(http, body_of([item]), stats, deadline, retry_statuses=(429, 503))
                    for mobile in took(answer, [item], "single add (new)"):
                        known[mobile] = item
                        if random.random() < 0.05:
                            codes.extend(await referral_codes(http, [mobile]))
                elif roll < 0.6:
                    items = [new_item(next(fresh)) for _ in range(5)]
                    answer = await send(http, body_of(items), stats, deadline, retry_statuses=(429, 503))
                    for mobile in took(answer, items, "batch of 5 adds"):
                        known[mobile] = next(i for i in items if i["mobile"] == mobile)
                elif roll < 0.8:
                    mobile = random.choice(list(known))
                    known[mobile] = {**known[mobile], "lastname": f"Renamed{random.randint(0, 10**6)}"}
                    status = await _post(http, UPDATE, orjson.dumps(
                        {"root": {"customer": {"mobile": mobile, "lastname": known[mobile]["lastname"]}}}), stats, deadline)
                    report.kinds["update (last name)"] += status == 200
                elif roll < 0.88:
                    mobile = random.choice(list(known))
                    status = await _post(http, UPDATE, orjson.dumps(
                        {"root": {"customer": {"mobile": mobile, "lastname": known[mobile]["lastname"]}}}), stats, deadline)
                    report.kinds["update changing nothing"] += status == 200
                else:
                    mobile = random.choice(list(known))
                    city = random.choice(["Pune", "Mumbai", "Nagpur", "Nashik", "Thane"])
                    item = {**known[mobile], "custom_fields": {"field": [{"name": "city", "value": city}]}}
                    item.pop("referral_code", None)
                    answer = await send(http, body_of([item]), stats, deadline, retry_statuses=(429, 503))
                    if took(answer, [item], "add re-sent (city)"):
                        known[mobile] = item
                await asyncio.sleep(LOAD_PAUSE * random.uniform(0.5, 1.5))

    await asyncio.gather(*(one_client(i) for i in range(LOAD_CLIENTS)))
    stage.foreign_cpu = others.sample()
    after, seconds_taken = _cpu_ticks(stage), time.monotonic() - began
    stage.cpu = {party: 100.0 * (after[party] - ticks) / _TICKS / seconds_taken
                 for party, ticks in parties.items() if party in after and after[party] >= ticks}


_TICKS = os.sysconf("SC_CLK_TCK")


def _ticks_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def _cpu_ticks(stage: Stage) -> dict[str, int]:
    """CPU ticks used so far by each relay process, the server's workers and this process (load and sinks)."""
    found: dict[str, int] = {}
    for relay in stage.relays:
        if relay.process is not None and (ticks := _ticks_of(relay.process.pid)) is not None:
            found[f"{relay.name} (pid {relay.process.pid})"] = ticks
    workers = [t for pid in stage.server.group_pids() if (t := _ticks_of(pid)) is not None]
    found["patron serve"] = sum(workers)
    found["PostgreSQL"] = sum(t for pid in cluster_pids(stage.cluster) if (t := _ticks_of(pid)) is not None)
    found["this process (load, receivers, consumer)"] = _ticks_of(os.getpid()) or 0
    return found


# =============================================================================================
# Draining and judging


async def _events(stage: Stage) -> list[EventRow]:
    rows = await fetch(stage.url, f"SELECT event_id, customer_id, sequence, name, request_id, position, created_at "
                                  f"FROM events WHERE org_id = {stage.org_id}")
    return [EventRow(r[0], int(r[1]), int(r[2]), r[3], r[4], r[5], _unix(r[6])) for r in rows]


def _unix(moment: Any) -> float:
    import datetime as dt

    return moment.replace(tzinfo=dt.timezone.utc).timestamp()


async def _audits(stage: Stage) -> list[AuditRow]:
    rows = await fetch(stage.url, f"SELECT customer_id, request_id, event_type, changes FROM customer_audits "
                                  f"WHERE org_id = {stage.org_id}")
    audits = []
    for customer_id, request_id, event_type, changes in rows:
        parsed = orjson.loads(changes) if isinstance(changes, (str, bytes)) else changes
        names = frozenset(str(change.get("field")) for change in parsed or [] if isinstance(change, dict))
        audits.append(AuditRow(int(customer_id), request_id, event_type, names))
    return audits


async def drain(stage: Stage, timeout: float = DRAIN_SECONDS) -> float:
    """Until every sink has received every event the database holds (or `timeout`): seconds waited."""
    started = time.monotonic()
    while True:
        ids = {event.event_id for event in await _events(stage)}
        behind = [sink for sink in stage.side.sinks() if ids - {r.event_id for r in stage.side.receipts(sink)}]
        if not behind or time.monotonic() - started > timeout:
            return time.monotonic() - started
        await asyncio.sleep(1.0)


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.0f} s"


async def judge(result: Result, stage: Stage, load: LoadReport, load_window: tuple[float, float], *,
                lag_judged: Sequence[str] = ()) -> dict[str, SinkTally]:
    """The load's line; then, the relays stopped, the audits compared with the events, and the events
    with what each sink received."""
    result.lines.append(load.line(load_window[1] - load_window[0]))
    for relay in stage.relays:
        await asyncio.to_thread(relay.stop)
    await asyncio.sleep(0.5)  # a publish confirmed just before the stop reaches the consumer
    result.take(load.stats)
    busy = ""
    if stage.foreign_cpu is not None:
        busy = f" (other processes on this {os.cpu_count()}-core machine used {stage.foreign_cpu:.0f} % of a core meanwhile)"
        result.lines.append(f"during the load, other processes than the run's used {stage.foreign_cpu:.0f} % of a core "
                            f"({os.cpu_count()} cores); the run's: "
                            + ", ".join(f"{party} {used:.0f} %" for party, used in stage.cpu.items()))
    if load.stats.unexpected:
        result.lines.append(f"unexpected answers ({load.stats.unexpected_count}): {load.stats.unexpected[:3]}")
    events = await _events(stage)
    matching = match(await _audits(stage), events)
    names = Counter(event.name for event in events)
    result.lines.append(
        f"committed changes {matching.changes} ({', '.join(f'{k} {v}' for k, v in sorted(matching.by_kind.items()))}; "
        f"{matching.silent} updates that changed nothing, no event due), events {len(events)} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(names.items()))})"
    )
    result.lines.append(
        f"changes without their event {matching.missing}, events without their change {matching.stray}, "
        f"customers whose sequences are not 1..n in stream order {matching.sequence_faults}, unpositioned events {matching.unpositioned}"
    )
    result.lines += [f"  {sample}" for sample in matching.samples]
    if matching.missing or matching.stray:
        result.failures.append(f"{matching.missing} committed changes without their event, {matching.stray} events without their change")
    if matching.sequence_faults or matching.unpositioned:
        result.failures.append(f"{matching.sequence_faults} customers' sequences broken, {matching.unpositioned} events never positioned")

    attempts = await fetch(stage.url, f"SELECT sink, result, count(*) FROM event_attempts WHERE org_id = {stage.org_id} "
                                      "GROUP BY sink, result ORDER BY sink, result")
    attempted: dict[str, list[str]] = defaultdict(list)
    for sink, verdict, count in attempts:
        attempted[sink].append(f"{verdict} {count}")
    held = await fetch(stage.url, f"SELECT sink, status, count(*) FROM event_retries WHERE org_id = {stage.org_id} GROUP BY sink, status")
    sinks_rows = await fetch(stage.url, f"SELECT sink, disabled_at, disabled_reason FROM event_sinks WHERE org_id = {stage.org_id}")

    tallies: dict[str, SinkTally] = {}
    totals = Counter()
    for sink in stage.side.sinks():
        t = tally(sink, events, stage.side.receipts(sink))
        tallies[sink] = t
        totals.update(deliveries=t.deliveries, duplicates=t.duplicates, out_of_order=t.out_of_order, lost=t.lost)
        lags = t.lags
        pause = longest_pause(t.first_receipts, *load_window)
        extra = ""
        if sink in stage.side.receivers:
            receiver = stage.side.receivers[sink]
            extra = f"; answered {dict(sorted(receiver.answers.items(), key=lambda kv: str(kv[0])))}"
            bad, bad_count = receiver.bad, receiver.bad_count
        else:
            assert stage.side.consumer is not None
            bad, bad_count = stage.side.consumer.bad, stage.side.consumer.bad_count
        result.lines.append(
            f"sink {sink}: events {t.events}, deliveries {t.deliveries}, duplicates {t.duplicates}, "
            f"out of order {t.out_of_order}, lost {t.lost}{extra}"
        )
        result.lines.append(
            f"  lag (receipt - createdAt) p50 {_s(percentile(lags, 50))}, p99 {_s(percentile(lags, 99))}, "
            f"max {_s(max(lags, default=0.0))}; longest pause in receipts during the load {_s(pause)}; "
            f"relay's attempts: {', '.join(attempted.get(sink, [])) or 'none'}"
        )
        timeline = lag_timeline(list(zip(t.created, lags)), load_window[0])
        result.lines.append("  largest lag of the events created in each 10 s of the load: "
                            + " ".join(f"{lag:.1f}" for lag in timeline))
        result.lines += [f"  {sample}" for sample in t.samples]
        if t.lost or t.out_of_order:
            result.failures.append(f"sink {sink}: lost {t.lost}, out of order {t.out_of_order}")
        if t.unknown:
            result.failures.append(f"sink {sink}: {t.unknown} receipts of events the database does not hold as sent")
        if bad_count:
            result.failures.append(f"sink {sink}: {bad_count} deliveries malformed or wrongly signed: {bad[:3]}")
        if sink in lag_judged:
            over = sum(1 for lag in lags if lag >= LAG_BOUND)
            result.lines.append(f"  lag rule (under {LAG_BOUND:g} s at a healthy sink): {over} events at or over it")
            if over:
                result.lines += await _where_late(stage, sink, stage.side.receipts(sink), LAG_BOUND)
            if over:
                result.failures.append(f"sink {sink}: {over} events arrived {LAG_BOUND:g} s or more after their createdAt "
                                       f"(max {max(lags):.2f} s) while other sinks failed{busy}")
    result.lines.append(
        f"counts: committed changes {matching.changes}, events {len(events)}, deliveries {totals['deliveries']}, "
        f"duplicates {totals['duplicates']}, out of order {totals['out_of_order']}, lost {totals['lost']}"
    )
    leftovers = [f"{sink} {status} {count}" for sink, status, count in held]
    if leftovers:
        result.lines.append(f"retry rows left at the end: {', '.join(leftovers)}")
    disabled = [f"{sink} ({reason})" for sink, at, reason in sinks_rows if at is not None]
    if disabled:
        result.failures.append(f"sinks disabled: {disabled}")
    for relay in stage.relays:
        tracebacks, endings = log_findings(relay)  # type: ignore[arg-type]  # it reads log_text() only
        if tracebacks:
            result.lines.append(f"{relay.name}'s log ({relay.log_path}): {tracebacks} tracebacks: {endings}")
    tracebacks, endings = log_findings(stage.server)
    if tracebacks:
        result.lines.append(f"server log: {tracebacks} tracebacks: {endings}")
    await check_invariants(result, stage.url, stage.org_id, stage.org_file)
    return tallies


async def _where_late(stage: Stage, sink: str, receipts: Sequence[Receipt], bound: float) -> list[str]:
    """Where the late events' time went: before the relay's first attempt at this sink (positioning,
    or the sink's worker busy with an earlier pass), or between that attempt and the receipt; and
    when the other sinks first attempted the same events (late everywhere: positioning)."""
    firsts: dict[str, Receipt] = {}
    for receipt in receipts:
        firsts.setdefault(receipt.event_id, receipt)
    late = {r.event_id: r for r in firsts.values() if r.received_at - r.created_at >= bound}
    if not late:
        return []
    ids = ", ".join(f"'{event_id}'" for event_id in list(late)[:2000])
    rows = await fetch(stage.url, f"SELECT event_id, sink, min(attempted_at) FROM event_attempts WHERE org_id = {stage.org_id} "
                                  f"AND event_id IN ({ids}) GROUP BY event_id, sink")
    attempted: dict[str, dict[str, float]] = defaultdict(dict)
    for event_id, attempt_sink, at in rows:
        attempted[event_id][attempt_sink] = _unix(at)
    held = [attempted[e][sink] - r.created_at for e, r in late.items() if sink in attempted[e]]
    wire = [r.received_at - attempted[e][sink] for e, r in late.items() if sink in attempted[e]]
    everywhere = sum(1 for e, r in late.items()
                     if attempted[e] and min(attempted[e].values()) - r.created_at >= bound / 2)
    lines = [f"  of its {len(late)} late events: first attempted by the relay p50 {_s(percentile(held, 50))}, max "
             f"{_s(max(held, default=0.0))} after createdAt; then on the wire p50 {_s(percentile(wire, 50))}, max "
             f"{_s(max(wire, default=0.0))}; {everywhere} were first attempted {bound / 2:g} s or more late at every sink "
             "(positioned late)"]
    for event_id, receipt in sorted(late.items(), key=lambda kv: kv[1].created_at)[:3]:
        at = {name: round(moment - receipt.created_at, 2) for name, moment in sorted(attempted[event_id].items())}
        lines.append(f"    {event_id}: received {receipt.received_at - receipt.created_at:.2f} s after createdAt; "
                     f"first attempts (s after createdAt) {at}")
    return lines


async def _drained(result: Result, stage: Stage) -> None:
    before = _cpu_ticks(stage)
    waited = await drain(stage)
    after = _cpu_ticks(stage)
    used = ", ".join(f"{party} {100.0 * (after[party] - ticks) / _TICKS / max(waited, 1e-3):.0f} %"
                     for party, ticks in before.items() if party in after and after[party] >= ticks)
    result.lines.append((f"after the load, every sink had every event {_s(waited)} later"
                         if waited <= DRAIN_SECONDS else f"the sinks were still missing events after {DRAIN_SECONDS:.0f} s")
                        + (f" (CPU meanwhile, of a core: {used})" if waited >= 5 else ""))


def _caught_up(stage: Stage, sink: str, events: Sequence[EventRow], since: float) -> float | None:
    """Seconds after `since` until the sink had every event created before it, or None if it never did."""
    earlier = {event.event_id for event in events if event.created_at < since}
    firsts: dict[str, float] = {}
    for receipt in stage.side.receipts(sink):
        firsts.setdefault(receipt.event_id, receipt.received_at)
    if not earlier <= firsts.keys():
        return None
    return max((firsts[event_id] for event_id in earlier), default=since) - since


# =============================================================================================
# The scenarios


HOOK = "crm"


async def scenario_17(cluster: PgCluster, quick: bool) -> Result:
    down = 60.0 if quick else 600.0
    result = Result(17, f"webhook receiver down {down:.0f}s under load")
    if quick:
        result.lines.append("STRESS_QUICK=1: the receiver is down 60 s, not the issue's 10 minutes")
    async with staged(cluster, 17, [HOOK]) as stage:
        load = LoadReport()
        before, after = 15.0, 15.0
        began = stage.mark("load")
        loading = asyncio.create_task(registration_load(stage, before + down + after, load))
        await asyncio.sleep(before)
        stage.mark("down")
        await stage.side.set_mode(HOOK, "down")
        await asyncio.sleep(down)
        back = stage.mark("back")
        await stage.side.set_mode(HOOK, "up")
        await loading
        ended = stage.mark("load end")
        await _drained(result, stage)
        result.lines.append(f"receiver {HOOK} down from t={stage.marks['down'] - began:.0f}s to t={back - began:.0f}s; "
                            f"load until t={ended - began:.0f}s")
        events = await _events(stage)
        caught = _caught_up(stage, HOOK, events, back)
        result.lines.append(f"{HOOK} had every event committed while it was down "
                            + (f"{_s(caught)} after it came back" if caught is not None else "never"))
        again = sorted(r.received_at for r in stage.side.receipts(HOOK) if r.received_at >= back)
        if again and caught is not None:
            firsts: dict[str, float] = {}
            for receipt in stage.side.receipts(HOOK):
                firsts.setdefault(receipt.event_id, receipt.received_at)
            backlog = sum(1 for event in events if event.created_at < back and firsts.get(event.event_id, back) >= back)
            catching = max(caught - (again[0] - back), 1e-3)
            result.lines.append(f"the relay sent to {HOOK} again {_s(again[0] - back)} after it came back (its oldest "
                                f"retry's next step), then caught up on {backlog} events in {_s(catching)} "
                                f"({backlog / catching:.0f} a second, while the load went on)")
        await judge(result, stage, load, (began, ended))
    return result


async def scenario_18(cluster: PgCluster) -> Result:
    result = Result(18, "500s at 30%, a 20 s receiver; others' lag")
    seconds = 60.0
    async with staged(cluster, 18, ["flaky", "slow", HOOK]) as stage:
        await stage.side.set_mode("flaky", "error_rate", 0.3)
        await stage.side.set_mode("slow", "delay", 20.0)
        load = LoadReport()
        began = stage.mark("load")
        await registration_load(stage, seconds, load)
        ended = stage.mark("load end")
        await stage.side.set_mode("slow", "up")
        await stage.side.set_mode("flaky", "up")
        await _drained(result, stage)
        result.lines.append(f"for the load's {ended - began:.0f} s flaky answered 500 to 30 % of deliveries and slow took "
                            "20 s to answer each; then both answered at once")
        await judge(result, stage, load, (began, ended), lag_judged=(HOOK, BROKER))
    return result


async def scenario_19(cluster: PgCluster) -> Result:
    result = Result(19, "relay kill -9 x3, two relays at once")
    seconds = 60.0
    async with staged(cluster, 19, [HOOK], relays=2) as stage:
        load = LoadReport()
        began = stage.mark("load")
        loading = asyncio.create_task(registration_load(stage, seconds, load))
        for kill, relay in enumerate([stage.relays[0], stage.relays[1], stage.relays[0]], start=1):
            await asyncio.sleep(max(0.0, began + seconds * kill / 4 + random.uniform(-2, 2) - time.time()))
            at = time.time() - began
            await asyncio.to_thread(relay.kill9)
            await asyncio.sleep(1.0)
            await asyncio.to_thread(relay.start)
            ready = await asyncio.to_thread(relay.wait_ready)
            result.lines.append(f"t={at:4.1f}s SIGKILL to {relay.name}, restarted 1 s later, serving after {ready:.1f}s")
        await loading
        ended = stage.mark("load end")
        await _drained(result, stage)
        await judge(result, stage, load, (began, ended))
    return result


async def scenario_20(cluster: PgCluster) -> Result:
    result = Result(20, "broker connection cut mid-stream")
    seconds = 60.0
    async with staged(cluster, 20, [HOOK], broker_via_proxy=True) as stage:
        load = LoadReport()
        began = stage.mark("load")
        loading = asyncio.create_task(registration_load(stage, seconds, load))
        for at, length in ((15.0, 10.0), (42.0, 1.0)):
            await asyncio.sleep(max(0.0, began + at - time.time()))
            live = stage.proxy.proxy.live
            cut = time.time()
            await asyncio.to_thread(stage.proxy.cut)
            await asyncio.sleep(length)
            restored = time.time()
            await asyncio.to_thread(stage.proxy.restore)
            result.lines.append(f"t={cut - began:4.1f}s cut the relay's broker connection ({live} live), "
                                f"restored {restored - cut:.0f} s later")
            stage.marks[f"restored {at:.0f}"] = restored
        await loading
        ended = stage.mark("load end")
        await _drained(result, stage)
        events = await _events(stage)
        for key, restored in stage.marks.items():
            if key.startswith("restored"):
                caught = _caught_up(stage, BROKER, events, restored)
                result.lines.append(f"after the restore at t={restored - began:.0f}s the broker had every earlier event "
                                    + (f"{_s(caught)} later" if caught is not None else "never"))
        result.lines.append(f"connections through the proxy: {stage.proxy.accepted}")
        await judge(result, stage, load, (began, ended))
    return result
