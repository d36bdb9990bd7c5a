"""`make stress`: Patron under faults and sustained load, against real `patron serve` processes.

1. PostgreSQL: kill -9 of the server (uvicorn parent and workers) under batch load, restart, retry.
2. PostgreSQL stopped for 10 s under load: 503 in the envelope within the DB timeout, recovery.
3. SQLite: the kill -9 test, and 2 workers x 40 concurrent writers without "database is locked".
4. Soak at ~80 % of the measured max throughput of single adds: errors, p99 and RSS per 10 s.
5. Overlapping identifiers across 64 clients: the identity invariants hold.
6. Schema-based fuzzing (schemathesis, from Patron's own /openapi.json) of add, get, audits,
   token generation, update, update_identity and search: at least 10,000 requests, every reply a proper, documented answer.
7-10. Abuse (issue #20, stress/abuse.py): a well-behaved caller (one connection, single adds and
   gets) is timed for 10 s of quiet, then while abusers in a separate process attack the server;
   each passes when its p99 under abuse stays within max(2 x quiet p99, quiet p99 + 10 ms), it
   has no error, the abuse gets the promised answers and no worker's RSS grows by over 30 MB (nor
   climbs during the abuse). CPU of every party, other processes included, is printed: on a busy
   machine a p99 failure says so (re-run on a quiet one). About 40 s each.
   7. Header flood: a 64 MiB header line, 200,000 headers, heads just over each limit: 431, closed.
   8. Oversized batches: 8 at once of 250,000 items in ~1 MB, JSON then XML: a short 400.
   9. Credential guessing: 16 guessers of till passwords and client secrets from one address,
      real argon2id hashes: 401s, then 429 with Retry-After; the good, verified till unaffected.
   10. Slow clients: 300 connections trickling a head or a body, or silent, with the header and
      body timeouts set to 3 s and 5 s and the cap to 100 connections per worker: 408, 503.
11-13. Citus online operations (issue #19, stress/citus_ops.py) on a private Citus cluster
   (../shared/citus/cluster.sh, CITUS_DIR=/tmp/patron-stress-citus, ports 54360-54363, reset at
   the start and stopped at the end of each), under registration load of 3 orgs (single adds,
   batches, referrals, re-sends) ~10 s before, during and ~10 s after: nothing acknowledged lost,
   no duplicate, no double reward (SQL invariants and `patron check --org`), 503 bursts short.
   11. citus_move_shard_placement of one org's shard group to the other worker (force_logical).
   12. isolate_tenant_to_new_shard of the largest org, CASCADE (default mode first; if Citus's
      logical split stalls, as UPDATEs make it in 13.2.2, then block_writes): a shard of its own.
   13. cluster.sh add-worker, citus_rebalance_start() polled to the end: shards on the new node.
14. Costly searches (issue #29, stress/searches.py): 22 threads of a read-only till search 200,000
   customers (each again once answered), on PostgreSQL and then SQLite, one worker, while the good caller of 7-10
   registers: its p99 holds, every search is answered within its deadline (200, 400, 429 or 504).
15-16. Sign-in floods and lockouts (issue #29, stress/signin.py): real users and tills get in from
   other addresses while a dozen addresses flood wrong sign-ins (15), 30 tills get in at once after a
   restart, and a named console user locked out from 3 addresses signs in from another (16).
17-20. Events (issue #31, stress/events.py): registration load on an org with signed webhooks (receivers
   of the run's own on 127.0.0.1) and a RabbitMQ broker sink (an exchange and queue of the run's own,
   deleted at the end), delivered by real `patron relay` processes with PATRON_EVENT_RETRY_SCALE=0.01.
   17. The webhook's receiver down for 10 minutes (60 s with STRESS_QUICK=1), then back.
   18. One receiver answers 500 to 30 % of deliveries, another takes 20 s: the healthy webhook's and the
      broker's lag (receipt minus createdAt) stays under 2 s.
   19. Two relays at once, killed with SIGKILL three times between them.
   20. The relay's connection to RabbitMQ cut mid-stream (a TCP proxy) and restored, twice.
   Each checks every committed change against its event (audits against the events table), and that
   every sink got every event at least once, each customer's in sequence order; it prints committed
   changes, events, deliveries, duplicates, out of order and lost, and passes when none is lost or
   out of order (and, in 18, the lag rule holds).

Scenarios 7-10 talk to 127.0.0.1 only, and every loop of theirs is bounded in count and in time.
Every PostgreSQL scenario runs on a private cluster (initdb into a temporary directory, its own
port on 127.0.0.1), stopped and removed at the end; the machine's shared server is not touched.

Environment: STRESS_QUICK=1 shortens the soak to 60 s and scenario 17's outage to 60 s; STRESS_ONLY=1,3
runs some scenarios (all twenty by default);
STRESS_FUZZ_SEED, STRESS_FUZZ_SCALE and STRESS_FUZZ_WORKERS tune scenario 6 (stress/fuzz.py).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import abuse  # noqa: E402
import citus_ops  # noqa: E402
import events  # noqa: E402
import fuzz  # noqa: E402
import infra  # noqa: E402
import scenarios  # noqa: E402
import searches  # noqa: E402
import signin  # noqa: E402
from scenarios import Result  # noqa: E402


def _loop_factory():  # noqa: ANN202
    try:
        import uvloop

        return uvloop.new_event_loop
    except ImportError:
        return None


def run(coroutine):  # noqa: ANN001, ANN201
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(coroutine)


def main() -> int:
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian package wrk); `make stress` installs it", file=sys.stderr)
        return 2
    quick = os.environ.get("STRESS_QUICK") == "1"
    only = {int(n) for n in os.environ.get("STRESS_ONLY", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20").split(",") if n.strip()}
    soak_seconds = 60 if quick else 120
    started = time.monotonic()
    print(f"Patron stress run: scenarios {sorted(only)}; soak {soak_seconds}s "
          f"({'STRESS_QUICK=1' if quick else 'full run, STRESS_QUICK not set'}); "
          f"`patron check` {'available' if infra.has_patron_check() else 'not available: built-in SQL checks stand in'}")
    results: list[Result] = []

    def attempt(number: int, title: str, make) -> None:  # noqa: ANN001
        if number not in only:
            return
        began = time.monotonic()
        try:
            result = run(make())
        except Exception:  # noqa: BLE001 - a crashed scenario is a failed one, and the run goes on
            result = Result(number, title)
            result.failures.append("the scenario crashed:\n" + traceback.format_exc())
        result.seconds = time.monotonic() - began
        result.print()
        sys.stdout.flush()
        results.append(result)

    cluster = None
    if only & {1, 2, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 19, 20}:
        cluster = infra.PgCluster()
        cluster.init()
        cluster.start()
        print(f"private PostgreSQL cluster on 127.0.0.1:{cluster.port} in {cluster.dir}")
    try:
        attempt(1, "PostgreSQL kill -9", lambda: scenarios.scenario_1(cluster))
        attempt(2, "PostgreSQL stopped 10s", lambda: scenarios.scenario_2(cluster))
        with tempfile.TemporaryDirectory(prefix="patron-stress-sqlite-") as folder:
            attempt(3, "SQLite", lambda: scenarios.scenario_3(Path(folder)))
        attempt(4, "soak", lambda: scenarios.scenario_4(cluster, soak_seconds, quick))
        attempt(5, "overlapping identifiers", lambda: scenarios.scenario_5(cluster))
        attempt(6, "schema fuzzing", lambda: fuzz.scenario_6(cluster))
        attempt(7, "header flood", lambda: abuse.scenario_7(cluster))
        attempt(8, "oversized batches", lambda: abuse.scenario_8(cluster))
        attempt(9, "credential guessing", lambda: abuse.scenario_9(cluster))
        attempt(10, "slow clients", lambda: abuse.scenario_10(cluster))
        attempt(11, "Citus shard move", citus_ops.scenario_11)
        attempt(12, "Citus tenant isolation", citus_ops.scenario_12)
        attempt(13, "Citus add node + rebalance", citus_ops.scenario_13)
        attempt(14, "costly searches", lambda: searches.scenario_14(cluster))
        attempt(15, "sign-in flood", lambda: signin.scenario_15(cluster))
        attempt(16, "console lockout", lambda: signin.scenario_16(cluster))
        attempt(17, "webhook receiver down", lambda: events.scenario_17(cluster, quick))
        attempt(18, "failing and slow sinks", lambda: events.scenario_18(cluster))
        attempt(19, "relay kill -9, two relays", lambda: events.scenario_19(cluster))
        attempt(20, "broker connection cut", lambda: events.scenario_20(cluster))
    finally:
        if cluster is not None:
            cluster.destroy()

    print(f"\n=== Summary (wall time {time.monotonic() - started:.0f}s) ===")
    print("|  # | scenario                        | sent   | answered | retried | lost | dup | double rewards | result |")
    print("|----|---------------------------------|--------|----------|---------|------|-----|----------------|--------|")
    for r in results:
        print(
            f"| {r.number:>2} | {r.title[:31]:<31} | {r.sent:>6} | {r.answered:>8} | {r.retried:>7} | {r.lost:>4} | "
            f"{r.duplicates:>3} | {r.double_rewards:>14} | {'PASS' if r.ok else 'FAIL':<6} |"
        )
    failed = [r for r in results if not r.ok]
    if failed:
        print("\nFAILED scenarios: " + ", ".join(str(r.number) for r in failed) + " (reasons above, marked !!)")
        print(f"server logs kept in {infra.LOG_DIR}")
    else:
        shutil.rmtree(infra.LOG_DIR, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
