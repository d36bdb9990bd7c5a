"""The org overview: its figures read from the store, and each org's kept in memory for a while."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from patron.codes import Code
from patron.customers.fields import local_date, local_midnight_utc
from patron.customers.ports import ConsoleStorage
from patron.orgs.model import OrgSettings

DAYS = 30
WARNING_DAYS = 7
TOP_WARNINGS = 10
TOP_TILLS = 15
# The counts run as a search does (off the event loop, on one snapshot, without parallel workers),
# with a deadline no org's overview should come near.
READ_SECONDS = 300.0


@dataclass(frozen=True)
class Overview:
    days: list[tuple[date, int]]  # registrations on each of the last DAYS local days, oldest first
    by_source: list[tuple[str, int]]
    by_store: list[tuple[str, int]]
    by_till: list[tuple[str, int]]
    by_type: list[tuple[str, int]]  # LOYALTY, NON_LOYALTY: all customers of the org
    by_slab: list[tuple[str, int]]  # "programme: slab", members
    warnings: list[tuple[int, str, int]]  # code, its name, how many records in WARNING_DAYS
    computed_at: datetime  # UTC
    seconds: float  # what reading it took

    @property
    def registered(self) -> int:
        return sum(count for _, count in self.days)

    @property
    def customers(self) -> int:
        return sum(count for _, count in self.by_type)


def warning_name(code: int) -> str:
    try:
        return Code(code).name.replace("_", " ").capitalize()
    except ValueError:
        return "Unknown warning"


async def read_overview(storage: ConsoleStorage, org: OrgSettings, now: datetime) -> Overview:
    """The org's figures as of `now` (naive UTC)."""
    started = time.perf_counter()
    today = local_date(now, org.tz)
    first = today - timedelta(days=DAYS - 1)
    # When each of the last DAYS local days starts, and the day after (UTC, as stored): days + 1
    # bounds, right across a daylight-saving change.
    bounds = [local_midnight_utc(first + timedelta(days=offset), org.tz) for offset in range(DAYS + 1)]
    since = bounds[0]
    async with storage.search_unit(READ_SECONDS) as unit:
        store = unit.console
        per_day = await store.registrations_per_day(org.org_id, bounds)
        sources = await store.registrations_by(org.org_id, "source", since)
        tills = await store.registrations_by(org.org_id, "registered_till", since)
        types = await store.customers_by_type(org.org_id)
        slabs = await store.members_by_slab(org.org_id)
        warned = await store.warnings_since(org.org_id, now - timedelta(days=WARNING_DAYS))
    days = [(first + timedelta(days=i), count) for i, count in enumerate(per_day)]

    stores: Counter[str] = Counter()
    by_till: list[tuple[str, int]] = []
    for code, count in tills:
        till = org.till(code) if code else None
        stores[till.store.name if till else ("(no till)" if not code else f"{code} (removed)")] += count
        # People know a till by the name the org file gives it; the code stays beside an unnamed one.
        by_till.append((f"{till.name} ({code})" if till and till.name != code else (code or "(no till)"), count))

    codes: Counter[int] = Counter()
    for listed in warned:
        codes.update(set(listed))

    slab_rows: list[tuple[str, int]] = []
    for program_id, serial, count in slabs:
        program = org.programs.get(program_id)
        slab = next((s for s in program.slabs if s.serial == serial), None) if program else None
        label = f"{program.name if program else program_id}: {slab.name if slab else serial}"
        slab_rows.append((label, count))

    return Overview(
        days=days,
        by_source=[(source or "(none)", count) for source, count in sources],
        by_store=stores.most_common(),
        by_till=by_till[:TOP_TILLS],
        by_type=[(name, types.get(name, 0)) for name in ("LOYALTY", "NON_LOYALTY")]
        + [(name, count) for name, count in sorted(types.items()) if name not in ("LOYALTY", "NON_LOYALTY")],
        by_slab=slab_rows,
        warnings=[(code, warning_name(code), count) for code, count in codes.most_common(TOP_WARNINGS)],
        computed_at=now,
        seconds=time.perf_counter() - started,
    )


class OverviewCache:
    """Each org's overview, reused for `seconds`: on an org of millions of customers its counts
    take a while, and a team's dashboards reload it often. One reading at a time per org: callers
    arriving meanwhile wait for it rather than start their own."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._kept: dict[int, tuple[float, Overview]] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def get(self, storage: ConsoleStorage, org: OrgSettings, now: datetime) -> Overview:
        kept = self._kept.get(org.org_id)
        if kept is not None and kept[0] > self._clock():
            return kept[1]
        lock = self._locks.setdefault(org.org_id, asyncio.Lock())
        async with lock:
            kept = self._kept.get(org.org_id)
            if kept is not None and kept[0] > self._clock():
                return kept[1]
            overview = await read_overview(storage, org, now)
            if self.seconds > 0:
                self._kept[org.org_id] = (self._clock() + self.seconds, overview)
            return overview
