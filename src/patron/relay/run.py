"""`patron relay` (events.md §2, §4): gives each org's committed events their stream positions and
delivers them to every sink of every org, a worker per sink, sharing the work with other relays by
leases; retries on the schedule, dead letters, a sink's health, retention and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from patron.events.build import envelope
from patron.events.model import StoredEvent
from patron.events.operations import DeclaredSink
from patron.orgs.apply import settings_from_definition
from patron.orgs.policy import Broker, OrgFile, Webhook
from patron.relay import plan, schedule
from patron.relay.metrics import RelayMetrics
from patron.relay.sinks import Delivery, Outcome, Sink
from patron.store.relay import Attempt, LeaseLost, Progress, RetryRow, SinkRow
from patron.store.storage import Storage

log = logging.getLogger("patron.relay")

SinkConfig = Webhook | Broker
# Makes the Sink of one [[webhooks]] or [[brokers]] entry of an org.
SinkFactory = Callable[[int, SinkConfig], Sink]
SinkKey = tuple[int, str]
# Event bodies kept for the other sinks of their org: a few batches' worth (about 1 KB each).
BODIES_KEPT = 8192


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_relay_id() -> str:
    """host:pid:random, as leases and the relays' table name a relay."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(3)}"


def kind_of(config: SinkConfig) -> str:
    return config.sink_kind


def open_sink(org_id: int, config: SinkConfig) -> Sink:
    """The Sink of a configured entry: imported when first needed, so that a relay whose orgs have
    no broker never loads a broker's client."""
    if isinstance(config, Webhook):
        from patron.relay.webhooks import WebhookSink

        return WebhookSink(config)
    from patron.relay.rabbitmq import RabbitMqSink

    sink: Sink = RabbitMqSink(config)
    return sink


@dataclass(frozen=True)
class RelayOptions:
    # Deliveries in flight at once per sink (across customers; each customer's one at a time).
    concurrency: int = 100
    # Events read from a sink's stream at once, and retries attempted at once.
    batch: int = 500
    # Events given positions in one transaction.
    position_batch: int = 1000
    # How often an idle relay looks for new commits (events.md §4: awake within 100 ms).
    poll_seconds: float = 0.05
    # A lease lapses this long after its relay last renewed it; renewed every supervise_seconds.
    lease_seconds: float = 10.0
    supervise_seconds: float = 2.0
    # How often the sinks' backlog is measured for the metrics.
    metrics_seconds: float = 5.0
    retention_seconds: float = 60.0
    # Rows removed per statement by retention: short transactions, no lock held for long.
    retention_batch: int = 1000
    # The retry schedule's factor (PATRON_EVENT_RETRY_SCALE; stress tests).
    retry_scale: float = 1.0
    # On SIGTERM, how long deliveries in flight may take to end before they are cut off.
    stop_grace_seconds: float = 20.0
    # After a failure of the database, how long a loop waits before it tries again.
    backoff_seconds: float = 1.0
    # Units of work open at once, over every org and sink this relay holds: fewer than its pool
    # has connections, so that a relay with hundreds of orgs or sinks waits its turn rather than
    # failing for want of a connection (the CLI gives it PATRON_DB_POOL_SIZE less one).
    units: int = 8


class Relay:
    """One relay process's work: the positioner's tick, the supervisor (heartbeat, leases, orgs and
    their sinks), a worker per sink it holds, and retention."""

    def __init__(
        self,
        storage: Storage,
        *,
        options: RelayOptions | None = None,
        sinks: SinkFactory = open_sink,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
        metrics: RelayMetrics | None = None,
        orgs: set[int] | None = None,
        relay_id: str | None = None,
    ) -> None:
        """`orgs`: only these orgs (tests); by default every org in the database."""
        self.storage = storage
        self.options = options or RelayOptions()
        self.make_sink = sinks
        self.clock = clock
        # The schedule's jitter (seeded in tests); which free sink to take first is drawn apart.
        self.rng = rng or random.Random()
        self._picks = random.Random()
        self.metrics = metrics or RelayMetrics(private=True)
        self.only_orgs = orgs
        self.id = relay_id or new_relay_id()
        self.started_at = clock()
        # Each org's file, with its fingerprint and when it was applied.
        self.orgs: dict[int, tuple[str, datetime, OrgFile]] = {}
        self.last_positions: dict[int, int] = {}
        self.workers: dict[SinkKey, SinkWorker] = {}
        self.stopping = asyncio.Event()
        self._retiring: dict[SinkKey, float] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._metrics_at = -math.inf
        self._forgot_at = -math.inf
        self._units = asyncio.Semaphore(self.options.units)
        # Each event's body as sent, by (org, position, pii): the sinks of an org are sent the same
        # bytes, encoded once (oldest dropped first past BODIES_KEPT).
        self._bodies: dict[tuple[int, int, bool], bytes] = {}

    def body(self, event: StoredEvent, pii: bool) -> bytes:
        """The event's envelope as JSON, with or without PII: encoded by the first sink to send it."""
        key = (event.org_id, event.position, pii)
        body = self._bodies.get(key)
        if body is None:
            body = self._bodies[key] = orjson.dumps(envelope(event, pii=pii))
            if len(self._bodies) > BODIES_KEPT:
                del self._bodies[next(iter(self._bodies))]
        return body

    @asynccontextmanager
    async def unit(self, *, readonly: bool = False) -> AsyncIterator[Any]:
        """A unit of work of the relay's storage, one of at most `options.units` open at once
        (no unit is opened inside another, so waiting for a turn cannot deadlock)."""
        async with self._units, self.storage.unit_of_work(readonly=readonly) as unit:
            yield unit

    # Running and stopping.

    async def run(self, *, once: bool = False) -> None:
        """Until stop() (SIGTERM): then deliveries in flight end (within stop_grace_seconds) and
        the leases are released. `once`: until nothing is pending. Cancelled, it stops at once and
        releases nothing, as a killed relay would: its leases lapse."""
        log.info("relay %s starting", self.id)
        try:
            if once:
                await self._run_once()
            else:
                await self._run_until_stopped()
        except BaseException:
            # Cancelled (or failed): everything stops now, as if killed; nothing is released.
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        await self._let_go()
        log.info("relay %s stopped", self.id)

    def stop(self) -> None:
        """Stop taking work; finish what is in flight (SIGTERM, SIGINT)."""
        self.stopping.set()
        for worker in self.workers.values():
            worker.wake.set()

    async def _run_until_stopped(self) -> None:
        await self._guarded(self._supervise)
        loops = [self._spawn(self._loop(self._tick, 0.0)),
                 self._spawn(self._loop(self._supervise, self.options.supervise_seconds)),
                 self._spawn(self._loop(self._retain_all, self.options.retention_seconds))]
        await self.stopping.wait()
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        workers = [worker.task for worker in self.workers.values() if worker.task is not None]
        for worker in self.workers.values():
            worker.leave()
        if workers:
            # The leases are kept while the deliveries in flight end: none lapses under them.
            keeping = self._spawn(self._keep_leases())
            _, late = await asyncio.wait(workers, timeout=self.options.stop_grace_seconds)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            keeping.cancel()
        pending = [task for task in self._tasks if not task.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _run_once(self) -> None:
        while await self._tick():
            pass
        await self._supervise(once=True)
        workers = [worker.task for worker in self.workers.values() if worker.task is not None]
        await asyncio.gather(*workers)
        await self._retain_all()

    async def _let_go(self) -> None:
        """Release every lease and leave the relays' table, so that the others take over at once."""
        with contextlib.suppress(Exception):
            async with self.unit() as unit:
                await unit.deliveries.release_sinks(self.id)
                await unit.deliveries.release_streams(self.id)
                await unit.deliveries.forget_relay(self.id)
        for org_id, sink in list(self.workers):
            self.metrics.let_go(org_id, sink)
        self.workers.clear()

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _loop(self, work: Callable[[], Coroutine[Any, Any, Any]], every: float) -> None:
        while not self.stopping.is_set():
            busy = await self._guarded(work)
            if not busy:
                await self._pause(every or self.options.poll_seconds)

    async def _guarded(self, work: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        """Run one pass; a failure (the database away) is logged and the pass tried again later."""
        try:
            return await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("relay %s: %s failed; trying again in %g s", self.id, work.__name__, self.options.backoff_seconds)
            await self._pause(self.options.backoff_seconds)
            return False

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    # Positions: each org's committed events, by the holder of its stream's lease.

    async def _tick(self) -> bool:
        """Give positions to what was committed since the last tick, and wake the sinks of every
        org whose stream moved (by this relay or another); whether there is more to do at once."""
        async with self.unit(readonly=True) as unit:
            pending = await unit.deliveries.unpositioned_orgs()
        pending = {org_id for org_id in pending if self._mine(org_id)}
        full = await asyncio.gather(*(self._position(org_id) for org_id in sorted(pending)))
        # The streams of the orgs whose sinks this relay delivers to (another relay may position them).
        watched = {org_id for org_id, _ in self.workers}
        if watched:
            async with self.unit(readonly=True) as unit:
                streams = await unit.deliveries.streams_of(sorted(watched))
            for stream in streams:
                self._moved(stream.org_id, stream.last_position)
        return any(full)

    async def _position(self, org_id: int) -> bool:
        now = self.clock()
        async with self.unit() as unit:
            if not await unit.deliveries.take_stream(org_id, self.id, now, self._lease_end(now)):
                return False  # another relay positions this org
            positioned = await unit.events.position_pending(org_id, self.options.position_batch)
            last_position, _ = await unit.events.stream(org_id)
        self._moved(org_id, last_position)
        return positioned >= self.options.position_batch

    def _moved(self, org_id: int, last_position: int) -> None:
        if last_position > self.last_positions.get(org_id, 0):
            self.last_positions[org_id] = last_position
            for (worker_org, _), worker in self.workers.items():
                if worker_org == org_id:
                    worker.wake.set()

    def _mine(self, org_id: int) -> bool:
        return self.only_orgs is None or org_id in self.only_orgs

    def _lease_end(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.options.lease_seconds)

    # The supervisor: heartbeat, leases, the orgs' sinks, this relay's share of them.

    async def _renew(self) -> set[SinkKey]:
        """Say this relay runs, and keep its leases another lease_seconds: the sinks it holds."""
        now = self.clock()
        async with self.unit() as unit:
            await unit.deliveries.heartbeat(self.id, self.started_at, now)
            await unit.deliveries.renew_streams(self.id, self._lease_end(now))
            held = await unit.deliveries.renew_sinks(self.id, self._lease_end(now))
            if time.monotonic() - self._forgot_at >= 60:
                self._forgot_at = time.monotonic()
                await unit.deliveries.forget_lapsed_relays(now - timedelta(seconds=60 * self.options.lease_seconds))
        return held

    async def _keep_leases(self) -> None:
        while True:
            await self._guarded(self._renew)
            await asyncio.sleep(self.options.supervise_seconds)

    async def _supervise(self, once: bool = False) -> bool:
        held = await self._renew()
        now = self.clock()
        clock = time.monotonic()
        self._retiring = {key: until for key, until in self._retiring.items() if until > clock}
        for key, worker in list(self.workers.items()):
            if worker.done:
                self._forget_worker(key)
            elif key not in held and key not in self._retiring:
                # Its lease lapsed (this relay stalled) and another relay took the sink: stop at once.
                log.warning("relay %s: lost the lease of sink %s of org %s; another relay delivers to it", self.id, key[1], key[0])
                worker.cancel()
                self._forget_worker(key)
        await self._load_orgs()
        async with self.unit(readonly=True) as unit:
            rows = {(row.org_id, row.sink): row for row in await unit.deliveries.sinks()}
            live = set(await unit.deliveries.live_relays(now - timedelta(seconds=self.options.lease_seconds)))
        configured = {(org_id, sink.name): sink for org_id, (_, _, file) in self.orgs.items() for sink in file.sinks}
        missing = [key for key in configured if key not in rows]
        if missing:
            async with self.unit() as unit:
                for org_id, name in missing:
                    # A new sink is sent what was committed since the org file that declares it
                    # was applied (its latest application: this relay sees the sink now).
                    start = await unit.deliveries.last_position_before(org_id, self.orgs[org_id][1])
                    await unit.deliveries.open_sink(org_id, name, kind_of(configured[org_id, name]), start)
            async with self.unit(readonly=True) as unit:
                rows = {(row.org_id, row.sink): row for row in await unit.deliveries.sinks()}
        for key, row in rows.items():
            if key in configured:
                self.metrics.set_disabled(*key, row.disabled_at is not None)
        enabled = [key for key in configured if key in rows and rows[key].disabled_at is None]
        for key, worker in list(self.workers.items()):
            if key not in enabled or configured[key] != worker.config:
                # Removed from the org file, disabled, or changed: this worker goes (a changed one
                # comes back with its new configuration at a later pass).
                self._retire(key)
        share = len(enabled) if once else plan.fair_share(len(enabled), len(live | {self.id}))
        held_now = [key for key in self.workers if key not in self._retiring]
        for key in held_now[share:]:
            self._retire(key)
        wanted = share - min(share, len(held_now))
        free = [
            key for key in enabled
            if key not in self.workers and rows[key].lease.free_for(self.id, now) and self._retiring.get(key, 0) < clock
        ]
        self._picks.shuffle(free)
        for key in free[:wanted]:
            await self._take(key, configured[key], once)
        if clock - self._metrics_at >= self.options.metrics_seconds:
            self._metrics_at = clock
            await self._measure()
        return False

    async def _take(self, key: SinkKey, config: SinkConfig, once: bool) -> None:
        now = self.clock()
        async with self.unit() as unit:
            row = await unit.deliveries.take_sink(*key, self.id, now, self._lease_end(now))
        if row is None:
            return  # another relay was quicker
        try:
            sink = self.make_sink(key[0], config)
        except Exception:
            log.exception("relay %s: sink %s of org %s cannot be opened; left to retry later", self.id, key[1], key[0])
            async with self.unit() as unit:
                await unit.deliveries.release_sink(*key, self.id)
            return
        worker = SinkWorker(self, key[0], config, sink, row)
        self.workers[key] = worker
        worker.task = self._spawn(worker.run(once))
        log.info("relay %s delivers to sink %s of org %s from position %d", self.id, key[1], key[0], row.position)

    def _retire(self, key: SinkKey) -> None:
        """Let the sink's worker finish its pass, then release the sink for another relay (or for
        this one's next pass, with its new configuration)."""
        worker = self.workers.get(key)
        if worker is None or key in self._retiring:
            return
        worker.leave()
        self._retiring[key] = math.inf

        async def release() -> None:
            try:
                if worker.task is not None:
                    await asyncio.gather(worker.task, return_exceptions=True)
                async with self.unit() as unit:
                    await unit.deliveries.release_sink(*key, self.id)
            finally:
                if self.workers.get(key) is worker:
                    self._forget_worker(key)
                # Not taken again by this relay for a while: another one is to have it.
                self._retiring[key] = time.monotonic() + 2 * self.options.supervise_seconds

        self._spawn(release())

    def _forget_worker(self, key: SinkKey) -> None:
        self.workers.pop(key, None)
        self.metrics.let_go(*key)

    async def _load_orgs(self) -> None:
        """The orgs' files, re-read when one changes (by its fingerprint)."""
        async with self.unit(readonly=True) as unit:
            fingerprints = await unit.deliveries.org_fingerprints()
            for org_id, (fingerprint, applied_at) in fingerprints.items():
                known = self.orgs.get(org_id)
                if not self._mine(org_id) or (known is not None and known[0] == fingerprint):
                    continue
                definition = await unit.deliveries.org_definition(org_id)
                if definition is None:
                    continue
                try:
                    self.orgs[org_id] = (fingerprint, applied_at, settings_from_definition(definition, org_id))
                except Exception:
                    log.exception("relay %s: the stored file of org %s cannot be read; its sinks wait", self.id, org_id)
        for org_id in set(self.orgs) - set(fingerprints):
            del self.orgs[org_id]

    async def _measure(self) -> None:
        """Each held sink's backlog as `patron events status` and the console count it."""
        now = self.clock()
        for (org_id, name), worker in list(self.workers.items()):
            declared = DeclaredSink(name, kind_of(worker.config), worker.config.events)
            async with self.unit(readonly=True) as unit:
                state = await unit.event_ops.sink(org_id, declared)
            pending = state.pending or 0
            oldest = state.oldest_pending_at
            lag = max(0.0, (now - oldest).total_seconds()) if pending and oldest is not None else 0.0
            self.metrics.backlog(org_id, name, pending, lag, worker.health.failing)

    # Retention (CONF_EVENT_RETENTION_DAYS): by the holder of each org's stream lease.

    async def _retain_all(self) -> bool:
        for org_id in list(self.orgs):
            if self.stopping.is_set():
                break
            await self._guarded(lambda org_id=org_id: self._retain(org_id))  # type: ignore[misc]
        return False

    async def _retain(self, org_id: int) -> None:
        _, _, file = self.orgs[org_id]
        now = self.clock()
        before = now - timedelta(days=file.configs.CONF_EVENT_RETENTION_DAYS)
        async with self.unit() as unit:
            if not await unit.deliveries.take_stream(org_id, self.id, now, self._lease_end(now)):
                return  # the relay that holds the org's stream keeps it
            last_position, _ = await unit.events.stream(org_id)
        async with self.unit(readonly=True) as unit:
            rows = await unit.deliveries.sinks(org_id)
            configured = {sink.name for sink in file.sinks}
            enabled = [row for row in rows if row.sink in configured and row.disabled_at is None]
            outstanding = [await unit.deliveries.oldest_outstanding(org_id, row.sink) for row in enabled]
        through = plan.removable_through(last_position, [row.position for row in enabled], outstanding)
        most = self.options.retention_batch
        while through > 0 and not self.stopping.is_set():
            async with self.unit() as unit:
                removed = await unit.events.remove_expired(org_id, through=through, before=before, most=most)
            if removed < most:
                break
        for row in rows:
            for remove in (self._remove_attempts, self._remove_dead_letters):
                while not self.stopping.is_set():
                    async with self.unit() as unit:
                        if await remove(unit, org_id, row.sink, before, most) < most:
                            break

    @staticmethod
    async def _remove_attempts(unit: Any, org_id: int, sink: str, before: datetime, most: int) -> int:
        return int(await unit.deliveries.remove_old_attempts(org_id, sink, before, most))

    @staticmethod
    async def _remove_dead_letters(unit: Any, org_id: int, sink: str, before: datetime, most: int) -> int:
        return int(await unit.deliveries.remove_old_dead_letters(org_id, sink, before, most))

    # The schedule, bound to this relay's randomness and scale.

    def next_attempt(self, attempts_made: int, now: datetime, retry_after: float | None) -> datetime | None:
        return schedule.next_attempt(attempts_made, now, retry_after, self.rng, self.options.retry_scale)

    def should_disable(self, failing_since: datetime | None, now: datetime) -> bool:
        return schedule.should_disable(failing_since, now, self.options.retry_scale)


class SinkWorker:
    """Delivers one org's events to one sink, a task of its own, while its relay holds the sink's
    lease: its due retries, then the stream's next batch; each customer's events in order."""

    def __init__(self, relay: Relay, org_id: int, config: SinkConfig, sink: Sink, row: SinkRow) -> None:
        self.relay = relay
        self.org_id = org_id
        self.name = config.name
        self.config = config
        self.sink = sink
        self.position = row.position
        self.health = plan.Health(row.consecutive_failures, row.failing_since)
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.in_flight = asyncio.Semaphore(relay.options.concurrency)
        self.leaving = False
        self.disabled = False
        # When the sink's earliest retry is due (None: none, or not known yet) and when that was read.
        self._next_due: datetime | None = None
        self._due_read_at = -math.inf
        self._probed_at: datetime | None = None

    @property
    def done(self) -> bool:
        return self.task is not None and self.task.done()

    def leave(self) -> None:
        """Stop after the pass in flight (its deliveries end and are written)."""
        self.leaving = True
        self.wake.set()

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def run(self, once: bool = False) -> None:
        try:
            await self._run(once)
        finally:
            with contextlib.suppress(Exception):
                await self.sink.close()

    async def _run(self, once: bool) -> None:
        options = self.relay.options
        while not self.leaving and not self.relay.stopping.is_set():
            self.wake.clear()
            try:
                worked = await self._pass(once)
            except LeaseLost:
                log.warning("relay %s: sink %s of org %s was taken by another relay", self.relay.id, self.name, self.org_id)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                if once:
                    raise  # --once says so and exits 1, rather than retry forever
                log.exception("sink %s of org %s: a pass failed; trying again in %g s", self.name, self.org_id,
                              options.backoff_seconds)
                await self._idle(options.backoff_seconds)
                continue
            if self.disabled:
                return
            if not worked:
                if once:
                    return
                await self._idle(self._idle_seconds())

    async def _pass(self, once: bool) -> bool:
        now = self.relay.clock()
        if self.relay.should_disable(self.health.failing_since, now):
            await self._write(plan.Tally(self.health, disabled=f"failing since {self.health.failing_since:%Y-%m-%d %H:%M} UTC"), [])
            return True
        worked = False
        if await self._retries_due(now):
            worked = await self._retry_pass(now)
        behind = once or self.relay.last_positions.get(self.org_id, 0) > self.position
        if self.disabled or not behind:
            return worked
        if self.health.failing:
            # Failing with no retry left to probe with (each given up): the next event is the probe.
            if not worked and self._next_due is None and self._may_probe(now):
                self._probed_at = now
                worked = await self._batch_pass(probe=True)
            return worked
        return await self._batch_pass() or worked

    def _idle_seconds(self) -> float:
        """Until the next due retry (or probe), at most a supervisor's pass: new events wake the
        worker (the relay's tick) before then."""
        seconds = self.relay.options.supervise_seconds
        if self._next_due is not None:
            seconds = min(seconds, max(0.0, (self._next_due - self.relay.clock()).total_seconds()))
        if self.health.failing and self._probed_at is not None:
            until_probe = (self._probed_at + self._probe_gap() - self.relay.clock()).total_seconds()
            seconds = min(self.relay.options.supervise_seconds, max(seconds, until_probe))
        return max(self.relay.options.poll_seconds, seconds)

    async def _idle(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)

    def _probe_gap(self) -> timedelta:
        return timedelta(seconds=plan.PROBE_SECONDS * self.relay.options.retry_scale)

    async def _retries_due(self, now: datetime) -> bool:
        # Re-read now and then, for the rows an operator's replay adds.
        if self._next_due is None or time.monotonic() - self._due_read_at >= self.relay.options.supervise_seconds:
            async with self.relay.unit(readonly=True) as unit:
                self._next_due = await unit.deliveries.next_due(self.org_id, self.name)
            self._due_read_at = time.monotonic()
        if self._next_due is None or self._next_due > now:
            return False
        return not self.health.failing or self._may_probe(now)

    def _may_probe(self, now: datetime) -> bool:
        return self._probed_at is None or now >= self._probed_at + self._probe_gap()

    async def _retry_pass(self, now: datetime) -> bool:
        """The due retries, each its customer's earliest outstanding event, concurrently; while
        the sink is failing, only the oldest, as a probe."""
        most = 1 if self.health.failing else self.relay.options.batch
        async with self.relay.unit(readonly=True) as unit:
            due = await unit.deliveries.due_retries(self.org_id, self.name, now, most)
            stored = {event.position: event for event in await unit.deliveries.events_at(self.org_id, [row.position for row in due])}
        self._next_due = None
        if not due:
            return False
        if self.health.failing:
            self._probed_at = now
        tally = plan.Tally(self.health)
        attempts: list[Attempt] = []

        async def one(row: RetryRow) -> tuple[RetryRow, plan.Settled]:
            event = stored.get(row.position)
            if event is None:
                return row, plan.Settled("dead", None, "the event is no longer stored")
            async with self.in_flight:
                return row, await self._attempt(event, row.attempts + 1, tally, attempts)

        results = await asyncio.gather(*(one(row) for row in due))
        await self._write(
            tally, attempts,
            deleted=[row.position for row, settled in results if settled.verdict == "delivered"],
            settled=[after for row, settled in results if (after := plan.retried(row, settled)) is not None
                     and after != row],
            freed=[row.customer_id for row, settled in results if plan.frees_next(settled)],
        )
        return True

    async def _batch_pass(self, probe: bool = False) -> bool:
        """The stream's next events after the sink's position: those of customers with an
        outstanding retry wait behind it; the others go, concurrently across customers and in
        order within each; then the position moves to the batch's end. A `probe` of a failing
        sink is its next event alone."""
        async with self.relay.unit(readonly=True) as unit:
            batch = await unit.events.read(self.org_id, self.position, 1 if probe else self.relay.options.batch)
            if not batch:
                return False
            subscribed = [event.customer_id for event in batch if self.config.subscribes(event.name)]
            outstanding = await unit.deliveries.outstanding_customers(self.org_id, self.name, subscribed)
            held = await unit.deliveries.held_positions(self.org_id, self.name, self.position, batch[-1].position)
        planned = plan.plan_batch(batch, self.config.subscribes, outstanding, held)
        tally = plan.Tally(self.health)
        attempts: list[Attempt] = []
        chains = await asyncio.gather(*(self._chain(chain, tally, attempts, probe) for chain in planned.chains))
        now = self.relay.clock()
        rows = plan.behind_rows(planned.behind)
        for chain, settled in zip(planned.chains, chains, strict=True):
            rows += plan.chain_rows(chain, settled, now, leftovers=tally.disabled is None)
        # Disabled part way: the position stays, and the batch's events not settled are read again
        # when the sink is enabled (those settled have rows, which the retries own).
        await self._write(tally, attempts, position=self.position if tally.disabled else planned.through, added=rows)
        return True

    async def _chain(
        self, chain: list[StoredEvent], tally: plan.Tally, attempts: list[Attempt], probe: bool = False
    ) -> list[plan.Settled]:
        """One customer's events of a batch, one after the other, until one waits for a retry (or
        the sink is failing or disabled: the rest wait, and are written so)."""
        settled: list[plan.Settled] = []
        for event in chain:
            async with self.in_flight:
                if tally.disabled or (tally.health.failing and not probe):
                    break
                result = await self._attempt(event, 1, tally, attempts)
            settled.append(result)
            if result.verdict in ("retry", "disabled"):
                break
        return settled

    async def _attempt(self, event: StoredEvent, attempt: int, tally: plan.Tally, attempts: list[Attempt]) -> plan.Settled:
        body = self.relay.body(event, self.sink.pii)
        started = time.perf_counter()
        attempted_at = self.relay.clock()
        try:
            outcome = await self.sink.deliver(Delivery(event.event_id, event.name, event.org_id, body, attempt))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 (a sink's own fault is retried, as a connection error is)
            log.exception("sink %s of org %s raised delivering event %s", self.name, self.org_id, event.event_id)
            outcome = Outcome("retry", error=f"{type(exc).__name__}: {exc}")
        seconds = time.perf_counter() - started
        latency_ms = outcome.latency_ms or int(seconds * 1000)
        now = self.relay.clock()
        settled = plan.settle(outcome, attempt, now, self.relay.next_attempt)
        tally.add(outcome, settled, now)
        attempts.append(Attempt(event.event_id, event.position, attempted_at, attempt, settled.verdict,
                                outcome.status_code, outcome.error, latency_ms, outcome.answer))
        self.relay.metrics.attempt(self.org_id, self.name, settled.verdict, latency_ms / 1000)
        if settled.verdict == "delivered":
            log.debug("sink %s of org %s: event %s (position %d) delivered, attempt %d, %d ms",
                      self.name, self.org_id, event.event_id, event.position, attempt, latency_ms)
        else:
            log.warning(
                "sink %s of org %s: event %s (position %d) attempt %d: %s (%s), %d ms%s",
                self.name, self.org_id, event.event_id, event.position, attempt, settled.verdict, settled.error,
                latency_ms, f"; next attempt {settled.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC" if settled.next_attempt_at else "",
            )
        return settled

    async def _write(
        self, tally: plan.Tally, attempts: list[Attempt], *, position: int | None = None, added: list[RetryRow] | None = None,
        deleted: list[int] | None = None, settled: list[RetryRow] | None = None, freed: list[int] | None = None,
    ) -> None:
        """A pass's outcome in one unit: the attempts, the retry rows, the sink's position and
        health; LeaseLost, and nothing written, when another relay holds the sink now."""
        now = self.relay.clock()
        position = self.position if position is None else position
        health = tally.health
        async with self.relay.unit() as unit:
            store = unit.deliveries
            await store.save_progress(self.org_id, self.name, self.relay.id, Progress(
                position, health.consecutive_failures, health.failing_since, tally.last_success_at,
                tally.last_failure_at, tally.last_error,
            ))
            await store.add_attempts(self.org_id, self.name, attempts)
            if added:
                await store.add_retries(self.org_id, self.name, added, now)
            if deleted:
                await store.delete_retries(self.org_id, self.name, deleted)
            if settled:
                await store.settle_retries(self.org_id, self.name, settled, now)
            if freed:
                await store.promote_next(self.org_id, self.name, freed, now)
            if tally.recovered:
                # Back after failing: its whole backlog at once, not at each retry's next step.
                await store.all_due_now(self.org_id, self.name, now)
            if tally.disabled:
                await store.disable_sink(self.org_id, self.name, now, tally.disabled)
        self.position = position
        self.health = health
        if added or settled or freed or tally.recovered:
            self._next_due = None
        if tally.recovered:
            log.info("sink %s of org %s is answering again; its retries are due now", self.name, self.org_id)
        if tally.disabled:
            self.disabled = True
            self.relay.metrics.set_disabled(self.org_id, self.name, True)
            log.error("sink %s of org %s is disabled: %s", self.name, self.org_id, tally.disabled)


async def run_relay(storage: Storage, options: RelayOptions, *, once: bool = False, metrics_port: int = 0) -> None:
    """The `patron relay` process on an open store: its metrics on 127.0.0.1:`metrics_port` (0:
    none), stopped cleanly by SIGTERM or SIGINT."""
    import signal

    from patron.relay.metrics import process_metrics, serve

    metrics = process_metrics()
    relay = Relay(storage, options=options, metrics=metrics)
    server = serve(metrics, metrics_port) if metrics_port else None
    loop = asyncio.get_running_loop()
    signals = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
            loop.add_signal_handler(signum, relay.stop)
            signals.append(signum)
    if server is not None:
        log.info("relay %s: metrics on http://127.0.0.1:%d/metrics", relay.id, metrics_port)
    try:
        await relay.run(once=once)
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        if server is not None:
            server.shutdown()
            server.server_close()
