"""Scenarios 11-13 (issue #19, item 4): Citus's online operations under registration load.

Each runs on a private Citus cluster of its own (../shared/citus/cluster.sh with
CITUS_DIR=/tmp/patron-stress-citus, CITUS_PORT=54360: coordinator 54360, workers 54361 and 54362,
a third added on 54363), reset at the start of the scenario (two workers, empty) and stopped at its
end, on 127.0.0.1 only. `patron db upgrade` against the coordinator distributes the customer tables
by org; a few orgs (made from stress-org.toml, each with its own till) are applied; `patron serve`
(2 workers) runs against the coordinator. Clients register new customers (single adds and batches
of 2-20), some with the referral code of an earlier customer of their org, some re-sending an
earlier batch (updates), retrying 503 until a per-request deadline. The load runs ~10 s, then the
operation runs under it, then ~10 s more. After: the shards are where the operation should have
put them, every item answered 1000 is in the database once and whole (built-in SQL invariants and
`patron check --org`, per org), no reward twice, and the 503s were at most short bursts.

11. citus_move_shard_placement of one org's shard (and its colocated shards) to the other worker.
12. isolate_tenant_to_new_shard of the largest org, CASCADE: a shard of its own, one task after.
    First in the default mode (logical), given 30 s: in Citus 13.2.2 an UPDATE of the shard during
    the split stalls it (the worker's apply worker fails over and over: "publisher did not send
    replica identity column expected by ..."; reproduced with plain SQL), so then, reported as a
    Citus limitation, with shard_transfer_mode => 'block_writes'.
13. cluster.sh add-worker, citus_rebalance_start(), polled until finished: shards on the new node.

Every loop here is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

import infra
from infra import PASSWORD, ROOT, STRESS, PatronServer, basic_auth
from load import GET, Attempt, Stats, body_of, client, items_of, new_item, referral_codes, send
from scenarios import Result, check_invariants, log_findings, percentile

CLUSTER_SH = ROOT.parent / "shared" / "citus" / "cluster.sh"
CITUS_DIR = "/tmp/patron-stress-citus"
CITUS_PORT = 54360
CITUS_DB = "patron"
HOST = "127.0.0.1"
WORKERS = (CITUS_PORT + 1, CITUS_PORT + 2)
NEW_WORKER = CITUS_PORT + 3
TEMPLATE = STRESS / "stress-org.toml"
TABLES = ("customers", "customer_audits", "memberships", "points_ledger", "referrals")

BEFORE, AFTER = 10.0, 10.0  # seconds of load before and after the operation
OPERATION_LIMIT = 300.0  # an operation that takes longer is cancelled and the scenario fails
REQUEST_DEADLINE = 60.0  # a request still without a final answer this long after it began is lost
CLIENT_TIMEOUT = 40.0  # per attempt: above Patron's command timeout (6 x PATRON_DB_TIMEOUT_SECONDS = 30 s)
LOGICAL_LIMIT = 30.0  # scenario 12: the default (logical) isolation gets this long before it is cancelled
STALL_SIGNATURE = "publisher did not send replica identity column expected by the logical replication target relation"
SHORT_BURST = 10.0  # longest acceptable burst of 503s, and longest acceptable retrying of one request
BURST_GAP = 2.0  # 503s further apart than this are separate bursts


# ---------------------------------------------------------------------------------------------
# The cluster


class CitusCluster:
    """cluster.sh with this run's own directory and ports; stopped at exit even if a scenario raises."""

    def __init__(self) -> None:
        self.env = {**os.environ, "CITUS_DIR": CITUS_DIR, "CITUS_PORT": str(CITUS_PORT), "CITUS_DB": CITUS_DB}
        self.url = f"postgresql://postgres@{HOST}:{CITUS_PORT}/{CITUS_DB}"
        self.started = False
        infra._cleanups.append(self.stop)  # noqa: SLF001 - the run's own cleanup list

    def sh(self, command: str, timeout: float = 180) -> str:
        out = subprocess.run(
            ["bash", str(CLUSTER_SH), command], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if out.returncode != 0:
            raise RuntimeError(f"cluster.sh {command} failed ({out.returncode}): {out.stdout[-800:]} {out.stderr[-1500:]}")
        return out.stdout

    def reset(self) -> str:
        self.started = True
        printed = self.sh("reset").strip().splitlines()
        self.url = printed[-1] if printed and printed[-1].startswith("postgresql://") else self.url
        return self.url

    def add_worker(self) -> str:
        return self.sh("add-worker").strip()

    def stop(self) -> None:
        if self.started:
            self.sh("stop", timeout=120)
            self.started = False

    def node_url(self, port: int) -> str:
        return f"postgresql://postgres@{HOST}:{port}/{CITUS_DB}"

    def log_lines(self, needle: str) -> list[str]:
        """The nodes' log lines that contain `needle`, each with its node's name."""
        found = []
        for name in ("coord", "w1", "w2", "w3"):
            try:
                lines = (Path(CITUS_DIR) / name / "server.log").read_text(errors="replace").splitlines()
            except OSError:
                continue
            found += [f"{name}: {line.strip()}" for line in lines if needle in line]
        return found

    def errors_in_logs(self) -> list[str]:
        """ERROR lines in the nodes' logs (this scenario's only: reset wipes them), counted."""
        found: Counter = Counter()
        for name in ("coord", "w1", "w2", "w3"):
            path = Path(CITUS_DIR) / name / "server.log"
            try:
                lines = path.read_text(errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                if "ERROR:" in line:
                    text = re.sub(r"\d{6,}", "N", line.split("ERROR:", 1)[1].strip())
                    found[f"{name}: {text[:200]}"] += 1
        return [f"{count}x {text}" for text, count in found.most_common(10)]


async def query(url: str, sql: str, *args: Any, timeout: float = 60, **settings: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url, server_settings=settings or None, timeout=10)
    try:
        return await conn.fetch(sql, *args, timeout=timeout)
    finally:
        await conn.close()


async def shard_of(url: str, org_id: int, table: str = "customers") -> tuple[int, int, str, str]:
    """(shard id, node port, shardminvalue, shardmaxvalue) of the org's shard of a table."""
    rows = await query(
        url,
        "SELECT s.shardid, c.nodeport, s.shardminvalue, s.shardmaxvalue FROM pg_dist_shard s "
        "JOIN citus_shards c USING (shardid) WHERE s.shardid = get_shard_id_for_distribution_column($1::regclass, $2::bigint)",
        table, org_id,
    )
    if len(rows) != 1:
        raise RuntimeError(f"org {org_id}: {len(rows)} placements of its {table} shard: {[dict(r) for r in rows]}")
    return rows[0]["shardid"], rows[0]["nodeport"], rows[0]["shardminvalue"], rows[0]["shardmaxvalue"]


async def placements(url: str) -> Counter:
    rows = await query(url, "SELECT nodeport, count(*) AS n FROM citus_shards WHERE citus_table_type = 'distributed' GROUP BY nodeport")
    return Counter({row["nodeport"]: row["n"] for row in rows})


# ---------------------------------------------------------------------------------------------
# Orgs


@dataclass
class Org:
    org_id: int
    file: Path
    till: str
    clients: int
    answered: dict[str, str | None] = field(default_factory=dict)  # mobile answered 1000 -> code sent
    code_owner: dict[str, str] = field(default_factory=dict)  # referral code -> its owner's mobile
    codes: list[str] = field(default_factory=list)
    customers_at_operation: int = 0

    @property
    def auth(self) -> str:
        return basic_auth(self.till, PASSWORD)


def org_file(folder: Path, org_id: int) -> Org:
    """stress-org.toml with another id, name, store and till (till codes are unique installation-wide)."""
    text = TEMPLATE.read_text()
    text = text.replace("id = 880001", f"id = {org_id}", 1).replace('"Stress Retail"', f'"Citus Stress {org_id}"')
    text = text.replace('"stress.store"', f'"c{org_id}.store"').replace('"stress.till"', f'"c{org_id}.till"')
    path = folder / f"citus-org-{org_id}.toml"
    path.write_text(text)
    return Org(org_id, path, f"c{org_id}.till", clients=0)


async def pick_orgs(url: str, candidates: range, want: list[Any]) -> list[int]:
    """Org ids by where their customers' shard is: `want` holds a predicate per org, given
    (shard id, node port, shard ordinal among customers' shards, ids picked so far with theirs)."""
    ordinal = {
        row["shardid"]: i
        for i, row in enumerate(await query(url, "SELECT shardid FROM pg_dist_shard WHERE logicalrelid = 'customers'::regclass ORDER BY shardid"))
    }
    rows = await query(
        url,
        "SELECT o AS org_id, s.shardid, c.nodeport FROM unnest($1::bigint[]) AS o "
        "JOIN citus_shards c ON c.shardid = get_shard_id_for_distribution_column('customers', o) "
        "JOIN pg_dist_shard s ON s.shardid = c.shardid",
        list(candidates),
    )
    where = {row["org_id"]: (row["shardid"], row["nodeport"], ordinal[row["shardid"]]) for row in rows}
    picked: list[int] = []
    for predicate in want:
        choice = next(
            (o for o in candidates if o not in picked and predicate(*where[o], [(p, *where[p]) for p in picked])), None
        )
        if choice is None:
            raise RuntimeError(f"no org id in {candidates} fits predicate {len(picked) + 1}")
        picked.append(choice)
    return picked


# ---------------------------------------------------------------------------------------------
# The registration load


@dataclass
class Load:
    orgs: list[Org]
    scenario: int
    stats: Stats = field(default_factory=lambda: Stats(keep_attempts=True))
    retry_spans: list[tuple[float, float, int]] = field(default_factory=list)  # (began, seconds, retries)
    item_codes: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)  # single / batch / resend / with referral / updated
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    warm: asyncio.Event = field(default_factory=asyncio.Event)  # every client has made one request
    barrier: asyncio.Barrier | None = None
    started: float = 0.0

    async def one_client(self, base: str, org: Org, index: int) -> None:
        rng = random.Random(self.scenario * 1000 + index)
        fresh = (f"919{self.scenario % 10}{index:02d}{n:06d}" for n in range(1_000_000))
        sent_batches: list[list[dict[str, Any]]] = []
        async with client(base, timeout=CLIENT_TIMEOUT) as http:
            http.headers["Authorization"] = org.auth
            # Warm-up, not counted: the first request of a till makes each server worker verify its
            # argon2id hash and open connections; the load's clock starts once every client is past it.
            try:
                await http.get(GET, params={"mobile": "910000000000"}, timeout=30)
            except httpx.HTTPError:
                pass
            assert self.barrier is not None
            try:
                first = await self.barrier.wait() == 0
            except asyncio.BrokenBarrierError:  # the conductor gave up waiting for the warm-up
                return
            if first:
                self.started = time.monotonic()
                self.warm.set()
            for _ in range(100_000):  # bounded; the stop event ends it much sooner
                if self.stop.is_set():
                    return
                roll = rng.random()
                if roll < 0.12 and sent_batches:
                    kind = "resend"
                    batch = [{**item, "firstname": "Again"} for item in rng.choice(sent_batches)]
                else:
                    kind = "single" if roll < 0.55 else "batch"
                    batch = []
                    for _ in range(1 if kind == "single" else rng.randint(2, 20)):
                        code = rng.choice(org.codes) if org.codes and rng.random() < 0.25 else None
                        batch.append(new_item(next(fresh), code))
                self.kinds[kind] += 1
                tries: list[Attempt] = []
                answer = await send(
                    http, body_of(batch), self.stats, time.monotonic() + REQUEST_DEADLINE, on_attempt=tries.append
                )
                if len(tries) > 1:
                    self.retry_spans.append((tries[0].started, time.monotonic() - tries[0].started, len(tries) - 1))
                if answer is None:
                    continue
                items = items_of(answer)
                if answer.status != 200 or len(items) != len(batch):
                    self.stats.note_unexpected(f"org {org.org_id} HTTP {answer.status}: {answer.text}")
                    continue
                created = []
                for sent, got in zip(batch, items):
                    status = got.get("item_status", {})
                    code = status.get("code")
                    self.item_codes[code] += 1
                    if code != "1000":
                        self.stats.note_unexpected(f"org {org.org_id} item {sent['mobile']} ({kind}): {status}")
                        continue
                    if "updated" in str(status.get("message", "")).lower():
                        self.kinds["updated"] += 1
                    if kind != "resend":
                        org.answered[sent["mobile"]] = sent.get("referral_code")
                        if "referral_code" in sent:
                            self.kinds["with referral"] += 1
                            if "1205" in str(status.get("warnings", "")):
                                self.stats.note_unexpected(f"referral code {sent['referral_code']} not found (1205)")
                        else:
                            created.append(sent["mobile"])
                if kind != "resend" and len(sent_batches) < 50:
                    sent_batches.append(batch)
                if created and len(org.codes) < 400 and rng.random() < 0.5:
                    learned = await referral_codes(http, rng.sample(created, min(2, len(created))))
                    org.code_owner.update(learned)
                    org.codes.extend(learned)
                await asyncio.sleep(rng.uniform(0.0, 0.03))

    async def run(self, base: str) -> None:
        self.barrier = asyncio.Barrier(sum(org.clients for org in self.orgs))
        index = 0
        tasks = []
        for org in self.orgs:
            for _ in range(org.clients):
                tasks.append(self.one_client(base, org, index))
                index += 1
        await asyncio.gather(*tasks)


def bursts(times: list[tuple[float, float]]) -> list[tuple[float, float, int]]:
    """(start, end, count) of runs of 503s (or unanswered attempts) no more than BURST_GAP apart."""
    found: list[list[float]] = []
    for start, end in sorted(times):
        if found and start - found[-1][1] <= BURST_GAP:
            found[-1][1] = max(found[-1][1], end)
            found[-1][2] += 1
        else:
            found.append([start, end, 1])
    return [(a, b, int(n)) for a, b, n in found]


def judge_load(result: Result, load: Load, server: PatronServer, op_start: float, op_end: float, load_end: float) -> None:
    """The clients' figures, by phase; 503 bursts; what fails the scenario."""
    stats = load.stats
    result.take(stats)
    at = lambda t: t - op_start  # noqa: E731 - times relative to the operation's start
    phases = {"before": (load.started, op_start), "during": (op_start, op_end), "after": (op_end, load_end)}
    result.lines.append(
        f"load: {sum(o.clients for o in load.orgs)} clients over {len(load.orgs)} orgs "
        f"({', '.join(f'{o.org_id}: {o.clients}' for o in load.orgs)}); requests: "
        f"{', '.join(f'{load.kinds[k]} {k}' for k in ('single', 'batch', 'resend'))} (a resend repeats an earlier batch); "
        f"items: codes {dict(load.item_codes)}, new customers answered 1000 {sum(len(o.answered) for o in load.orgs)} "
        f"({load.kinds['with referral']} with a referral code), answered 'updated' {load.kinds['updated']}"
    )
    for name, (a, b) in phases.items():
        attempts = [x for x in stats.attempts if a <= x.started < b]
        ok = sum(1 for x in attempts if x.status == 200)
        lat = [x.latency for x in attempts]
        result.lines.append(
            f"  {name:>6} ({at(a):+6.1f}s..{at(b):+6.1f}s): attempts {len(attempts)}, "
            f"{dict(Counter(x.status if x.status is not None else x.error for x in attempts))}, "
            f"{ok / max(b - a, 1e-6):.0f} answered 200/s, latency p50 {percentile(lat, 50) * 1000:.0f} ms "
            f"p99 {percentile(lat, 99) * 1000:.0f} ms max {max(lat, default=0):.2f}s"
        )
    slowest = sorted(stats.attempts, key=lambda x: -x.latency)[:4]
    result.lines.append(
        "slowest attempts: " + ", ".join(f"{x.latency:.2f}s at {at(x.started):+.1f}s ({x.status or x.error})" for x in slowest)
    )
    trouble = [(x.started, x.started + x.latency) for x in stats.attempts if x.status == 503 or x.status is None]
    found = bursts(trouble)
    n503 = sum(1 for x in stats.attempts if x.status == 503)
    if found:
        result.lines.append(
            f"503 (and unanswered) attempts: {len(trouble)} ({n503} x 503) in {len(found)} burst(s): "
            + "; ".join(f"{at(a):+.1f}s..{at(b):+.1f}s ({b - a:.1f}s, {n})" for a, b, n in found[:12])
            + " (times relative to the operation's start)"
        )
    else:
        result.lines.append("503 (and unanswered) attempts: none")
    longest = max(load.retry_spans, key=lambda s: s[1], default=None)
    result.lines.append(
        f"requests that needed a retry: {len(load.retry_spans)}"
        + (f"; the longest retried for {longest[1]:.1f}s ({longest[2]} retries, began at {at(longest[0]):+.1f}s)" if longest else "")
    )
    samples_503 = Counter(x.text[:160] for x in stats.attempts if x.status == 503)
    for text, count in samples_503.most_common(2):
        result.lines.append(f"  503 answer ({count}x): {text}")
    tb_count, endings = log_findings(server)
    result.lines.append(f"server log: {tb_count} tracebacks" + (f"; ended by: {endings}" if endings else ""))
    others = [x for x in stats.attempts if x.status is not None and x.status not in (200, 503)]
    if others:
        result.failures.append(
            f"{len(others)} answers other than 200/503: {dict(Counter(x.status for x in others))}, "
            f"e.g. at {at(others[0].started):+.1f}s: {others[0].text[:600]}"
        )
    unanswered = Counter(x.error for x in stats.attempts if x.status is None)
    if unanswered:
        result.failures.append(f"{sum(unanswered.values())} attempts got no answer within {CLIENT_TIMEOUT:g}s: {dict(unanswered)}")
    if stats.unexpected_count:
        result.failures.append(f"{stats.unexpected_count} unexpected answers/items, e.g. {stats.unexpected[:3]}")
        result.lines += [f"unexpected: {u}" for u in stats.unexpected]
    long_bursts = [(a, b) for a, b, _ in found if b - a > SHORT_BURST]
    if long_bursts:
        result.failures.append(f"503 bursts longer than {SHORT_BURST:g}s: {[f'{at(a):+.1f}s..{at(b):+.1f}s' for a, b in long_bursts]}")
    if longest and longest[1] > SHORT_BURST:
        result.failures.append(f"a request retried for {longest[1]:.1f}s (over {SHORT_BURST:g}s) before its answer")
    for name, (a, b) in phases.items():
        if name != "during" and not any(a <= x.started < b and x.status == 200 for x in stats.attempts):
            result.failures.append(f"no registration answered 200 {name} the operation")


# ---------------------------------------------------------------------------------------------
# A scenario's frame: cluster, schema, orgs, server, load around an operation, checks


@dataclass
class Frame:
    result: Result
    cluster: CitusCluster
    url: str
    folder: Path
    orgs: list[Org] = field(default_factory=list)
    server: PatronServer | None = None


async def set_up(result: Result, cluster: CitusCluster, folder: Path) -> Frame:
    began = time.monotonic()
    url = await asyncio.to_thread(cluster.reset)
    nodes = await query(url, "SELECT nodename, nodeport, noderole FROM pg_dist_node ORDER BY nodeport")
    upgrade = await asyncio.to_thread(infra.patron, url, "db", "upgrade", check=False)
    if upgrade.returncode != 0:
        raise RuntimeError(f"patron db upgrade failed: {upgrade.stdout}{upgrade.stderr}")
    distributed = [line for line in upgrade.stdout.splitlines() if line.startswith("citus:")]
    counts = await placements(url)
    result.lines.append(
        f"cluster: cluster.sh reset (CITUS_DIR={CITUS_DIR}, CITUS_PORT={CITUS_PORT}): "
        f"{', '.join(str(r['nodename']) + ':' + str(r['nodeport']) for r in nodes)}; `patron db upgrade`: {len(distributed)} citus lines "
        f"({sum('distributed by org_id' in l for l in distributed)} tables distributed, "
        f"{sum('patron_register_new' in l for l in distributed)} function delegated); "
        f"shard placements per worker {dict(sorted(counts.items()))}; set up in {time.monotonic() - began:.1f}s"
    )
    return Frame(result, cluster, url, folder)


async def apply_orgs(frame: Frame, ids: list[int], clients: list[int]) -> None:
    for org_id, n in zip(ids, clients):
        org = org_file(frame.folder, org_id)
        org.clients = n
        out = await asyncio.to_thread(infra.patron, frame.url, "org", "apply", str(org.file), check=False)
        if out.returncode != 0:
            raise RuntimeError(f"patron org apply {org.file} failed: {out.stdout}{out.stderr}")
        frame.orgs.append(org)
    where = []
    for org in frame.orgs:
        shard, port, _lo, _hi = await shard_of(frame.url, org.org_id)
        where.append(f"{org.org_id} -> shard {shard} on :{port}")
    frame.result.lines.append("orgs: " + "; ".join(where))
    frame.server = PatronServer(frame.url, workers=2)
    await asyncio.to_thread(frame.server.start)


async def under_load(frame: Frame, scenario: int, operation) -> tuple[Load, float, float, float]:  # noqa: ANN001
    """Load for BEFORE s, `operation()` under it, AFTER s more; then the clients stop (those
    retrying finish or are lost by their deadline). Returns the load and the operation's times."""
    assert frame.server is not None
    load = Load(frame.orgs, scenario)
    marks: dict[str, float] = {}

    async def conductor() -> None:
        try:
            await asyncio.wait_for(load.warm.wait(), 60)
            await asyncio.sleep(BEFORE)
            for org in frame.orgs:
                rows = await query(frame.url, "SELECT count(*) AS n FROM customers WHERE org_id = $1", org.org_id)
                org.customers_at_operation = rows[0]["n"]
            marks["op_start"] = time.monotonic()
            try:
                await asyncio.wait_for(operation(), OPERATION_LIMIT)
            except TimeoutError:
                frame.result.failures.append(f"the operation did not finish within {OPERATION_LIMIT:g}s (cancelled)")
            except Exception as exc:  # noqa: BLE001 - the operation's failure is the finding; the load still ends
                frame.result.failures.append(f"the operation failed: {type(exc).__name__}: {exc}")
            marks["op_end"] = time.monotonic()
            await asyncio.sleep(AFTER)
        finally:
            if load.barrier is not None and not load.warm.is_set():
                await load.barrier.abort()
            marks.setdefault("op_start", time.monotonic())
            marks.setdefault("op_end", time.monotonic())
            marks["load_end"] = time.monotonic()
            load.stop.set()

    await asyncio.gather(load.run(frame.server.base), conductor())
    return load, marks["op_start"], marks["op_end"], marks["load_end"]


async def check_all(frame: Frame) -> None:
    texts = []
    for org in frame.orgs:
        report = await check_invariants(frame.result, frame.url, org.org_id, org.file, org.answered, org.code_owner)
        texts.append(f"org {org.org_id} ({report.customers} customers): {frame.result.invariants}")
    frame.result.invariants = "\n    ".join([""] + texts)


async def finish(frame: Frame, load: Load, op_start: float, op_end: float, load_end: float) -> None:
    assert frame.server is not None
    await asyncio.to_thread(frame.server.stop)
    judge_load(frame.result, load, frame.server, op_start, op_end, load_end)
    await check_all(frame)
    nodes = await query(frame.url, "SELECT nodeport FROM pg_dist_node WHERE noderole = 'primary' AND nodeport <> $1 ORDER BY 1", CITUS_PORT)
    left = []
    for node in nodes:
        (row,) = await query(
            frame.cluster.node_url(node["nodeport"]),
            "SELECT (SELECT count(*) FROM pg_replication_slots) AS slots, (SELECT count(*) FROM pg_subscription) AS subs, "
            "(SELECT count(*) FROM pg_publication) AS pubs",
        )
        left.append(f":{node['nodeport']} {row['slots']}/{row['subs']}/{row['pubs']}")
    (cleanup,) = await query(frame.url, "SELECT count(*) AS n FROM pg_dist_cleanup")
    frame.result.lines.append(
        f"after: replication slots/subscriptions/publications left on the workers: {', '.join(left)}; "
        f"pg_dist_cleanup records (old placements awaiting deferred drop): {cleanup['n']}"
    )
    errors = frame.cluster.errors_in_logs()
    if errors:
        frame.result.lines.append("ERROR lines in the Citus nodes' logs (informational): " + " | ".join(errors))


async def org_on_worker(cluster: CitusCluster, url: str, org_id: int, port: int) -> tuple[int, int, int]:
    """(customers of the org on the coordinator, in its shard's table on the worker, distinct orgs
    in that shard table): the org's rows are really on that worker."""
    shard, _p, _lo, _hi = await shard_of(url, org_id)
    (total,) = await query(url, "SELECT count(*) AS n FROM customers WHERE org_id = $1", org_id)
    rows = await query(
        cluster.node_url(port),
        f"SELECT count(*) FILTER (WHERE org_id = $1) AS n, count(DISTINCT org_id) AS orgs FROM customers_{int(shard)}",
        org_id,
    )
    return total["n"], rows[0]["n"], rows[0]["orgs"]


def ports_closed() -> str:
    import socket

    listening = []
    for port in (CITUS_PORT, *WORKERS, NEW_WORKER):
        with socket.socket() as probe:
            probe.settimeout(1)
            if probe.connect_ex((HOST, port)) == 0:
                listening.append(port)
    return f"still listening: {listening}" if listening else f"nothing listens on {HOST}:{CITUS_PORT}-{NEW_WORKER}"


async def run_scenario(result: Result, body) -> Result:  # noqa: ANN001
    cluster = CitusCluster()
    with tempfile.TemporaryDirectory(prefix="patron-stress-citus-orgs-") as folder:
        frame = None
        try:
            frame = await set_up(result, cluster, Path(folder))
            await body(frame)
        finally:
            if frame is not None and frame.server is not None:
                await asyncio.to_thread(frame.server.stop)
            await asyncio.to_thread(cluster.stop)
            result.lines.append(f"cluster stopped (cluster.sh stop); {ports_closed()}")
    return result


# ---------------------------------------------------------------------------------------------
# 11. Move one org's shard to the other worker online


async def scenario_11() -> Result:
    result = Result(11, "Citus: move an org's shard online (force_logical)")

    async def body(frame: Frame) -> None:
        # Three orgs: the one moved (A), one on another shard of A's worker (B), one on the other worker (C).
        ids = await pick_orgs(
            frame.url,
            range(881101, 881200),
            [
                lambda s, p, i, picked: True,
                lambda s, p, i, picked: p == picked[0][2] and s != picked[0][1],
                lambda s, p, i, picked: p != picked[0][2],
            ],
        )
        await apply_orgs(frame, ids, [4, 3, 3])
        moved = frame.orgs[0]
        shard, source, _lo, _hi = await shard_of(frame.url, moved.org_id)
        target = next(port for port in WORKERS if port != source)
        before = {org.org_id: await shard_of(frame.url, org.org_id) for org in frame.orgs}
        took: dict[str, float] = {}

        async def move() -> None:
            began = time.monotonic()
            await query(
                frame.url,
                "SELECT citus_move_shard_placement($1, $2, $3, $2, $4, shard_transfer_mode => 'force_logical')",
                shard, HOST, source, target, timeout=OPERATION_LIMIT,
            )
            took["move"] = time.monotonic() - began

        load, op_start, op_end, load_end = await under_load(frame, 11, move)
        result.lines.append(
            f"operation: SELECT citus_move_shard_placement({shard}, '{HOST}', {source}, '{HOST}', {target}, "
            f"shard_transfer_mode => 'force_logical') for org {moved.org_id} ({moved.customers_at_operation} customers "
            f"then): " + (f"took {took['move']:.1f}s" if "move" in took else "did not complete")
        )
        await finish(frame, load, op_start, op_end, load_end)
        # Where everything is now.
        for table in TABLES:
            sid, port, _lo, _hi = await shard_of(frame.url, moved.org_id, table)
            if port != target:
                result.failures.append(f"org {moved.org_id}'s {table} shard {sid} is on :{port}, not on the target :{target}")
        result.lines.append(f"after: org {moved.org_id}'s shards of {', '.join(TABLES)} all on :{target}: "
                            f"{not any('not on the target' in f for f in result.failures)}")
        for org in frame.orgs[1:]:
            now = await shard_of(frame.url, org.org_id)
            if now[:2] != before[org.org_id][:2]:
                result.failures.append(f"org {org.org_id} moved too: {before[org.org_id][:2]} -> {now[:2]}")
        total, on_worker, orgs_in_shard = await org_on_worker(frame.cluster, frame.url, moved.org_id, target)
        result.lines.append(
            f"after: org {moved.org_id}: {total} customers via the coordinator, {on_worker} in customers_{shard} on :{target} "
            f"(orgs in that shard: {orgs_in_shard}); orgs {', '.join(str(o.org_id) for o in frame.orgs[1:])} stayed where they were"
        )
        if total != on_worker:
            result.failures.append(f"org {moved.org_id}: {total} customers via the coordinator but {on_worker} on the target worker")

    return await run_scenario(result, body)


# ---------------------------------------------------------------------------------------------
# 12. Isolate a large org to a shard of its own


async def scenario_12() -> Result:
    result = Result(12, "Citus: isolate a large org to its own shard (CASCADE)")

    async def body(frame: Frame) -> None:
        # The large org (most clients), a small one sharing its shard, and one on another shard.
        ids = await pick_orgs(
            frame.url,
            range(881201, 881400),
            [
                lambda s, p, i, picked: True,
                lambda s, p, i, picked: s == picked[0][1],
                lambda s, p, i, picked: s != picked[0][1],
            ],
        )
        await apply_orgs(frame, ids, [6, 2, 2])
        large, neighbour = frame.orgs[0], frame.orgs[1]
        shard_before, port_before, lo_before, hi_before = await shard_of(frame.url, large.org_id)
        took: dict[str, float] = {}
        new_shard: dict[str, int] = {}
        notes: list[str] = []
        isolate_sql = "SELECT isolate_tenant_to_new_shard('customers', $1::bigint, cascade_option => 'CASCADE'{mode}) AS shard"

        async def isolate() -> None:
            # First as asked, in the default transfer mode (auto: logical replication, as every
            # table has a primary key), bounded by LOGICAL_LIMIT through statement_timeout (a
            # server-side cancel, after which Citus cleans up).
            began = time.monotonic()
            try:
                rows = await query(
                    frame.url, isolate_sql.format(mode=""), large.org_id,
                    timeout=LOGICAL_LIMIT + 30, statement_timeout=f"{int(LOGICAL_LIMIT * 1000)}",
                )
                took["isolate"] = time.monotonic() - began
                new_shard["id"] = rows[0]["shard"]
                notes.append(f"default (logical) mode: took {took['isolate']:.1f}s, new shard {new_shard['id']}")
                return
            except asyncpg.PostgresError as exc:
                failed = f"{type(exc).__name__}: {exc}"
            took["logical attempt"] = time.monotonic() - began
            stall = frame.cluster.log_lines(STALL_SIGNATURE)
            notes.append(f"default (logical) mode: failed after {took['logical attempt']:.1f}s: {failed}")
            if stall:
                notes.append(
                    f"  the split's logical replication never caught up: the worker's apply worker failed {len(stall)}x with "
                    f"[{stall[0]}] (and {len(stall) - 1} more, every wal_retrieve_retry_interval)"
                )
                notes.append(
                    "  KNOWN CITUS LIMITATION (13.2.2), not Patron's: any UPDATE of a row of the shard during the split's copy "
                    "stalls the non-blocking split (reproduced with plain SQL: a table with a primary key, UPDATEs "
                    "while isolate_tenant_to_new_shard runs; INSERTs alone are fine); possibly citusdata/citus#6790, open: shard splits might hang with concurrent transactions"
                )
            else:
                frame.result.failures.append(f"isolate_tenant_to_new_shard in the default mode failed: {failed}")
            (pending,) = await query(frame.url, "SELECT count(*) AS n FROM pg_dist_cleanup")
            await query(frame.url, "CALL citus_cleanup_orphaned_resources()")
            (left,) = await query(frame.url, "SELECT count(*) AS n FROM pg_dist_cleanup")
            notes.append(f"  CALL citus_cleanup_orphaned_resources(): pg_dist_cleanup {pending['n']} -> {left['n']} records")
            # Then blocking: writes to the org's shard group wait (on locks) while it is split.
            began = time.monotonic()
            took["block_start"] = began
            rows = await query(
                frame.url, isolate_sql.format(mode=", shard_transfer_mode => 'block_writes'"), large.org_id,
                timeout=OPERATION_LIMIT,
            )
            took["isolate"] = time.monotonic() - began
            took["block_end"] = time.monotonic()
            new_shard["id"] = rows[0]["shard"]
            notes.append(
                f"then shard_transfer_mode => 'block_writes': took {took['isolate']:.1f}s, new shard {new_shard['id']}"
            )

        load, op_start, op_end, load_end = await under_load(frame, 12, isolate)
        result.lines.append(
            f"operation: SELECT isolate_tenant_to_new_shard('customers', {large.org_id}, cascade_option => 'CASCADE') "
            f"(org {large.org_id}: {large.customers_at_operation} customers then, "
            f"{', '.join(f'{o.org_id}: {o.customers_at_operation}' for o in frame.orgs[1:])}; "
            f"its shard {shard_before} on :{port_before} covered hashes {lo_before}..{hi_before}): "
            + (f"done {op_end - op_start:.1f}s after it began" if "isolate" in took else "did not complete")
        )
        result.lines += [f"  {note}" for note in notes]
        if "block_end" in took:
            overlapping = [
                x for x in load.stats.attempts if x.started < took["block_end"] and x.started + x.latency > took["block_start"]
            ]
            result.lines.append(
                f"    requests in flight during the block_writes split: {len(overlapping)}, answers "
                f"{dict(Counter(x.status if x.status is not None else x.error for x in overlapping))}, "
                f"longest {max((x.latency for x in overlapping), default=0):.2f}s"
            )
        await finish(frame, load, op_start, op_end, load_end)
        (hashed,) = await query(frame.url, "SELECT worker_hash($1::bigint)::text AS h", large.org_id)
        own = []
        for table in TABLES:
            sid, port, lo, hi = await shard_of(frame.url, large.org_id, table)
            own.append((table, sid, port, lo, hi))
            if not (lo == hi == hashed["h"]):
                result.failures.append(f"org {large.org_id}'s {table} shard {sid} covers {lo}..{hi}, not only its hash {hashed['h']}")
        result.lines.append(
            f"after: org {large.org_id} (hash {hashed['h']}): "
            + ", ".join(f"{t} shard {sid} on :{port} [{lo}..{hi}]" for t, sid, port, lo, hi in own)
        )
        n_shard, n_port, *_ = await shard_of(frame.url, neighbour.org_id)
        result.lines.append(f"after: org {neighbour.org_id}, which shared shard {shard_before}, is now on shard {n_shard} (:{n_port})")
        if n_shard == own[0][1]:
            result.failures.append(f"org {neighbour.org_id} still shares the isolated shard {n_shard}")
        total, on_worker, orgs_in_shard = await org_on_worker(frame.cluster, frame.url, large.org_id, own[0][2])
        result.lines.append(
            f"after: org {large.org_id}: {total} customers via the coordinator, {on_worker} in customers_{own[0][1]} "
            f"on :{own[0][2]}, which holds {orgs_in_shard} org(s)"
        )
        if total != on_worker or orgs_in_shard != 1:
            result.failures.append(f"the isolated shard holds {on_worker} of the org's {total} customers and {orgs_in_shard} orgs")
        plan = await query(
            frame.url,
            "EXPLAIN SELECT * FROM patron_register_new($1::bigint, '[]'::jsonb, '[]'::jsonb, '{}'::timestamp[], "
            "'{}'::timestamp[], '{}'::text[])",
            large.org_id, plan_cache_mode="force_custom_plan",
        )
        text = "\n".join(row[0] for row in plan)
        tasks = re.search(r"Task Count: (\d+)", text)
        node = re.search(r"Node: host=\S+ port=(\d+)", text)
        result.lines.append(
            f"after: EXPLAIN patron_register_new({large.org_id}, ...) with plan_cache_mode=force_custom_plan: "
            f"Task Count: {tasks.group(1) if tasks else '?'}, node :{node.group(1) if node else '?'}"
        )
        if not tasks or tasks.group(1) != "1" or not node or int(node.group(1)) != own[0][2]:
            result.failures.append(f"registrations of org {large.org_id} are not one task on its shard's worker:\n{text}")
        after_ok = sum(
            1 for x in load.stats.attempts if x.started >= op_end and x.status == 200
        )
        result.lines.append(f"after: {after_ok} registration requests answered 200 after the isolation")

    return await run_scenario(result, body)


# ---------------------------------------------------------------------------------------------
# 13. Add a node and rebalance


async def scenario_13() -> Result:
    result = Result(13, "Citus: add a worker and rebalance online")

    async def body(frame: Frame) -> None:
        # Three orgs on different shards, one per worker and one more: the rebalancer (by_disk_size,
        # here all shards below its 100 MB base cost, so by count) moves the lowest shard groups of
        # each worker first, so two orgs are taken from the first ten shards (one per worker) and
        # one from the rest; the plan read after add-worker says which of them move.
        ids = await pick_orgs(
            frame.url,
            range(881301, 881500),
            [
                lambda s, p, i, picked: i < 10,
                lambda s, p, i, picked: i < 10 and p != picked[0][2],
                lambda s, p, i, picked: i >= 10,
            ],
        )
        await apply_orgs(frame, ids, [3, 3, 3])
        counts_before = await placements(frame.url)
        took: dict[str, float] = {}
        info: dict[str, Any] = {}

        async def rebalance() -> None:
            began = time.monotonic()
            info["add"] = await asyncio.to_thread(frame.cluster.add_worker)
            took["add-worker"] = time.monotonic() - began
            plan = await query(frame.url, "SELECT table_name::text AS t, shardid, sourceport, targetport FROM get_rebalance_table_shards_plan()")
            info["plan"] = plan
            began = time.monotonic()
            (job,) = await query(frame.url, "SELECT citus_rebalance_start() AS job")
            info["job"] = job["job"]
            done_at: list[float] = []
            state = "?"
            for _ in range(int(OPERATION_LIMIT)):  # polled each second, bounded by the operation limit
                (status,) = await query(
                    frame.url,
                    "SELECT state::text AS state, details::text AS details FROM citus_rebalance_status() WHERE job_id = $1",
                    job["job"],
                )
                state = status["state"]
                done = int(re.search(r'"done": (\d+)', status["details"]).group(1)) if '"done"' in status["details"] else 0
                while len(done_at) < done:
                    done_at.append(time.monotonic() - began)
                if state in ("finished", "failed", "cancelled", "failing", "cancelling"):
                    break
                await asyncio.sleep(1)
            took["rebalance"] = time.monotonic() - began
            info["state"], info["done_at"] = state, done_at
            if state != "finished":
                tasks = await query(
                    frame.url,
                    "SELECT task_id, status::text AS status, message, command FROM pg_dist_background_task WHERE job_id = $1 "
                    "AND status::text NOT IN ('done') ORDER BY task_id",
                    job["job"],
                )
                if state not in ("failed", "cancelled"):
                    await query(frame.url, "SELECT citus_rebalance_stop()")
                raise RuntimeError(
                    f"rebalance job {job['job']} ended {state}: "
                    + "; ".join(f"task {t['task_id']} {t['status']}: {t['message']!r} ({t['command'][:160]})" for t in tasks[:5])
                )

        load, op_start, op_end, load_end = await under_load(frame, 13, rebalance)
        plan = info.get("plan", [])
        moves = sorted({(r["shardid"], r["sourceport"], r["targetport"]) for r in plan if r["t"] == "customers"})
        result.lines.append(
            f"operation: cluster.sh add-worker ({info.get('add', '?')}; took {took.get('add-worker', 0):.1f}s), "
            f"then SELECT citus_rebalance_start() (job {info.get('job', '?')}), polled citus_rebalance_status() each second: "
            f"{info.get('state', 'not started')} after {took.get('rebalance', 0):.1f}s"
        )
        result.lines.append(
            f"plan: {len(moves)} shard groups of 5 colocated shards to :{NEW_WORKER} "
            f"(customers shards {', '.join(f'{s} from :{p}' for s, p, _t in moves)})"
        )
        if info.get("done_at"):
            result.lines.append("background tasks done at " + ", ".join(f"{t:.0f}s" for t in info["done_at"]) + " after the start")
        await finish(frame, load, op_start, op_end, load_end)
        counts_after = await placements(frame.url)
        result.lines.append(
            f"after: shard placements per node before {dict(sorted(counts_before.items()))}, after {dict(sorted(counts_after.items()))}"
        )
        if counts_after[NEW_WORKER] == 0:
            result.failures.append(f"no shard was moved to the new worker :{NEW_WORKER}")
        elif counts_after[NEW_WORKER] != 5 * len(moves):
            result.failures.append(f"{counts_after[NEW_WORKER]} placements on :{NEW_WORKER}, the plan had {5 * len(moves)}")
        planned = {s: t for s, _p, t in moves}
        moved_orgs = []
        for org in frame.orgs:
            sid, port, _lo, _hi = await shard_of(frame.url, org.org_id)
            want = planned.get(sid)
            if want is not None:
                moved_orgs.append(org.org_id)
                if port != want:
                    result.failures.append(f"org {org.org_id}'s shard {sid} is on :{port}, the plan said :{want}")
                total, on_worker, _ = await org_on_worker(frame.cluster, frame.url, org.org_id, port)
                result.lines.append(
                    f"after: org {org.org_id} moved with shard {sid} to :{port}: {total} customers via the coordinator, "
                    f"{on_worker} on the new worker"
                )
                if total != on_worker:
                    result.failures.append(f"org {org.org_id}: {total} customers via the coordinator, {on_worker} on :{port}")
            else:
                result.lines.append(f"after: org {org.org_id} stayed with shard {sid} on :{port}")
        if not moved_orgs:
            result.failures.append("the rebalance moved none of the loaded orgs' shards: the load did not cover a move")

    return await run_scenario(result, body)
