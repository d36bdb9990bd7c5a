"""The member-care console's render times on an org of many customers, beside two baselines of the
same server in the same run (GET /health and customer/get), as p50/p95 over N sequential requests.

    .venv/bin/python bench/console.py            # PostgreSQL (a throwaway database), 200,000 customers
    BENCH_CONSOLE_DB=sqlite .venv/bin/python bench/console.py

The customers are imported (`patron customer import`, as bench/run.py fills its database), all
registered today: the overview's 30-day window then holds every one of them, its worst case. One
worker serves, one request at a time, so each figure is a page's own cost. The overview is
measured twice: as served (each org's figures are reused for 60 s) and uncached (a second server
with PATRON_CONSOLE_OVERVIEW_CACHE_SECONDS=0), which is what the first view each minute costs.
BENCH_CONSOLE_CUSTOMERS sets the customers (200000), BENCH_CONSOLE_REQUESTS the requests per page (50).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import BENCH, ORG_ID, PASSWORD, ROOT, SECRET_KEY, TILL, VENV_BIN, free_port, import_file, import_mobile, server, throwaway_database  # noqa: E402

CUSTOMERS = int(os.environ.get("BENCH_CONSOLE_CUSTOMERS", "200000"))
REQUESTS = int(os.environ.get("BENCH_CONSOLE_REQUESTS", "50"))
DATABASE = os.environ.get("BENCH_CONSOLE_DB", "postgresql")
LOGIN, CONSOLE_PASSWORD = "bench.lead", "bench-console-pass"
CONSOLE_USER = f"""
[[console_users]]
login = "{LOGIN}"
name = "Bench lead"
password = "{CONSOLE_PASSWORD}"
access_group = "{{group}}"
"""


def org_file(folder: Path) -> Path:
    text = (BENCH / "bench-org.toml").read_text()
    group = re.search(r'access_group = "([^"]+)"', text).group(1)  # the store's: customer write
    path = folder / "bench-org-console.toml"
    path.write_text(text + CONSOLE_USER.replace("{group}", group))
    return path


def run(database_url: str, *args: str) -> str:
    env = {**os.environ, "PATRON_DATABASE_URL": database_url}
    done = subprocess.run([str(VENV_BIN / "patron"), *args], env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
    return done.stdout


@contextmanager
def database() -> Iterator[str]:
    if DATABASE == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/patron.db"
        return
    with throwaway_database("console") as url:
        yield url


@contextmanager
def patron_serving(database_url: str, **settings: str) -> Iterator[str]:
    port = free_port()
    env = {"PATRON_DATABASE_URL": database_url, "PATRON_SECRET_KEY": SECRET_KEY, "PATRON_LOG_LEVEL": "warning", **settings}
    with server([str(VENV_BIN / "patron"), "serve", "--port", str(port)], env, port) as base:
        yield base


@contextmanager
def signed_in(base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, timeout=60) as client:
        form = client.get("/console/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        answer = client.post("/console/login", data={"login": LOGIN, "password": CONSOLE_PASSWORD, "csrf_token": token})
        assert answer.status_code == 303, answer.text[:500]
        yield client


def timed(call: Callable[[], httpx.Response], requests: int = REQUESTS) -> tuple[float, float, float]:
    """p50, p95 and max in milliseconds; each answer must be a 200."""
    call()  # warm: the first request of a page compiles its templates and statements
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = call()
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (response.status_code, response.text[:300])
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)], times[-1]


def main() -> int:
    rows: list[tuple[str, tuple[float, float, float]]] = []
    with tempfile.TemporaryDirectory() as folder, database() as url:
        run(url, "db", "upgrade")
        run(url, "org", "apply", str(org_file(Path(folder))))
        started = time.monotonic()
        csv = Path(folder) / "customers.csv"
        import_file(csv, CUSTOMERS)
        run(url, "customer", "import", str(csv), "--org", str(ORG_ID))
        print(f"{CUSTOMERS:,} customers imported on {DATABASE} in {time.monotonic() - started:.0f} s", file=sys.stderr)
        if DATABASE != "sqlite":
            subprocess.run(["psql", url, "-qc", "VACUUM ANALYZE"], check=False, capture_output=True)
        md5 = hashlib.md5(PASSWORD.encode()).hexdigest()
        till = {"Authorization": "Basic " + base64.b64encode(f"{TILL}:{md5}".encode()).decode()}
        mobile = import_mobile(CUSTOMERS // 2)

        with patron_serving(url) as base, httpx.Client(base_url=base, timeout=60) as plain:
            plain.get("/v1.1/customer/get", params={"mobile": mobile}, headers=till)  # the till's hash, once
            user_id = plain.get("/v1.1/customer/get", params={"mobile": mobile, "format": "json"}, headers=till).json()
            user_id = user_id["response"]["customers"]["customer"][0]["user_id"]
            rows.append(("GET /health (baseline)", timed(lambda: plain.get("/health"))))
            rows.append((
                "GET /v1.1/customer/get (baseline)",
                timed(lambda: plain.get("/v1.1/customer/get", params={"mobile": mobile}, headers=till)),
            ))
            rows.append(("GET /console/login", timed(lambda: plain.get("/console/login"))))
            with signed_in(base) as console:
                rows.append(("GET /console/ (overview, as served: cached 60 s)", timed(lambda: console.get("/console/"))))
                rows.append((
                    "GET /console/customers?q=<mobile>",
                    timed(lambda: console.get("/console/customers", params={"q": mobile})),
                ))
                rows.append((
                    f"GET /console/customers?q=Imported (all {CUSTOMERS:,} match)",
                    timed(lambda: console.get("/console/customers", params={"q": "Imported"}), max(5, REQUESTS // 5)),
                ))
                rows.append((
                    "GET /console/customers?filter=firstname:STARTS:imp",
                    timed(lambda: console.get("/console/customers", params={"filter": "firstname:STARTS:imp"}), max(5, REQUESTS // 5)),
                ))
                rows.append(("GET /console/customers/{id}", timed(lambda: console.get(f"/console/customers/{user_id}"))))
                rows.append(("GET /console/identity-requests", timed(lambda: console.get("/console/identity-requests"))))
        with patron_serving(url, PATRON_CONSOLE_OVERVIEW_CACHE_SECONDS="0") as base, signed_in(base) as console:
            rows.append(("GET /console/ (overview, uncached)", timed(lambda: console.get("/console/"), max(5, REQUESTS // 5))))

    print(f"\nConsole pages on {DATABASE}, {CUSTOMERS:,} customers in the org, one worker, sequential requests")
    print(f"{'page':<58} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, (p50, p95, worst) in rows:
        print(f"{name:<58} {p50:>8.1f} {p95:>8.1f} {worst:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
