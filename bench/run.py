"""`make bench`: Patron's speed beside the ceiling of its own stack, measured in the same run.

Starts Patron (2 workers) on a throwaway PostgreSQL database, applies bench/bench-org.toml, drives
it with wrk (64 connections) and prints one table: each figure with its ratio to the ceiling
(bench/ceiling.py: the same body, one INSERT ... RETURNING per customer, same server and driver)
and to the ceiling that writes what Patron writes (customer, audit, membership, ledger).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_BIN = Path(sys.executable).parent
PG_ADMIN = os.environ.get("PATRON_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
CONNECTIONS = 64
THREADS = 2
WARMUP_SECONDS = int(os.environ.get("BENCH_WARMUP", "3"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
TILL, PASSWORD, ORG_ID = "bench.till", "BenchPass1", 990001
SECRET_KEY = "bench-secret-key-" + "x" * 32
_LINE = re.compile(r"BENCH requests=(\d+) seconds=([\d.]+) p50_ms=([\d.]+) p99_ms=([\d.]+) unexpected=(\d+) socket_errors=(\d+)")


@dataclass
class Load:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _admin(statement: str) -> None:
    await _run_sql(PG_ADMIN, statement)


@contextmanager
def throwaway_database(label: str) -> Iterator[str]:
    name = f"patron_bench_{label}_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def server(command: list[str], env: dict[str, str], port: int, cwd: Path = ROOT) -> Iterator[str]:
    log = tempfile.NamedTemporaryFile(prefix="patron-bench-", suffix=".log", delete=False)
    process = subprocess.Popen(command, env={**os.environ, **env}, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{base}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"server did not start; see {log.name}")
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def patron(database_url: str, *args: str) -> None:
    env = {**os.environ, "PATRON_DATABASE_URL": database_url}
    subprocess.run([str(VENV_BIN / "patron"), *args], env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


@contextmanager
def patron_server(database_url: str) -> Iterator[str]:
    patron(database_url, "db", "upgrade")
    patron(database_url, "org", "apply", str(BENCH / "bench-org.toml"))
    port = free_port()
    env = {"PATRON_DATABASE_URL": database_url, "PATRON_SECRET_KEY": SECRET_KEY}
    with server([str(VENV_BIN / "patron"), "serve", "--port", str(port), "--workers", "2"], env, port) as base:
        yield base


def wrk(script: str, base: str, seconds: int, env: dict[str, str]) -> Load:
    command = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "5s", "-s", str(BENCH / "lua" / script), base]
    out = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=True)
    match = _LINE.search(out.stdout)
    if not match:
        raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")
    requests, secs, p50, p99, unexpected, socket_errors = match.groups()
    return Load(int(requests), float(secs), float(p50), float(p99), int(unexpected) + int(socket_errors))


def fresh_runs() -> Iterator[int]:
    """Run numbers for one database: each run registers the mobiles 919R…, R its number, and 0
    is left to the import's file (9190…)."""
    return iter(range(1, 10))


def settle_database() -> None:
    """Write out what earlier figures left dirty, so that no figure pays for another's writes.

    Each figure leaves WAL and dirty pages behind. Left alone, a checkpoint (one per max_wal_size
    of WAL, 1 GB by default) lands inside whichever figure crosses the mark, and that figure alone
    pays for flushing its predecessors' pages. Every figure starts from a checkpoint instead.
    """
    asyncio.run(_admin("CHECKPOINT"))


def measure(script: str, base: str, runs: Iterator[int], extra: dict[str, str] | None = None) -> Load:
    """A warm-up, then the measured run; each run registers mobiles no other run uses."""
    settle_database()
    auth = "Basic " + base64.b64encode(f"{TILL}:{hashlib.md5(PASSWORD.encode()).hexdigest()}".encode()).decode()
    env = {"BENCH_AUTH": auth, **(extra or {})}
    if WARMUP_SECONDS:
        wrk(script, base, WARMUP_SECONDS, {**env, "BENCH_RUN": str(next(runs))})
    return wrk(script, base, SECONDS, {**env, "BENCH_RUN": str(next(runs))})


def shared(base: str) -> dict[str, tuple[float, float]]:
    """Patron's statements so far that requests could share, by kind: (statements, requests served)."""
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(httpx.get(f"{base}/metrics").text):
        for sample in family.samples:
            if sample.name in ("patron_requests_per_statement_count", "patron_requests_per_statement_sum"):
                kind = totals.setdefault(sample.labels["statement"], [0.0, 0.0])
                kind[sample.name.endswith("_sum")] += sample.value
    return {kind: (count, served) for kind, (count, served) in totals.items()}


def per_statement(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]], kind: str) -> float:
    """Requests served per statement between two scrapes."""
    count = after.get(kind, (0, 0))[0] - before.get(kind, (0, 0))[0]
    served = after.get(kind, (0, 0))[1] - before.get(kind, (0, 0))[1]
    return served / count if count else 0.0


def existing_mobiles(database_url: str, path: Path) -> None:
    async def dump() -> None:
        conn = await asyncpg.connect(database_url)
        rows = await conn.fetch("SELECT mobile FROM customers WHERE org_id = $1 LIMIT 20000", ORG_ID)
        await conn.close()
        path.write_text("".join(f"{row['mobile']}\n" for row in rows))

    asyncio.run(dump())


def ceiling_schema() -> str:
    sys.path.insert(0, str(BENCH))
    from ceiling import SCHEMA

    return SCHEMA


async def _run_sql(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


IMPORT_ROWS = int(os.environ.get("BENCH_IMPORT_ROWS", "1000000"))


def import_file(path: Path, rows: int) -> None:
    """Generated customers, none of them met before in this run (the add runs use 9194… to 9199…)."""
    with path.open("w") as out:
        out.write("mobile,email,firstname,lastname,custom.city,custom.visits\n")
        for n in range(rows):
            out.write(f"9190{n:08d},i{n}@import.example,Imported,Customer,Pune,{n % 9}\n")


@dataclass
class Import:
    rows: int
    seconds: float
    peak_rss_mb: float
    ok: bool


def tree_rss_mb(root: int) -> float:
    """Resident memory of a process and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    resident: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        resident[int(entry)] = int(fields[21])
    tree, grew = {root}, True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= found
        grew = bool(found)
    return sum(resident.get(pid, 0) for pid in tree) * os.sysconf("SC_PAGE_SIZE") / 2**20


def bulk_import(database_url: str) -> Import:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "customers.csv"
        import_file(path, IMPORT_ROWS)
        output = Path(folder) / "output.txt"
        started = time.monotonic()
        with output.open("w") as sink:
            process = subprocess.Popen(
                [str(VENV_BIN / "patron"), "customer", "import", str(path), "--org", str(ORG_ID)],
                env={**os.environ, "PATRON_DATABASE_URL": database_url},
                cwd=ROOT,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
            # The import runs in several processes: the peak is of all of them together.
            peak = 0.0
            while process.poll() is None:
                peak = max(peak, tree_rss_mb(process.pid))
                time.sleep(0.25)
        seconds = time.monotonic() - started
        out = output.read_text()
    ok = process.returncode == 0 and f"{IMPORT_ROWS:,} created" in out
    if not ok:
        print(out[-2000:], file=sys.stderr)
    return Import(IMPORT_ROWS, seconds, peak, ok)


def main() -> int:
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian package wrk); `make bench` installs it", file=sys.stderr)
        return 2
    started = time.monotonic()

    # Both servers stay up, and each Patron figure is measured right after the ceilings it is
    # compared with: a shared 2-core machine drifts over minutes, and a ratio of two figures
    # taken seconds apart drifts less than one of figures taken minutes apart.
    with throwaway_database("ceiling") as ceiling_url, throwaway_database("patron") as url:
        asyncio.run(_run_sql(ceiling_url, ceiling_schema()))
        patron(ceiling_url, "db", "upgrade")  # the tables of the same-writes ceiling
        port = free_port()
        command = [str(VENV_BIN / "uvicorn"), "ceiling:app", "--port", str(port), "--workers", "2", "--no-access-log", "--log-level", "warning"]
        with server(command, {"CEILING_DSN": ceiling_url}, port, cwd=BENCH) as ceiling_base, patron_server(url) as base:
            ceiling_runs, runs = fresh_runs(), fresh_runs()
            ceiling = measure("add.lua", ceiling_base, ceiling_runs, {"BENCH_PATH": "/"})
            same = measure("add.lua", ceiling_base, ceiling_runs, {"BENCH_PATH": "/same-writes"})
            before = shared(base)
            single = measure("add.lua", base, runs)
            after_single = shared(base)
            ceiling_batch = measure("batch.lua", ceiling_base, ceiling_runs, {"BENCH_PATH": "/"})
            same_batch = measure("batch.lua", ceiling_base, ceiling_runs, {"BENCH_PATH": "/same-writes"})
            batch = measure("batch.lua", base, runs)
            mobiles = Path(tempfile.mkstemp(suffix=".txt")[1])
            existing_mobiles(url, mobiles)
            before_get = shared(base)
            get = measure("get.lua", base, runs, {"BENCH_MOBILES": str(mobiles)})
            after_get = shared(base)
        settle_database()
        imported = bulk_import(url)

    with tempfile.TemporaryDirectory() as folder:
        with patron_server(f"sqlite:///{folder}/bench.db") as base:
            sqlite_single = measure("add.lua", base, fresh_runs())

    def line(name: str, unit: str, value: float, load: Load, *ceilings: float | None) -> None:
        ratios = [f"{value / ceiling_value:5.2f}" if ceiling_value else "    -" for ceiling_value in (*ceilings, None, None)[:2]]
        print(f"| {name:<36} | {value:>10,.0f} {unit:<12} | {ratios[0]} | {ratios[1]} | {load.p50_ms:>7.1f} | {load.p99_ms:>7.1f} | {load.errors:>6} |")

    print()
    print(f"Patron benchmark: 2 workers, wrk {THREADS} threads x {CONNECTIONS} connections, {SECONDS}s per figure after {WARMUP_SECONDS}s warm-up")
    print("ratio: to the ceiling (one row per customer); same: to the ceiling that writes Patron's four rows")
    print(f"| {'figure':<36} | {'value':>23} | ratio | same  | p50 ms  | p99 ms  | errors |")
    print(f"|{'-' * 38}|{'-' * 25}|-------|-------|---------|---------|--------|")
    line("ceiling: add, 1 customer", "reg/s", ceiling.per_second, ceiling)
    line("ceiling: add, 100 per batch", "customers/s", ceiling_batch.per_second * 100, ceiling_batch)
    line("ceiling, same writes: add, 1", "reg/s", same.per_second, same, ceiling.per_second)
    line("ceiling, same writes: add, 100/batch", "customers/s", same_batch.per_second * 100, same_batch, ceiling_batch.per_second * 100)
    line("patron: add, 1 customer (PG)", "reg/s", single.per_second, single, ceiling.per_second, same.per_second)
    line("patron: add, 100 per batch (PG)", "customers/s", batch.per_second * 100, batch, ceiling_batch.per_second * 100,
         same_batch.per_second * 100)
    line("patron: get by mobile (PG)", "req/s", get.per_second, get)
    line("patron: add, 1 customer (SQLite)", "reg/s", sqlite_single.per_second, sqlite_single, ceiling.per_second, same.per_second)
    print(
        f"| {'patron: import ' + format(imported.rows, ',') + ' (PG)':<36} | {imported.rows / imported.seconds:>10,.0f} "
        f"{'customers/s':<12} |     - |     - | {imported.seconds:>6.1f}s wall | peak RSS {imported.peak_rss_mb:,.0f} MB, all processes |"
    )
    print(
        f"\nrequests per shared statement (warm-up included): single add {per_statement(before, after_single, 'register'):.1f}"
        f" registrations, get {per_statement(before_get, after_get, 'look_up'):.1f} look-ups"
    )
    errors = sum(load.errors for load in (same, same_batch, single, batch, get, sqlite_single)) + (0 if imported.ok else 1)
    print(f"\nnon-2xx or unexpected item codes: {errors}; wall time {time.monotonic() - started:.0f}s")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
