"""`make bench`'s events rows (issue #31): what sinks cost a registration, how fast the relay catches up, how late events arrive.

For each backend (PostgreSQL, SQLite, and Citus when run.py has its cluster up), on a database of
its own, with Patron (2 workers) and one `patron relay` beside it, as `make run` has them:

- a single add and a batch of 100 (wrk, as run.py measures them) while the org file declares one
  webhook and one RabbitMQ broker, both subscribed to every event (pii = true), as a ratio to the
  same figure measured just before it while the org file declares no sink. The relay runs in both:
  it always runs beside the server (`make run` starts it), and gives every committed event its
  stream position whether or not a sink wants it (the feed reads by position), so the ratio is
  what delivering to the sinks costs, not what the outbox and its positions cost (run.py's table
  has those, as Patron beside its ceiling). Before each figure the relay has positioned
  everything; after each figure with sinks, how far behind it was when the load ended and how
  long it took to deliver the rest (BENCH_EVENTS_DRAIN_LIMIT, 120 s; then the next org file
  drops those sinks).
- end-to-end latency: single adds paced at half the rate of the single add with sinks (a Python
  client of its own, on keep-alive connections, each request sent at its due time), from each
  event's createdAt (its commit) to its receipt, for each sink: p50 and p99.
- relay catch-up: with the relay stopped, BENCH_EVENTS_BACKLOG events (50,000 by default) are
  registered in batches; then the relay starts, with one sink declared, the webhook or the
  RabbitMQ exchange (publisher confirms), and the figure is events per second from its start to
  the last event's receipt. Compared with the single add (no sink) of the same backend: with its
  registrations per second (issue #31's target), and with the events it makes per second. Beside
  each, where the CPU went meanwhile (relay, receiver, database, RabbitMQ, the rest).

The receiver is a subprocess of this file's (`events.py receive PORT`): a plain asyncio HTTP/1.1
server answering 204 at once, and a RabbitMQ consumer of a queue of its own bound to each broker
sink's exchange (both made here and deleted at the end); it stamps each event's receipt.

    .venv/bin/python bench/events.py     # this part alone (BENCH_CITUS as run.py reads it)
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import orjson

import run as bench
from process_table import process_table, tree

AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
BACKLOG_EVENTS = int(os.environ.get("BENCH_EVENTS_BACKLOG", "50000"))
LATENCY_SECONDS = int(os.environ.get("BENCH_EVENTS_LATENCY_SECONDS", "10"))
# Keep-alive connections of the paced client: enough that none waits for a free one at half the rate.
PACED_CONNECTIONS = 32
# How long the relay may take to deliver what a figure left behind before the run goes on without
# it (the next org file drops those sinks), and to deliver a backlog.
DRAIN_LIMIT = float(os.environ.get("BENCH_EVENTS_DRAIN_LIMIT", "120"))
CATCH_UP_LIMIT = float(os.environ.get("BENCH_EVENTS_CATCH_UP_LIMIT", "600"))
RELAY_CONCURRENCY = int(os.environ.get("BENCH_RELAY_CONCURRENCY", "100"))
# Issue #31's targets.
TARGET_SINK_RATIO, TARGET_P99_MS = 0.9, 1000.0
SECRET_ENV, AMQP_ENV = "BENCH_WEBHOOK_SECRET", "BENCH_AMQP_URL"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
# Mobiles the Python clients register here: 9190…, which no wrk run of this database uses.
FIRST_OWN_MOBILE = 919000000000


# --- the receiver (a subprocess) -------------------------------------------------------------------


@dataclass
class Received:
    """What one sink delivered to the receiver: distinct events, deliveries, and each event's lateness."""

    events: set[str] = field(default_factory=set)
    deliveries: int = 0
    connections: int = 0  # a webhook's: the connections its deliveries came on
    first: float = 0.0  # wall-clock seconds of the first and last receipt
    last: float = 0.0
    late_ms: list[float] = field(default_factory=list)

    def note(self, event_id: str, body: bytes) -> None:
        now = time.time()
        self.deliveries += 1
        if event_id not in self.events:
            self.events.add(event_id)
            self.late_ms.append(now * 1000 - orjson.loads(body)["createdAt"])
        self.first = self.first or now
        self.last = now


class Receiver:
    """The receiver's state and its control routes (the bench asks them over HTTP)."""

    def __init__(self) -> None:
        self.sinks: dict[str, Received] = defaultdict(Received)
        self.amqp: Any = None
        self.exchanges: list[str] = []

    async def consume(self, sink: str, exchange: str) -> None:
        """A queue of its own bound to the sink's exchange (declared as the relay declares it)."""
        import aio_pika

        if self.amqp is None:
            self.amqp = await aio_pika.connect(AMQP_URL)
        channel = await self.amqp.channel()
        declared = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        self.exchanges.append(exchange)
        queue = await channel.declare_queue(f"{exchange}.bench", exclusive=True, auto_delete=True)
        await queue.bind(declared, "#")
        received = self.sinks[sink]

        async def on_message(message: Any) -> None:
            received.note(message.message_id, message.body)

        await queue.consume(on_message, no_ack=True)

    async def close(self) -> None:
        """Delete the exchanges (the exclusive queues go with the connection)."""
        if self.amqp is not None:
            channel = await self.amqp.channel()
            for exchange in self.exchanges:
                await channel.exchange_delete(exchange)
            await self.amqp.close()
            self.amqp = None

    async def control(self, method: str, path: str, query: dict[str, list[str]]) -> tuple[int, bytes]:
        sink = query.get("sink", [""])[0]
        if path == "/_/stats":
            got = self.sinks[sink]
            return 200, orjson.dumps({"events": len(got.events), "deliveries": got.deliveries, "connections": got.connections,
                                      "first": got.first, "last": got.last})
        if path == "/_/late":
            return 200, orjson.dumps(self.sinks[sink].late_ms)
        if path == "/_/forget" and method == "POST":
            self.sinks.pop(sink, None)
            return 204, b""
        if path == "/_/consume" and method == "POST":
            await self.consume(sink, query["exchange"][0])
            return 204, b""
        if path == "/_/close" and method == "POST":
            await self.close()
            return 204, b""
        return 404, b""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """HTTP/1.1 with keep-alive, as the relay's pooled client speaks it; a webhook is answered 204 at once."""
        first = True
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head[:-4].decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                if target.startswith("/hook/"):
                    sink = self.sinks[target[6:]]
                    sink.note(headers["webhook-id"], body)
                    sink.connections += first
                    first = False
                    status, answer = 204, b""
                else:
                    parts = urlsplit(target)
                    status, answer = await self.control(method, parts.path, parse_qs(parts.query))
                reason = {200: "OK", 204: "No Content"}.get(status, "Not Found")
                writer.write(f"HTTP/1.1 {status} {reason}\r\ncontent-length: {len(answer)}\r\n\r\n".encode() + answer)
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def receive(port: int) -> None:
    receiver = Receiver()
    server = await asyncio.start_server(receiver.serve, "127.0.0.1", port, backlog=1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()
    await receiver.close()


@contextmanager
def receiver_process() -> Iterator[tuple[str, int]]:
    """The receiver, started and stopped; its base URL and pid."""
    port = bench.free_port()
    log = tempfile.NamedTemporaryFile(prefix="patron-bench-receiver-", suffix=".log", delete=False)
    process = subprocess.Popen([sys.executable, __file__, "receive", str(port)], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/_/stats", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"the receiver did not start; see {log.name}") from None
                time.sleep(0.1)
        yield base, process.pid
    finally:
        try:
            httpx.post(f"{base}/_/close", timeout=10)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)


def received(receiver: str, sink: str) -> dict[str, float]:
    return dict(httpx.get(f"{receiver}/_/stats", params={"sink": sink}, timeout=10).json())


# --- org files and the relay -----------------------------------------------------------------------


@dataclass(frozen=True)
class Sinks:
    """The sinks an org file declares: a webhook, a broker, either, or none (names fresh each time,
    so that a sink starts at its org file's application, with nothing of an earlier figure's)."""

    webhook: str | None = None
    broker: str | None = None

    @property
    def names(self) -> list[str]:
        return [name for name in (self.webhook, self.broker) if name]

    @staticmethod
    def new(webhook: bool, broker: bool) -> Sinks:
        tag = uuid.uuid4().hex[:6]
        return Sinks(f"hook-{tag}" if webhook else None, f"broker-{tag}" if broker else None)

    def exchange(self) -> str:
        return f"patron-bench-{self.broker}"


def apply_org(database_url: str, sinks: Sinks, receiver: str) -> None:
    """bench-org.toml with these sinks, each subscribed to every event, identifiers and names included."""
    text = (bench.BENCH / "bench-org.toml").read_text()
    if sinks.webhook:
        text += (f'\n[[webhooks]]\nname = "{sinks.webhook}"\nurl = "{receiver}/hook/{sinks.webhook}"\n'
                 f'secret_env = "{SECRET_ENV}"\nallow_private = true\npii = true\n')
    if sinks.broker:
        text += (f'\n[[brokers]]\nname = "{sinks.broker}"\nkind = "rabbitmq"\nurl_env = "{AMQP_ENV}"\n'
                 f'exchange = "{sinks.exchange()}"\npii = true\n')
        httpx.post(f"{receiver}/_/consume", params={"sink": sinks.broker, "exchange": sinks.exchange()}, timeout=30)
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as org_file:
        org_file.write(text)
        org_file.flush()
        bench.patron(database_url, "org", "apply", org_file.name)


class Relay:
    """A `patron relay` process of this run's (concurrency RELAY_CONCURRENCY), with its metrics port."""

    def __init__(self, database_url: str) -> None:
        self.metrics_port = bench.free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="patron-bench-relay-", suffix=".log", delete=False)
        env = {**os.environ, "PATRON_DATABASE_URL": database_url, SECRET_ENV: WEBHOOK_SECRET, AMQP_ENV: AMQP_URL}
        self.started = time.time()
        self.process = subprocess.Popen(
            [str(bench.VENV_BIN / "patron"), "relay", "--metrics-port", str(self.metrics_port), "--concurrency", str(RELAY_CONCURRENCY)],
            env=env, cwd=bench.ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"the relay ended ({self.process.returncode}); see {self.log.name}")

    def attempts(self) -> dict[tuple[str, str], int]:
        """Attempts so far by (sink, result), from its metrics."""
        from prometheus_client.parser import text_string_to_metric_families

        counts: dict[tuple[str, str], int] = {}
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "patron_event_deliveries_total":
                    counts[sample.labels["sink"], sample.labels["result"]] = int(sample.value)
        return counts

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=60)


# --- the databases, through either engine ------------------------------------------------------------


def scalar(database_url: str, query: str) -> Any:
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=30) as conn:
            return conn.execute(query).fetchone()[0]

    async def fetch() -> Any:
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetchval(query)
        finally:
            await conn.close()

    return asyncio.run(fetch())


def last_position(database_url: str) -> int:
    return int(scalar(database_url, f"SELECT coalesce(max(position), 0) FROM events WHERE org_id = {bench.ORG_ID}"))


def events_after(database_url: str, position: int) -> int:
    return int(scalar(database_url, f"SELECT count(*) FROM events WHERE org_id = {bench.ORG_ID} AND position > {position}"))


def unpositioned(database_url: str) -> int:
    return int(scalar(database_url, f"SELECT count(*) FROM events WHERE org_id = {bench.ORG_ID} AND position IS NULL"))


def wait_for_sinks(database_url: str, sinks: Sinks, relay: Relay) -> None:
    """Until the relay holds every sink of the org file just applied (it reads the file within its
    supervisor's pass, 2 s)."""
    wanted = sinks.names
    names = ", ".join(f"'{name}'" for name in wanted)
    query = f"SELECT count(*) FROM event_sinks WHERE org_id = {bench.ORG_ID} AND sink IN ({names}) AND lease_owner IS NOT NULL"
    deadline = time.monotonic() + 60
    while int(scalar(database_url, query)) < len(wanted):
        relay.alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the relay did not take the sinks {wanted} within 60 s; see {relay.log.name}")
        time.sleep(0.1)


def behind(database_url: str, receiver: str, sinks: Sinks, since: int) -> int:
    """Events committed after position `since` that the slowest sink has yet to receive."""
    made = unpositioned(database_url) + events_after(database_url, since)
    return made - min((int(received(receiver, name)["events"]) for name in sinks.names), default=made)


def drain(database_url: str, receiver: str, sinks: Sinks, since: int, relay: Relay, limit: float, expected: int = 0) -> tuple[float, int]:
    """Wait, at most `limit` seconds, until every event positioned after `since` has reached every
    sink (and none is left without a position): the seconds waited (math.inf past the limit) and
    the events the slowest sink then had yet to receive. With `expected` (the events after `since`
    once all are positioned), the database is asked only once they have all come."""
    started = time.monotonic()
    while True:
        relay.alive()
        arrived = expected == 0 or all(received(receiver, name)["events"] >= expected for name in sinks.names)
        if arrived and unpositioned(database_url) == 0:
            expected = events_after(database_url, since)
            if all(received(receiver, name)["events"] >= expected for name in sinks.names):
                return time.monotonic() - started, 0
        if time.monotonic() - started > limit:
            return math.inf, behind(database_url, receiver, sinks, since)
        time.sleep(0.1 if expected else 0.25)


# --- clients: the backlog's batches and the paced single adds ----------------------------------------


def auth_header() -> str:
    return "Basic " + base64.b64encode(f"{bench.TILL}:{hashlib.md5(bench.PASSWORD.encode()).hexdigest()}".encode()).decode()


def customer(mobile: int) -> dict[str, Any]:
    return {"mobile": str(mobile), "email": f"c{mobile}@bench.example", "firstname": "Bench", "lastname": "Customer",
            "custom_fields": {"field": [{"name": "city", "value": "Bangalore"}, {"name": "visits", "value": "3"}]}}


class Mobiles:
    """The mobiles this file's clients register on one database, none twice."""

    def __init__(self) -> None:
        self.next = FIRST_OWN_MOBILE

    def take(self, count: int) -> range:
        taken = range(self.next, self.next + count)
        self.next += count
        return taken


async def register_batches(base: str, mobiles: range, at_once: int = 4) -> int:
    """Register these mobiles, 100 to a request, `at_once` requests in flight; the customers not registered."""
    chunks = [mobiles[i:i + 100] for i in range(0, len(mobiles), 100)]
    failed = 0
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": auth_header()}, timeout=60) as client:

        async def worker() -> None:
            nonlocal failed
            while chunks:
                chunk = chunks.pop()
                answer = await client.post("/v1.1/customer/add", json={"root": {"customer": [customer(m) for m in chunk]}})
                body = answer.json() if answer.status_code == 200 else {}
                done = int(body.get("response", {}).get("status", {}).get("success_count", 0))
                failed += len(chunk) - done

        await asyncio.gather(*(worker() for _ in range(at_once)))
    return failed


@dataclass
class Paced:
    rate: float  # asked for, registrations per second
    sent: int
    seconds: float  # from the first due time to the last answer
    p50_ms: float  # each request's time from its due time to its answer
    p99_ms: float
    errors: int


async def paced_registrations(base: str, rate: float, seconds: float, mobiles: range) -> Paced:
    """Single adds at `rate` per second for `seconds`, each sent at its due time on one of
    PACED_CONNECTIONS keep-alive connections (a late answer delays no later request's due time,
    unless every connection is waiting)."""
    url = urlsplit(base)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    total = min(len(mobiles), int(rate * seconds))
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    taken = 0
    times: list[float] = []
    errors = 0
    auth = auth_header()

    def request(mobile: int) -> bytes:
        body = orjson.dumps({"root": {"customer": [customer(mobile)]}})
        return (f"POST /v1.1/customer/add HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body

    async def connection() -> None:
        nonlocal taken, errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while taken < total:
                index = taken
                taken += 1
                due = start + index / rate
                await asyncio.sleep(max(0.0, due - loop.time()))
                writer.write(request(mobiles[index]))
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
                body = await reader.readexactly(length)
                times.append((loop.time() - due) * 1000)
                if not head.startswith(b"HTTP/1.1 200") or b'"code":"1000"' not in body:
                    errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(PACED_CONNECTIONS)))
    ended = loop.time()
    times.sort()
    return Paced(rate, len(times), ended - start, percentile(times, 50), percentile(times, 99), errors)


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile of sorted values (0 for none)."""
    if not values:
        return 0.0
    return values[min(len(values) - 1, max(0, math.ceil(p / 100 * len(values)) - 1))]


# --- where the CPU goes ------------------------------------------------------------------------------


class CpuShares:
    """CPU used while something ran, by whom: the relay (its process tree), the receiver, the
    database (the plain server's backends of this database and its helpers, or every process of the
    bench's Citus nodes), RabbitMQ (beam.smp), and everything else on the machine; as % of one core."""

    def __init__(self, relay: int, receiver: int, database: str, citus: bool) -> None:
        self.roots = {"relay": relay, "receiver": receiver}
        self.database = database.rsplit("/", 1)[1]
        self.citus = citus
        self.wall = time.monotonic()
        self.machine = self._machine()
        self.first = self._by_owner()

    @staticmethod
    def _machine() -> int:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[0] + fields[1] + fields[2]

    def _by_owner(self) -> dict[int, tuple[str, int]]:
        processes = process_table()
        owner: dict[int, str] = {}
        for label, root in self.roots.items():
            for pid in tree(processes, {root}):
                owner[pid] = label
        if self.citus:
            for postmaster in bench._postmaster_pids():
                for pid in tree(processes, {postmaster}):
                    owner[pid] = "database"
        else:
            plain = bench._plain_postmaster()
            for pid, process in processes.items():
                if process.parent == plain:
                    try:
                        command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                    except OSError:
                        continue
                    if self.database in command or not re.search(r"\(\d+\)|\[local\]", command):
                        owner[pid] = "database"
        for pid, process in processes.items():
            if process.name == "beam.smp":
                owner[pid] = "rabbitmq"
        return {pid: (label, processes[pid].ticks) for pid, label in owner.items() if pid in processes}

    def shares(self) -> dict[str, float]:
        """% of one core each used since this began (processes that ended meanwhile are not seen)."""
        now = self._by_owner()
        seconds = max(1e-6, time.monotonic() - self.wall)
        ticks: Counter[str] = Counter()
        for pid, (label, used) in now.items():
            ticks[label] += used - self.first.get(pid, (label, 0))[1]
        machine = self._machine() - self.machine
        ticks["others"] = max(0, machine - sum(ticks.values()))
        per_second = os.sysconf("SC_CLK_TCK")
        return {label: 100.0 * ticks[label] / per_second / seconds for label in ("relay", "receiver", "database", "rabbitmq", "others")}


# --- the figures ---------------------------------------------------------------------------------------


@dataclass
class CatchUp:
    sink: str  # webhook or rabbitmq
    events: int  # delivered
    seconds: float  # from the relay's start to the last event's receipt
    first_after: float  # from the relay's start to the first receipt
    cpu: dict[str, float]
    attempts: dict[str, int]  # by result
    load: float
    others: float
    undelivered: int  # at CATCH_UP_LIMIT
    deliveries: int  # received, repeats included
    connections: int  # the webhook's deliveries came on

    @property
    def per_second(self) -> float:
        return self.events / self.seconds


@dataclass
class Drained:
    """The relay after a figure with sinks: events the slowest sink had yet to receive when the load
    ended, the seconds it took to receive them (math.inf: not within DRAIN_LIMIT), and how many it
    still had not then."""

    behind: int
    seconds: float
    undelivered: int

    def __str__(self) -> str:
        after = f"all in {self.seconds:.1f} s" if self.seconds != math.inf else f"{self.undelivered:,} still not after {DRAIN_LIMIT:.0f} s"
        return f"{self.behind:,} behind at its end, {after}"


@dataclass
class Backend:
    kind: str
    per_registration: float = 0.0  # events a single add makes
    single: bench.Load | None = None  # no sink
    single_sinks: bench.Load | None = None
    batch: bench.Load | None = None
    batch_sinks: bench.Load | None = None
    drained_single: Drained | None = None
    drained_batch: Drained | None = None
    loaded_late_ms: dict[str, tuple[float, float]] = field(default_factory=dict)  # during the single add with sinks
    paced: Paced | None = None
    paced_undelivered: int = 0
    late_ms: dict[str, tuple[float, float, int]] = field(default_factory=dict)  # sink kind: p50, p99, events
    catch_ups: list[CatchUp] = field(default_factory=list)
    errors: int = 0


def lateness(receiver: str, sink: str) -> list[float]:
    return sorted(httpx.get(f"{receiver}/_/late", params={"sink": sink}, timeout=30).json())


def measure_backend(kind: str, database_url: str, receiver: tuple[str, int]) -> Backend:
    """Every events figure of one backend, on its own database (run.py's SERVERS and SQLITE_FILES
    already list it, for the checkpoints between figures)."""
    receiver_base, receiver_pid = receiver
    figures = Backend(kind)
    runs = bench.fresh_runs()
    mobiles = Mobiles()
    with bench.patron_server(database_url) as base:
        relay = Relay(database_url)
        try:

            def declare(sinks: Sinks) -> int:
                """Apply the org file with these sinks (and no other: an earlier figure's sinks
                are dropped, with whatever they had yet to deliver); the stream's last position.
                Every event has its position first: a new sink starts at the last position of
                the events committed before its file was applied, and one of those positioned
                later would be sent to it too."""
                deadline = time.monotonic() + DRAIN_LIMIT
                while unpositioned(database_url) and time.monotonic() < deadline:
                    relay.alive()
                    time.sleep(0.1)
                apply_org(database_url, sinks, receiver_base)
                if sinks.names:
                    wait_for_sinks(database_url, sinks, relay)
                return last_position(database_url)

            def measured(script: str, sinks: Sinks) -> tuple[bench.Load, Drained]:
                """The figure with these sinks; then how far behind the relay was when the load
                ended, and how long it took to deliver the rest (to position it, with no sink)."""
                position = declare(sinks)
                load = bench.measure(script, base, runs)
                left = behind(database_url, receiver_base, sinks, position) if sinks.names else 0
                seconds, undelivered = drain(database_url, receiver_base, sinks, position, relay, DRAIN_LIMIT)
                return load, Drained(left, seconds, undelivered)

            figures.single, _ = measured("add.lua", Sinks())
            customers = int(scalar(database_url, f"SELECT count(*) FROM customers WHERE org_id = {bench.ORG_ID}"))
            figures.per_registration = int(scalar(database_url, f"SELECT count(*) FROM events WHERE org_id = {bench.ORG_ID}")) / customers
            both = Sinks.new(webhook=True, broker=True)
            figures.single_sinks, figures.drained_single = measured("add.lua", both)
            for name, sink in (("webhook", both.webhook), ("rabbitmq", both.broker)):
                late = lateness(receiver_base, str(sink))
                figures.loaded_late_ms[name] = (percentile(late, 50), percentile(late, 99))
            figures.batch, _ = measured("batch.lua", Sinks())
            figures.batch_sinks, figures.drained_batch = measured("batch.lua", Sinks.new(webhook=True, broker=True))

            # Latency at half the single add's rate with sinks, to sinks of its own (the batch's are
            # dropped, delivered or not).
            both = Sinks.new(webhook=True, broker=True)
            position = declare(both)
            bench.settle_database()
            bench.quiet_moment()
            rate = figures.single_sinks.per_second / 2
            figures.paced = asyncio.run(paced_registrations(base, rate, LATENCY_SECONDS, mobiles.take(int(rate * LATENCY_SECONDS) + 1)))
            _, figures.paced_undelivered = drain(database_url, receiver_base, both, position, relay, DRAIN_LIMIT)
            for name, sink in (("webhook", both.webhook), ("rabbitmq", both.broker)):
                late = lateness(receiver_base, str(sink))
                figures.late_ms[name] = (percentile(late, 50), percentile(late, 99), len(late))
            attempts = relay.attempts()
        finally:
            relay.stop()
        figures.errors += sum(count for (_, result), count in attempts.items() if result != "delivered")
        loads = [load for load in (figures.single, figures.single_sinks, figures.batch, figures.batch_sinks) if load is not None]
        figures.errors += sum(load.errors for load in loads)
        figures.errors += figures.paced.errors

        # Catch-up after a backlog registered while the relay was stopped, to each kind of sink alone.
        customers_needed = math.ceil(BACKLOG_EVENTS / figures.per_registration)
        for label, sinks in (("webhook", Sinks.new(True, False)), ("rabbitmq", Sinks.new(False, True))):
            apply_org(database_url, sinks, receiver_base)
            position = last_position(database_url)
            figures.errors += asyncio.run(register_batches(base, mobiles.take(customers_needed)))
            backlog = unpositioned(database_url)
            bench.settle_database()
            load = bench.quiet_moment()
            others = bench.OthersCpu()
            relay = Relay(database_url)
            cpu = CpuShares(relay.process.pid, receiver_pid, database_url, kind == "Citus")
            try:
                seconds, undelivered = drain(database_url, receiver_base, sinks, position, relay, CATCH_UP_LIMIT, backlog)
                shares = cpu.shares()
                stats = [received(receiver_base, name) for name in sinks.names]
                results = Counter[str]()
                for (_, result), count in relay.attempts().items():
                    results[result] += count
            finally:
                relay.stop()
            first, last = min(stat["first"] for stat in stats), max(stat["last"] for stat in stats)
            figures.catch_ups.append(CatchUp(
                label, backlog - undelivered, last - relay.started, first - relay.started, shares, dict(results), load,
                others.percent(), undelivered, sum(int(stat["deliveries"]) for stat in stats), sum(int(stat["connections"]) for stat in stats),
            ))
            figures.errors += sum(count for result, count in results.items() if result != "delivered")
    return figures


def measure(pg_url: str, sqlite_url: str, citus_url: str | None) -> list[Backend]:
    """The events figures of every backend, each on the database given (empty, not yet migrated)."""
    backends = []
    with receiver_process() as receiver:
        backends.append(measure_backend("PG", pg_url, receiver))
        bench.SQLITE_FILES.append(sqlite_url.removeprefix("sqlite:///"))
        try:
            backends.append(measure_backend("SQLite", sqlite_url, receiver))
        finally:
            bench.SQLITE_FILES.clear()
        if citus_url:
            backends.append(measure_backend("Citus", citus_url, receiver))
    return backends


def report(backends: list[Backend], seconds: float) -> int:
    """Print the events tables and issue #31's verdicts; the errors seen."""

    def machine(load: float, others: float) -> str:
        return f"{load:4.2f} {others:3.0f}%"

    print()
    print(f"Events (#31): the same server and wrk, each backend on a database of its own; a `patron relay` (--concurrency"
          f" {RELAY_CONCURRENCY}) runs")
    print("beside the server in every figure, giving events their stream positions. Sinks: one webhook (a receiver of this run's,")
    print("answering 204 at once) and one RabbitMQ exchange (publisher confirms), each subscribed to every event, pii = true.")
    print("x none: to the figure just before it, whose org file declares no sink")
    print(f"| {'figure':<36} | {'value':>23} | x none | p50 ms  | p99 ms  | errors | load others |")
    print(f"|{'-' * 38}|{'-' * 25}|--------|---------|---------|--------|-------------|")
    for figures in backends:
        for name, unit, load, bare, per in (
            ("add, 1, no sink", "reg/s", figures.single, None, 1),
            ("add, 1, 2 sinks", "reg/s", figures.single_sinks, figures.single, 1),
            ("add, 100/batch, no sink", "customers/s", figures.batch, None, 100),
            ("add, 100/batch, 2 sinks", "customers/s", figures.batch_sinks, figures.batch, 100),
        ):
            assert load is not None
            ratio = f"{load.per_second / bare.per_second:6.2f}" if bare else "     -"
            print(f"| {f'{name} ({figures.kind})':<36} | {load.per_second * per:>10,.0f} {unit:<12} | {ratio} | {load.p50_ms:>7.1f}"
                  f" | {load.p99_ms:>7.1f} | {load.errors:>6} | {machine(load.load, load.others)} |")
    for figures in backends:
        print(f"  {figures.kind}: {figures.per_registration:.2f} events per registration; the relay, to the slower sink: single add"
              f" {figures.drained_single}; batch {figures.drained_batch}")

    print()
    print(f"Relay catch-up: {BACKLOG_EVENTS:,} events or more registered (batches of 100) while the relay was stopped, then the relay")
    print("started, one sink declared: events delivered per second from its start to the last receipt (first s: to the first).")
    print("x add: to the events the single add (no sink) of the same backend makes per second; x reg: to its registrations per")
    print("second. cpu: % of one core each used meanwhile: the relay, the receiver, the database, RabbitMQ, the rest of the machine")
    print(f"| {'figure':<36} | {'value':>23} | x add | x reg | seconds | first s | errors | load others | cpu: relay recv   db rabbit  rest |")
    print(f"|{'-' * 38}|{'-' * 25}|-------|-------|---------|---------|--------|-------------|{'-' * 36}|")
    for figures in backends:
        assert figures.single is not None
        made = figures.single.per_second * figures.per_registration
        for catch_up in figures.catch_ups:
            cpu = catch_up.cpu
            failed = sum(count for result, count in catch_up.attempts.items() if result != "delivered")
            print(f"| {f'relay: {catch_up.events:,} to {catch_up.sink} ({figures.kind})':<36} | {catch_up.per_second:>10,.0f} {'events/s':<12}"
                  f" | {catch_up.per_second / made:5.2f} | {catch_up.per_second / figures.single.per_second:5.2f}"
                  f" | {catch_up.seconds:>7.1f} | {catch_up.first_after:>7.1f} | {failed:>6} | {machine(catch_up.load, catch_up.others)}"
                  f" | {cpu['relay']:10.0f} {cpu['receiver']:4.0f} {cpu['database']:4.0f} {cpu['rabbitmq']:6.0f} {cpu['others']:5.0f} |")
            if catch_up.undelivered:
                print(f"  ({catch_up.undelivered:,} events not delivered within {CATCH_UP_LIMIT:.0f} s: the figure is of those delivered)")
    for figures in backends:
        print(f"  {figures.kind}: " + "; ".join(
            f"{catch_up.sink} received {catch_up.deliveries:,} deliveries of {catch_up.events:,} events"
            + (f" on {catch_up.connections:,} connections" if catch_up.sink == "webhook" else "")
            for catch_up in figures.catch_ups))

    print()
    print("End-to-end latency, from each event's createdAt (its commit) to its receipt, with single adds paced at half the rate of")
    print(f"the single add with sinks ({LATENCY_SECONDS} s, {PACED_CONNECTIONS} keep-alive connections); beside it, during that full-rate figure")
    print(f"| {'figure':<36} | {'reg/s':>10} | {'events':>7} | p50 ms  | p99 ms  | full rate: p50 ms |   p99 ms |")
    print(f"|{'-' * 38}|{'-' * 12}|{'-' * 9}|---------|---------|-------------------|----------|")
    for figures in backends:
        assert figures.paced is not None
        for name in ("webhook", "rabbitmq"):
            p50, p99, count = figures.late_ms[name]
            loaded = figures.loaded_late_ms[name]
            print(f"| {f'latency to {name} ({figures.kind})':<36} | {figures.paced.sent / figures.paced.seconds:>10,.0f} | {count:>7,}"
                  f" | {p50:>7.1f} | {p99:>7.1f} | {loaded[0]:>17.1f} | {loaded[1]:>8.1f} |")
    for figures in backends:
        paced = figures.paced
        assert paced is not None
        print(f"  {figures.kind}: {paced.sent:,} adds at {paced.rate:,.0f}/s asked, answered p50 {paced.p50_ms:.1f} ms, p99 {paced.p99_ms:.1f} ms"
              f" (from each one's due time), {paced.errors} errors"
              + (f"; {figures.paced_undelivered:,} events not delivered within {DRAIN_LIMIT:.0f} s" if figures.paced_undelivered else ""))

    verdicts = []
    for figures in backends:
        assert figures.single and figures.single_sinks and figures.batch and figures.batch_sinks
        made = figures.single.per_second * figures.per_registration
        slowest = min(figures.catch_ups, key=lambda catch_up: catch_up.per_second)
        late_p99 = max(late[1] for late in figures.late_ms.values())
        verdicts += [
            (f"{figures.kind} single add with sinks >= {TARGET_SINK_RATIO}x none", f"{figures.single_sinks.per_second / figures.single.per_second:.2f}x",
             figures.single_sinks.per_second >= TARGET_SINK_RATIO * figures.single.per_second),
            (f"{figures.kind} batch with sinks >= {TARGET_SINK_RATIO}x none", f"{figures.batch_sinks.per_second / figures.batch.per_second:.2f}x",
             figures.batch_sinks.per_second >= TARGET_SINK_RATIO * figures.batch.per_second),
            (f"{figures.kind} relay to each sink >= the single add's rate", f"{slowest.sink} {slowest.per_second / figures.single.per_second:.2f}x reg/s,"
             f" {slowest.per_second / made:.2f}x its events/s", slowest.per_second >= figures.single.per_second),
            (f"{figures.kind} latency p99 <= {TARGET_P99_MS:.0f} ms", f"{late_p99:.0f} ms", late_p99 <= TARGET_P99_MS and not figures.paced_undelivered),
        ]
    print("issue #31 targets: " + "; ".join(f"{what}: {seen} {'PASS' if ok else 'MISS'}" for what, seen, ok in verdicts))
    print(f"events part: wall time {seconds:.0f}s")
    return sum(figures.errors for figures in backends)


def main() -> int:
    """This part alone: its own databases (and the bench's Citus cluster, as run.py decides)."""
    # Stopped (a TERM), the databases, servers, relay and receiver are still cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    missing = None if bench.CITUS == "1" else "BENCH_CITUS=0" if bench.CITUS == "0" else bench.citus_missing()
    if missing:
        print(f"Citus rows skipped: {missing}", flush=True)
    bench.wait_for_quiet_machine()
    started = time.monotonic()  # the part's wall time, not the wait's
    with ExitStack() as databases:
        pg_url = databases.enter_context(bench.throwaway_database("events"))
        folder = databases.enter_context(tempfile.TemporaryDirectory())
        citus_url = None
        if not missing:
            databases.enter_context(bench.citus_cluster())
            citus_url = databases.enter_context(bench.citus_database("events"))
        backends = measure(pg_url, f"sqlite:///{folder}/events.db", citus_url)
    errors = report(backends, time.monotonic() - started)
    print(f"\nnon-2xx or unexpected item codes, failed delivery attempts: {errors}")
    return 1 if errors else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["receive"]:
        from patron.loop import run as run_in_patrons_loop

        run_in_patrons_loop(receive(int(sys.argv[2])))
    else:
        sys.exit(main())
