"""`python bench/search.py`: customer/search's latency on an org of a million customers, beside a
customer/get by mobile measured in the same run.

Fills a throwaway PostgreSQL database (or, with --sqlite, a SQLite file) through `patron customer
import`, the bulk path every large org takes: ROWS customers of the bench org (bench/bench-org.toml)
with varied names, emails, external ids, registration days over three years, a city and a visit
count, a tenth of them NON_LOYALTY; and a second org holding a tenth as many customers with the
same mobiles and names, so that every search's org scoping is real. Then starts `patron serve`
(one worker) and sends each kind of search one request at a time through HTTP, each with another
value, and prints p50/p95/p99 per kind and its ratio to the get's.

    .venv/bin/python bench/search.py [--rows 1000000] [--sqlite] [--seconds 20]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import (  # noqa: E402  (bench/run.py's helpers: the same databases and server as make bench)
    BENCH,
    PASSWORD,
    ROOT,
    TILL,
    VENV_BIN,
    free_port,
    patron,
    server,
    throwaway_database,
)

ORG_ID, OTHER_ORG_ID = 990001, 990002
FIRSTNAMES = [a + b for a in ("As", "Ra", "Me", "Pri", "Ka", "Vi", "Su", "An", "De", "Ni", "Ro", "Ja", "Ha", "Lo")
              for b in ("ha", "vi", "era", "ya", "ran", "jay", "nil", "ita", "mal", "kesh", "run", "sha", "deep", "na")]
LASTNAMES = [a + b for a in ("Ra", "Iy", "Sha", "Gu", "Me", "Na", "Pa", "Ku", "Bo", "Ch", "Da", "Ve", "Jo", "Si")
             for b in ("o", "er", "rma", "pta", "hta", "ir", "tel", "mar", "se", "awla", "s", "rma", "shi", "ngh")]
CITIES = ["Pune", "Mumbai", "Delhi", "Bangalore", "Chennai", "Kolkata", "Hyderabad", "Jaipur", "Surat", "Lucknow",
          "Kanpur", "Nagpur", "Indore", "Thane", "Bhopal", "Patna", "Vadodara", "Ludhiana", "Agra", "Nashik"]
# Three years of registrations up to 2026-11-30, as days since 1970-01-01.
FIRST_DAY, DAYS = 19692, 3 * 365


def mobile(n: int) -> str:
    return f"9190{n:08d}"


def customer_row(n: int) -> str:
    first, last = FIRSTNAMES[n % len(FIRSTNAMES)], LASTNAMES[(n // len(FIRSTNAMES)) % len(LASTNAMES)]
    day = time.strftime("%Y-%m-%d", time.gmtime((FIRST_DAY + (n * 7919) % DAYS) * 86400))
    seconds = (n * 104729) % 86400
    moment = f"{day} {seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    kind = "NON_LOYALTY" if n % 10 == 9 else "LOYALTY"
    email = f"{first}.{last}{n}@example.com".lower()
    return f"{mobile(n)},{email},EXT{n:08d},{first},{last},{moment},{kind},{CITIES[n % len(CITIES)]},{n % 50}\n"


def write_file(path: Path, rows: int) -> None:
    with path.open("w") as out:
        out.write("mobile,email,external_id,firstname,lastname,registered_on,type,custom.city,custom.visits\n")
        for n in range(rows):
            out.write(customer_row(n))


def other_org_file(folder: Path) -> Path:
    text = (BENCH / "bench-org.toml").read_text()
    text = text.replace(f"id = {ORG_ID}", f"id = {OTHER_ORG_ID}").replace('code = "bench.till"', 'code = "bench.other.till"')
    path = folder / "other-org.toml"
    path.write_text(text)
    return path


def import_customers(database_url: str, folder: Path, org_id: int, rows: int) -> float:
    path = folder / f"customers-{org_id}.csv"
    write_file(path, rows)
    started = time.monotonic()
    done = subprocess.run(
        [str(VENV_BIN / "patron"), "customer", "import", str(path), "--org", str(org_id)],
        env={**os.environ, "PATRON_DATABASE_URL": database_url},
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    if f"{rows:,} created" not in done.stdout:
        raise RuntimeError(f"the import did not create every customer:\n{done.stdout[-2000:]}")
    return time.monotonic() - started


@dataclass
class Kind:
    """One kind of request: its name, and the path and parameters of its i-th request."""

    name: str
    request: Callable[[random.Random], str]
    most: int  # requests at most (each kind also stops after --seconds)


def kinds(rows: int) -> list[Kind]:
    def some(rng: random.Random) -> int:
        return rng.randrange(rows)

    def q(text: str, **extra: str) -> str:
        return "/v1.1/customer/search?q=" + quote(text, safe="") + "".join(f"&{k}={v}" for k, v in extra.items())

    def first(n: int) -> str:
        return FIRSTNAMES[n % len(FIRSTNAMES)]

    def last(n: int) -> str:
        return LASTNAMES[(n // len(FIRSTNAMES)) % len(LASTNAMES)]

    def month(rng: random.Random) -> str:
        start = FIRST_DAY + rng.randrange(DAYS - 31)
        day = lambda d: time.strftime("%Y-%m-%d", time.gmtime(d * 86400))  # noqa: E731
        return f"{day(start)};{day(start + 30)}"

    return [
        Kind("baseline: customer/get?mobile=", lambda rng: f"/v1.1/customer/get?mobile={mobile(some(rng))}", 1000),
        Kind("mobile:EQUALS", lambda rng: q(f"mobile:EQUALS:{mobile(some(rng))}"), 1000),
        # 9190 and six digits: a hundred customers.
        Kind("mobile:STARTS (100 match)", lambda rng: q(f"mobile:STARTS:{mobile(some(rng))[:10]}"), 1000),
        Kind("email:STARTS first.last", lambda rng: q(f"email:STARTS:{(lambda n: f'{first(n)}.{last(n)}'.lower())(some(rng))}"), 1000),
        Kind("firstname:STARTS 3 letters", lambda rng: q(f"firstname:STARTS:{first(some(rng))[:3]}"), 500),
        Kind("lastname:STARTS + registered_date:RANGE 31 days",
             lambda rng: q(f"lastname:STARTS:{last(some(rng))}&registered_date:RANGE:{month(rng)}"), 500),
        Kind("city:EQUALS (custom field)", lambda rng: q(f"city:EQUALS:{rng.choice(CITIES)}"), 50),
        Kind("loyalty_points:GREATER, page 3 of 20", lambda rng: q("loyalty_points:GREATER:50", start="40", rows="20"), 50),
        Kind("registered_date:EQUALS (a day)", lambda rng: q(f"registered_date:EQUALS:{month(rng).split(';')[0]}"), 500),
    ]


@dataclass
class Figures:
    name: str
    requests: int
    p50: float
    p95: float
    p99: float
    matches: float  # the mean count answered


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def measure(client: httpx.Client, kind: Kind, seconds: float) -> Figures:
    rng = random.Random(kind.name)
    for _ in range(5):  # warm the worker's caches and the database's plans
        client.get(kind.request(rng)).raise_for_status()
    times: list[float] = []
    counts: list[int] = []
    deadline = time.monotonic() + seconds
    while len(times) < kind.most and time.monotonic() < deadline:
        path = kind.request(rng)
        started = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        if answer.status_code not in (200, 201, 500) or "status" not in answer.json()["response"]:
            raise RuntimeError(f"{path}: {answer.status_code} {answer.text[:300]}")
        found = answer.json()["response"].get("customer")
        counts.append(found["count"] if isinstance(found, dict) else 1)
    times.sort()
    return Figures(kind.name, len(times), percentile(times, 0.5), percentile(times, 0.95), percentile(times, 0.99),
                   statistics.mean(counts))


@contextmanager
def database(sqlite: bool, folder: Path) -> Iterator[str]:
    if sqlite:
        yield f"sqlite:///{folder / 'search.db'}"
        return
    with throwaway_database("search") as url:
        yield url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="customers of the searched org")
    parser.add_argument("--sqlite", action="store_true", help="on a SQLite file instead of PostgreSQL")
    parser.add_argument("--seconds", type=float, default=20.0, help="at most this long per kind of request")
    args = parser.parse_args()
    engine = "SQLite" if args.sqlite else "PostgreSQL"
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="patron-bench-search-")))
        url = stack.enter_context(database(args.sqlite, folder))
        patron(url, "db", "upgrade")
        patron(url, "org", "apply", str(BENCH / "bench-org.toml"))
        patron(url, "org", "apply", str(other_org_file(folder)))
        print(f"importing {args.rows:,} customers into org {ORG_ID} ({engine}) ...", flush=True)
        seconds = import_customers(url, folder, ORG_ID, args.rows)
        print(f"  {seconds:.0f} s ({args.rows / seconds:,.0f}/s)", flush=True)
        other_rows = max(1, args.rows // 10)
        print(f"importing {other_rows:,} customers with the same mobiles and names into org {OTHER_ORG_ID} ...", flush=True)
        import_customers(url, folder, OTHER_ORG_ID, other_rows)
        port = free_port()
        env = {"PATRON_DATABASE_URL": url, "PATRON_LOG_LEVEL": "warning"}
        base = stack.enter_context(server([str(VENV_BIN / "patron"), "serve", "--port", str(port), "--workers", "1"], env, port))
        client = stack.enter_context(httpx.Client(base_url=base, auth=(TILL, _md5(PASSWORD)), timeout=60))
        results = [measure(client, kind, args.seconds) for kind in kinds(args.rows)]
    baseline = results[0]
    print()
    print(f"customer/search on {engine}: {args.rows:,} customers in the org searched, {other_rows:,} in another;"
          " one request at a time through HTTP (patron serve, 1 worker); ms; x get: ratio to the get's p50 / p99")
    print(f"| {'request':<48} | {'n':>5} | {'matches':>9} | {'p50':>7} | {'p95':>7} | {'p99':>7} | {'x get p50':>9} | {'x get p99':>9} |")
    print(f"|{'-' * 50}|{'-' * 7}|{'-' * 11}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 11}|{'-' * 11}|")
    for figures in results:
        print(f"| {figures.name:<48} | {figures.requests:>5} | {figures.matches:>9,.0f} | {figures.p50:>7.2f} | {figures.p95:>7.2f}"
              f" | {figures.p99:>7.2f} | {figures.p50 / baseline.p50:>9.1f} | {figures.p99 / baseline.p99:>9.1f} |")
    return 0


def _md5(password: str) -> str:
    return hashlib.md5(password.encode()).hexdigest()


if __name__ == "__main__":
    sys.exit(main())
