"""The Python a batch registration costs, without HTTP or a database: the part profiling works on.

Runs batches of 100 new customers (the shape bench/lua/batch.lua sends) through what a worker does
for them: decode the body, register (reading, identity planning, enrolment and rewards, and the
PostgreSQL statement's parameters, built by the store's own function), answer each item and encode
the answer. The storage hands out ids instead of writing. Prints microseconds per customer, and
their ratio to decoding and encoding the same bodies and answers alone, measured in the same run, so
that machines of different speeds can be compared. PROF=1 prints cProfile's top functions.

    .venv/bin/python bench/python_path.py [batches]
"""

from __future__ import annotations

import asyncio
import cProfile
import itertools
import os
import pstats
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from patron.api.codec import customers_document
from patron.api.present import added_item
from patron.customers.registration import Caller, LookAlike, NewCustomer, batch_status, register
from patron.loop import collect_rarely
from patron.orgs.file import load_org_file
from patron.orgs.model import OrgSettings
from patron.store.customers import Registration
from patron.store.postgres import register_new_parameters

BENCH = Path(__file__).resolve().parent
BATCH = 100
ORG = OrgSettings.from_file(load_org_file(BENCH / "bench-org.toml"))
CALLER = Caller(org=ORG, till_code="bench.till", api_client_key=None, request_id="bench")


def bodies(count: int) -> list[bytes]:
    mobiles = itertools.count(9_000_000_000)
    made = []
    for _ in range(count):
        items = []
        for _ in range(BATCH):
            mobile = f"91{next(mobiles)}"
            items.append({
                "mobile": mobile, "email": f"c{mobile}@bench.example", "firstname": "Bench", "lastname": "Customer",
                "custom_fields": {"field": [{"name": "city", "value": "Bangalore"}, {"name": "visits", "value": "3"}]},
            })
        made.append(orjson.dumps({"root": {"customer": items}}))
    return made


class Ids:
    """A storage that writes nothing: it builds the statement's parameters and hands out ids."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)

    async def insert_new(self, new_customers: list[NewCustomer], caller: Caller, at: datetime) -> list[int | None]:
        register_new_parameters([Registration(new_customers, caller, at)])
        return [next(self.ids) for _ in new_customers]

    async def look_alikes(self, org_id: int, skeletons: list[str]) -> list[LookAlike]:
        return []


async def answer(body: bytes, storage: Any) -> bytes:
    items = orjson.loads(body)["root"]["customer"]
    results = await register(items, CALLER, storage, datetime.now(timezone.utc).replace(tzinfo=None))
    if not all(result.success for result in results):
        raise SystemExit(f"an item failed: {results[0].code} {results[0].message}")
    return orjson.dumps(customers_document(batch_status(results), [added_item(result, ORG) for result in results], len(results)))


async def registering(sent: list[bytes]) -> tuple[float, list[bytes]]:
    storage = Ids()
    started = time.perf_counter()
    answers = [await answer(body, storage) for body in sent]
    return time.perf_counter() - started, answers


def json_alone(sent: list[bytes], answers: list[bytes]) -> float:
    """Decoding each body and encoding its answer, as the same documents: the floor of any path."""
    documents = [orjson.loads(answer) for answer in answers]
    started = time.perf_counter()
    for body, document in zip(sent, documents, strict=True):
        orjson.loads(body)
        orjson.dumps(document)
    return time.perf_counter() - started


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    asyncio.run(registering(bodies(5)))  # caches, compiled patterns
    sent = bodies(count)
    collect_rarely()  # as the server runs
    if os.environ.get("PROF"):
        profile = cProfile.Profile()
        profile.enable()
        asyncio.run(registering(sent))
        profile.disable()
        pstats.Stats(profile).sort_stats(os.environ.get("SORT", "tottime")).print_stats(30)
        return
    seconds, answers = asyncio.run(registering(sent))
    floor = json_alone(sent, answers)
    customers = count * BATCH
    print(f"python per customer: {seconds / customers * 1e6:.1f} µs "
          f"({customers / seconds:,.0f} customers/s on one core)")
    print(f"decode and encode alone: {floor / customers * 1e6:.1f} µs; ratio {seconds / floor:.1f}×")


if __name__ == "__main__":
    main()
