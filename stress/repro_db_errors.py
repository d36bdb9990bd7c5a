"""Deterministic reproduction of scenario 2's failure: database errors answered 500, not 503.

    .venv/bin/python stress/repro_db_errors.py

On a private PostgreSQL cluster (as `make stress`), with one `patron serve` worker:
  A. a backend of Patron's pool is terminated (as `pg_ctl stop -m fast` does to every backend),
     then an add is sent;
  B. a backend of Patron's pool is terminated while its query runs (waits on a lock);
  C. PostgreSQL is put into "shutting down" (`pg_ctl stop -m smart` while another session stays
     open, so that new connections are refused with 57P03), then an add is sent on a fresh worker.
None may be answered 500. B and C are answered 503 "Service temporarily unavailable" (spec:
customer-add.md §5, docs/scale-out.md). A may be 200 as well: the driver's pool notices a
connection the server closed and registers on a new one. The script prints what Patron answered
and exits 1 when any answer was not as expected.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncpg  # noqa: E402
import httpx  # noqa: E402

import infra  # noqa: E402
from load import body_of, new_item  # noqa: E402

ORG_FILE = infra.STRESS / "stress-org.toml"


def add(base: str, mobile: str) -> tuple[int, str]:
    response = httpx.post(
        f"{base}/v1.1/customer/add",
        content=body_of([new_item(mobile)]),
        headers={"Authorization": infra.basic_auth(), "Content-Type": "application/json"},
        timeout=10,
    )
    return response.status_code, response.text[:200]


async def terminate_patron_backends(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return len(
            await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'patron'"
            )
        )
    finally:
        await conn.close()


async def terminated_mid_query(base: str, admin_url: str, url: str) -> int:
    """B. Patron's backend is terminated while its query waits (on a lock held by another session)."""
    locker = await asyncpg.connect(url)
    try:
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
        pending = asyncio.create_task(asyncio.to_thread(add, base, "919900000005"))
        await asyncio.sleep(1.0)
        killed = await terminate_patron_backends(admin_url)
        answer = await pending
        await transaction.rollback()
    finally:
        await locker.close()
    print(f"B. Patron's backend terminated mid-query ({killed} terminated): {answer}")
    return answer[0]


def main() -> int:
    cluster = infra.PgCluster()
    cluster.init()
    cluster.start()
    url = asyncio.run(cluster.create_database("repro"))
    infra.prepare_database(url, ORG_FILE)
    outcomes = []

    server = infra.PatronServer(url, workers=1, env={"PATRON_DB_TIMEOUT_SECONDS": "2"}).started()
    print("warm-up add:", add(server.base, "919900000001"))
    killed = asyncio.run(terminate_patron_backends(cluster.admin_url))
    answer = add(server.base, "919900000002")
    print(f"A. after pg_terminate_backend of {killed} pooled backends: {answer}")
    outcomes.append((answer[0], {200, 503}))
    answer = add(server.base, "919900000003")
    print(f"   and the next add: {answer}")
    outcomes.append((answer[0], {200, 503}))
    outcomes.append((asyncio.run(terminated_mid_query(server.base, cluster.admin_url, url)), {503}))
    server.stop()

    server = infra.PatronServer(url, workers=1, env={"PATRON_DB_TIMEOUT_SECONDS": "2"}).started()
    holder = subprocess.Popen(
        ["runuser", "-u", "postgres", "--", "psql", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres",
         "-c", "SELECT pg_sleep(8)"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        import time

        time.sleep(1)
        cluster._cmd("pg_ctl", "-D", str(cluster.data), "-m", "smart", "-W", "stop")
        time.sleep(0.5)
        answer = add(server.base, "919900000004")
        print(f"C. while PostgreSQL is shutting down (57P03 on connect): {answer}")
        outcomes.append((answer[0], {503}))
    finally:
        holder.wait(timeout=30)
        server.stop()
        cluster._running = True
        cluster.destroy()
        import shutil

        shutil.rmtree(infra.LOG_DIR, ignore_errors=True)
    bad = [code for code, expected in outcomes if code not in expected]
    answers = [code for code, _ in outcomes]
    print("OK: every answer as expected" if not bad else f"BUG: answers {answers}, expected 503 (A: or 200) each")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
