"""Customers in bulk: imported from CSV or JSON lines with the add API's rules, in batches,
resumable; exported, streamed, in the same columns, so that an export imports back."""

from __future__ import annotations

import asyncio
import csv
import difflib
import json
import multiprocessing
import os
import signal
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from patron import bootstrap, loop
from patron.codes import Code, request_message
from patron.customers import fields
from patron.customers.inputs import ITEM_FIELDS
from patron.customers.model import IDENTIFIERS, Caller, Customer
from patron.customers.registration import register
from patron.orgs.cache import OrgCache
from patron.orgs.model import OrgSettings
from patron.orgs.policy import STANDARD_EXTENDED_FIELDS
from patron.settings import Settings
from patron.store.customer_export import customer_pages
from patron.store.maintenance import analyze_customer_tables
from patron.store.storage import Storage


# Columns that hold a list of {name, value} in the add API.
_FIELD_PREFIXES = {"custom.": "custom_fields", "extended.": "extended_fields"}
# Fields a CSV cell cannot hold whole: lists of objects (JSON lines can).
_LISTED_FIELDS = ("commChannels", "subscriptions", "custom_fields", "extended_fields")


class ImportRefused(Exception):
    """The import cannot start (unknown org, unreadable file, a state file of another file, a
    column that names no field)."""


@dataclass
class Progress:
    done: int = 0
    created: int = 0
    updated: int = 0
    # Rows of customers they would leave as stored: nothing of them was written.
    unchanged: int = 0
    rejected: int = 0
    skipped: int = 0
    # Warnings of the rows written, by code: a value dropped is never dropped without a word.
    warnings: Counter[str] = field(default_factory=Counter)


@dataclass
class ImportJob:
    path: Path
    org_id: int
    batch_size: int = 1000
    till_code: str | None = None
    report_path: Path | None = None
    resume: bool = False
    # Processes that validate and write batches (on SQLite they take turns to write).
    workers: int = 1
    expected_rows: int | None = None  # rows in the file, when the caller has counted them
    progress: Progress = field(default_factory=Progress)

    @property
    def state_path(self) -> Path:
        return self.path.with_name(self.path.name + ".import-state.json")


def file_format(path: Path) -> str:
    return "jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv"


def count_rows(path: Path) -> int:
    """Rows of data in the file (a CSV's header is not one); for the progress bar's total."""
    with path.open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return lines - 1 if file_format(path) == "csv" and lines else lines


def read_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(row number, customer as the add API's item) for each row; numbers start at 1."""
    if file_format(path) == "jsonl":
        with path.open("rb") as handle:
            number = 0
            for line in handle:
                if not line.strip():
                    continue
                number += 1
                try:
                    yield number, orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    yield number, _Unreadable(f"malformed JSON: {exc.msg}")
        return
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = csv.reader(handle)
        header = next(rows, None)
        if header is None:
            return
        customer_from = customer_reader(header)
        number = 0
        for row in rows:
            if row:  # a blank line is no row
                number += 1
                yield number, customer_from(row)


@dataclass(frozen=True)
class _Unreadable:
    reason: str


def unknown_columns(path: Path, org: OrgSettings) -> list[str]:
    """The CSV header's columns that name no field of the add API, nor a custom or extended field
    of the org, each with the nearest known name when there is one. JSON lines have no header."""
    if file_format(path) != "csv":
        return []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), None) or []
    known = {name.lower(): name for name in ITEM_FIELDS if name not in _LISTED_FIELDS}
    for prefix, declared in (("custom.", org.custom_fields), ("extended.", {**STANDARD_EXTENDED_FIELDS, **org.extended_fields})):
        known.update({f"{prefix}{key}": f"{prefix}{kind.name}" for key, kind in declared.items()})
    problems = []
    for column in header:
        if column.strip().lower() in known:
            continue
        nearest = difflib.get_close_matches(column.strip().lower(), known, n=1, cutoff=0.6)
        problems.append(f"{column!r}" + (f" (did you mean {known[nearest[0]]!r}?)" if nearest else ""))
    return problems


def customer_reader(header: list[str]) -> Callable[[list[str]], dict[str, Any]]:
    """How the rows under this CSV header become add items, worked out once for the file: empty
    cells are not sent; custom.X and extended.X columns become fields; of a repeated column, the
    last cell counts; cells beyond the header are not read."""
    last = {column: index for index, column in enumerate(header)}
    plain: list[tuple[int, str]] = []
    listed: list[tuple[int, str, str]] = []
    for column, index in last.items():
        prefix = next((prefix for prefix in _FIELD_PREFIXES if column.startswith(prefix)), None)
        if prefix is None:
            plain.append((index, column))
        else:
            listed.append((index, _FIELD_PREFIXES[prefix], column[len(prefix):]))
    width = len(header)

    def customer_from(row: list[str]) -> dict[str, Any]:
        if len(row) < width:
            row = row + [""] * (width - len(row))
        customer: dict[str, Any] = {column: row[index] for index, column in plain if row[index]}
        for index, key, name in listed:
            if row[index]:
                customer.setdefault(key, {"field": []})["field"].append({"name": name, "value": row[index]})
        return customer

    return customer_from


def _fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{int(stat.st_mtime)}:{path.resolve()}"


def _read_state(job: ImportJob) -> int:
    """Rows already committed by an interrupted run of the same file."""
    if not job.resume or not job.state_path.exists():
        return 0
    state = json.loads(job.state_path.read_text())
    if state.get("file") != _fingerprint(job.path) or state.get("org_id") != job.org_id:
        raise ImportRefused(f"{job.state_path} belongs to another file or org; remove it to start over")
    return int(state["rows_done"])


def _write_state(job: ImportJob, rows_done: int) -> None:
    # Written to a side file and renamed, so that a kill never leaves half a state behind.
    temporary = job.state_path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"file": _fingerprint(job.path), "org_id": job.org_id, "rows_done": rows_done}))
    os.replace(temporary, job.state_path)


async def check_import(engine: AsyncEngine, job: ImportJob) -> tuple[OrgSettings, str]:
    """The org and the till an import is attributed to, once its org, till, header and state file
    are found sound; ImportRefused, saying why, before anything is shown or written."""
    orgs = OrgCache(engine, ttl=3600)
    org = await orgs.get(job.org_id)
    if org is None:
        raise ImportRefused(f"no org {job.org_id}")
    till = job.till_code or next((code for code in org.tills), None)
    if till is None or org.till(till) is None:
        raise ImportRefused(f"org {job.org_id} has no till {till!r} to attribute the import to")
    unknown = unknown_columns(job.path, org)
    if unknown:
        raise ImportRefused(f"{job.path.name}: no field of org {job.org_id} is named {', '.join(unknown)}; nothing was imported")
    _read_state(job)
    return org, till


async def run_import(engine: AsyncEngine, job: ImportJob, on_batch: Callable[[Progress], None] | None = None) -> Progress:
    org, till = await check_import(engine, job)
    start_after = _read_state(job)
    # This process holds a batch being read and those it runs; others hold the one they run.
    loop.collect_rarely(customers_at_once=3 * job.batch_size)
    run_id = uuid.uuid4().hex[:12]
    caller = Caller(
        org=org,
        till_code=till,
        api_client_key=None,
        request_id=f"import-{run_id}",
        origin="import",
        user_context={"entity_type": "IMPORT", "entity_source": "IMPORT", "entity_id": job.path.name},
    )
    progress = job.progress
    report = _Report(job.report_path, append=start_after > 0)
    # A process needs a batch of its own to be worth starting. (On SQLite the processes validate
    # and resolve in parallel, and take turns to write: store.sqlite_file.)
    batches = -(-(job.expected_rows or count_rows(job.path)) // job.batch_size)
    workers = max(1, min(job.workers, batches))
    try:
        async with _batch_runner(engine, caller, workers, job.batch_size) as run_batch:
            await _import_rows(job, run_batch, start_after, workers + 1, report, on_batch)
    finally:
        report.close()
    # A table that grew by a bulk import has statistics from before it: without fresh ones the
    # planner may pick an index that matches the org and filters the rest, for every look-up.
    # An import that wrote nothing (every row unchanged or rejected) grew none.
    if progress.created or progress.updated:
        await analyze_customer_tables(engine)
    return progress


@dataclass(frozen=True)
class ReportedRow:
    """A row the report shows: rejected (its error code), or written with warnings (1000 and them)."""

    number: int
    code: str
    message: str
    warnings: tuple[str, ...]
    customer: dict[str, Any]


@dataclass
class BatchOutcome:
    """What one batch did: its counts, its rejected rows, and its rows written with warnings."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[ReportedRow] = field(default_factory=list)
    warned: list[ReportedRow] = field(default_factory=list)


RunBatch = Callable[[list[tuple[int, Any]]], Awaitable[BatchOutcome]]


@dataclass
class _InFlight:
    task: asyncio.Future[BatchOutcome]
    keys: set[tuple[str, str]]
    last_row: int
    rows: int
    counted: bool = False

    @property
    def running(self) -> bool:
        return not self.task.done()


async def _import_rows(
    job: ImportJob,
    run_batch: RunBatch,
    start_after: int,
    max_running: int,
    report: _Report,
    on_batch: Callable[[Progress], None] | None,
) -> None:
    """The file's batches, several running at once; rows about one customer still apply in file order.

    A batch does not start while a running one names one of its identifiers, so that it sees what
    that one wrote. Batches may finish out of order: the state file records the last row before
    which every batch is committed, and a resumed run repeats any committed after it (safe: an
    import is an upsert that never rewards twice).
    """
    progress = job.progress
    in_flight: deque[_InFlight] = deque()

    def account() -> None:
        for batch in in_flight:
            if not batch.running and not batch.counted:
                outcome = batch.task.result()  # a failed batch raises here and ends the import
                progress.created += outcome.created
                progress.updated += outcome.updated
                progress.unchanged += outcome.unchanged
                progress.rejected += len(outcome.rejected)
                progress.warnings.update(code for row in outcome.warned for code in row.warnings)
                progress.done += batch.rows
                batch.counted = True
        committed_up_to = None
        while in_flight and in_flight[0].counted:
            done = in_flight.popleft()
            # The report follows the file: a batch's rows are written once every batch before it is.
            for row in sorted(done.task.result().rejected + done.task.result().warned, key=lambda row: row.number):
                report.write(row)
            committed_up_to = done.last_row
        if committed_up_to is not None:
            _write_state(job, committed_up_to)
            if on_batch:
                on_batch(progress)

    async def wait(batches: list[_InFlight], until: str = asyncio.ALL_COMPLETED) -> None:
        if batches:
            await asyncio.wait([batch.task for batch in batches], return_when=until)
        account()

    try:
        for batch in _batches(read_rows(job.path), job.batch_size, start_after, progress):
            keys = _identifier_values(batch)
            await wait([earlier for earlier in in_flight if earlier.running and earlier.keys & keys])
            while sum(earlier.running for earlier in in_flight) >= max_running:
                await wait([earlier for earlier in in_flight if earlier.running], asyncio.FIRST_COMPLETED)
            in_flight.append(_InFlight(asyncio.ensure_future(run_batch(batch)), keys, batch[-1][0], len(batch)))
        await wait(list(in_flight))
    finally:
        for flight in in_flight:
            flight.task.cancel()
        # The first failure has been raised; what the others ended with is not news.
        await asyncio.gather(*(flight.task for flight in in_flight), return_exceptions=True)


@asynccontextmanager
async def _batch_runner(
    engine: AsyncEngine, caller: Caller, workers: int, batch_size: int
) -> AsyncIterator[RunBatch]:
    """Runs each batch in this process or in one of `workers - 1` others, whichever has fewer
    batches running: validation and identity resolution are Python work, and a process is one core."""

    # A connection for each batch that may run here at once: each runs its units one by one.
    storage = await bootstrap.storage(engine, Settings(), connections=workers + 1)

    async def run_here(batch: list[tuple[int, Any]]) -> BatchOutcome:
        return await import_batch(caller, storage, batch)

    try:
        if workers <= 1:
            yield run_here
        else:
            async with _worker_pool(engine, caller, workers, batch_size, run_here) as run_batch:
                yield run_batch
    finally:
        await storage.close()  # and the driver's pool with it


@asynccontextmanager
async def _worker_pool(
    engine: AsyncEngine, caller: Caller, workers: int, batch_size: int, run_here: RunBatch
) -> AsyncIterator[RunBatch]:
    pool = ProcessPoolExecutor(
        workers - 1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(engine.url.render_as_string(hide_password=False), caller, batch_size),
    )
    loop = asyncio.get_running_loop()
    running = {"here": 0, "pool": 0}

    async def run_batch(batch: list[tuple[int, Any]]) -> BatchOutcome:
        # This process also reads the file, so it takes a batch only when the others have one each.
        where = "here" if running["here"] * (workers - 1) < running["pool"] else "pool"
        running[where] += 1
        try:
            if where == "here":
                return await run_here(batch)
            return await loop.run_in_executor(pool, _run_in_worker, batch)
        finally:
            running[where] -= 1

    try:
        yield run_batch
    finally:
        # A batch already running in a worker is finished and committed; those not started are not.
        pool.shutdown(wait=True, cancel_futures=True)


_worker: tuple[asyncio.AbstractEventLoop, Storage, Caller] | None = None


def _start_worker(database_url: str, caller: Caller, batch_size: int) -> None:
    global _worker
    # Ctrl-C is the main process's to handle: a worker finishes the batch it is writing.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    loop.collect_rarely(customers_at_once=2 * batch_size)
    worker_loop = loop.new_event_loop()
    settings = Settings(database_url=database_url)
    engine = bootstrap.engine(settings, pool_size=1)
    _worker = (worker_loop, worker_loop.run_until_complete(bootstrap.storage(engine, settings, connections=1)), caller)


def _run_in_worker(batch: list[tuple[int, Any]]) -> BatchOutcome:
    assert _worker is not None, "the pool starts every worker with _start_worker"
    worker_loop, storage, caller = _worker
    return worker_loop.run_until_complete(import_batch(caller, storage, batch))


def _batches(
    rows: Iterator[tuple[int, Any]], size: int, start_after: int, progress: Progress
) -> Iterator[list[tuple[int, Any]]]:
    batch: list[tuple[int, Any]] = []
    for number, customer in rows:
        if number <= start_after:
            progress.skipped += 1
            continue
        batch.append((number, customer))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _identifier_values(batch: list[tuple[int, Any]]) -> set[tuple[str, str]]:
    """The identity keys of the identifiers a batch names (fields.identity_key), so that batches
    about one customer are never run at once."""
    keys = set()
    for _, customer in batch:
        if not isinstance(customer, dict):
            continue
        for name in IDENTIFIERS:
            key = fields.identity_key(name, customer.get(name))
            if key is not None:
                keys.add((name, key))
    return keys


async def import_batch(caller: Caller, storage: Storage, batch: list[tuple[int, Any]]) -> BatchOutcome:
    """Register a batch of rows with the add API's rules; an unreadable row is rejected."""
    outcome = BatchOutcome()
    readable = []
    for number, customer in batch:
        if isinstance(customer, _Unreadable):
            message = f"{request_message(Code.INVALID_INPUT)}: {customer.reason}"
            outcome.rejected.append(ReportedRow(number, str(int(Code.INVALID_INPUT)), message, (), {}))
        else:
            readable.append((number, customer))
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    results = await register(
        [customer for _, customer in readable], caller, storage, now, batch_limit=len(readable) or 1
    )
    for (number, customer), result in zip(readable, results, strict=True):
        shown = customer if isinstance(customer, dict) else {}
        if not result.success:
            outcome.rejected.append(ReportedRow(number, str(int(result.code)), result.message, (), shown))
            continue
        if result.created:
            outcome.created += 1
        elif result.unchanged:
            outcome.unchanged += 1
        else:
            outcome.updated += 1
        warnings = tuple(str(int(code)) for code in result.warnings.codes)
        if warnings:
            outcome.warned.append(ReportedRow(number, str(int(result.code)), result.message, warnings, shown))
    return outcome


class ExportRefused(Exception):
    """The export cannot start (an unknown org)."""


# The columns an export writes before the org's fields: the add API's fields a customer keeps
# (its own referral code and its points are the org's to give again, not the file's to set).
EXPORTED_FIELDS = (
    *IDENTIFIERS, "firstname", "lastname", "registered_on", "type", "source", "accountId", "fraud_status",
    "registered_till", "associated_with",
)


def export_item(customer: Customer, org: OrgSettings) -> dict[str, Any]:
    """A customer as an add item the import reads back into the same customer: registration time
    in the org's timezone, as the API writes it; nothing that is not set."""
    item: dict[str, Any] = {
        "mobile": customer.mobile,
        "email": customer.email,
        "external_id": customer.external_id,
        "firstname": customer.firstname or None,
        "lastname": customer.lastname or None,
        "registered_on": fields.local_text(customer.registered_on, org.tz),
        "type": customer.type,
        "source": customer.source.lower(),
        "accountId": customer.account_id,
        "fraud_status": customer.fraud_status,
        "registered_till": customer.registered_till,
        "associated_with": customer.associated_with,
    }
    item = {name: value for name, value in item.items() if value is not None}
    for key, values in (("custom_fields", customer.custom_fields), ("extended_fields", customer.extended_fields)):
        if values:
            item[key] = {"field": [{"name": name, "value": value} for name, value in values.items()]}
    if customer.subscriptions:
        item["subscriptions"] = {"subscription": customer.subscriptions}
    if customer.comm_channels:
        item["commChannels"] = {"commChannel": customer.comm_channels}
    return item


def export_columns(org: OrgSettings) -> list[str]:
    """A CSV export's header: the exported fields, then custom.NAME for each custom field of the
    org and extended.NAME for each extended field, standard and the org's, as the import reads them."""
    extended = {**STANDARD_EXTENDED_FIELDS, **org.extended_fields}
    return [
        *EXPORTED_FIELDS,
        *(f"custom.{kind.name}" for kind in org.custom_fields.values()),
        *(f"extended.{kind.name}" for kind in extended.values()),
    ]


def _csv_row(item: dict[str, Any], columns: list[str]) -> list[str]:
    cells = {name: str(value) for name, value in item.items() if name in EXPORTED_FIELDS}
    for prefix, key in (("custom.", "custom_fields"), ("extended.", "extended_fields")):
        for entry in item.get(key, {}).get("field", []):
            cells[prefix + entry["name"]] = entry["value"]
    return [cells.get(column, "") for column in columns]


async def export_customers(engine: AsyncEngine, org_id: int, out: TextIO, file_format: str = "csv") -> int:
    """Write every customer of the org to `out`, a page at a time, as CSV (the exported fields and
    the org's fields; lists of objects, subscriptions and commChannels, are JSON lines' alone) or as
    JSON lines (one add item a line, everything the import reads); the number written."""
    org = await OrgCache(engine, ttl=3600).get(org_id)
    if org is None:
        raise ExportRefused(f"no org {org_id}")
    columns = export_columns(org)
    writer = csv.writer(out) if file_format == "csv" else None
    if writer is not None:
        writer.writerow(columns)
    written = 0
    async for page in customer_pages(engine, org_id):
        for customer in page:
            item = export_item(customer, org)
            if writer is not None:
                writer.writerow(_csv_row(item, columns))
            else:
                out.write(orjson.dumps(item).decode() + "\n")
        written += len(page)
        out.flush()
    return written


class _Report:
    """Every rejected row, and every row written with warnings, in file order, as CSV: its code and
    message as the add API answers them, its warning codes, and the identifiers it was sent."""

    def __init__(self, path: Path | None, append: bool) -> None:
        self._handle = path.open("a" if append else "w", newline="", encoding="utf-8") if path else None
        self._writer = csv.writer(self._handle) if self._handle else None
        if self._writer and not append:
            self._writer.writerow(["row", "code", "message", "warnings", *IDENTIFIERS])

    def write(self, row: ReportedRow) -> None:
        if self._writer:
            sent = (row.customer.get(name, "") for name in IDENTIFIERS)
            self._writer.writerow([row.number, row.code, row.message, " ".join(row.warnings), *sent])

    def close(self) -> None:
        if self._handle:
            self._handle.close()


