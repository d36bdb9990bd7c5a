"""Bulk import of customers from CSV or JSON lines: the add API's rules, in batches, resumable."""

from __future__ import annotations

import asyncio
import csv
import gc
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from patron.orgs.cache import OrgCache
from patron.registration.model import IDENTIFIERS
from patron.registration.service import Caller, ItemResult, register
from patron.store.maintenance import analyze_customer_tables
from patron.store.unit import unit_of_work

# Columns that hold a list of {name, value} in the add API.
_FIELD_PREFIXES = {"custom.": "custom_fields", "extended.": "extended_fields"}


class ImportRefused(Exception):
    """The import cannot start (unknown org, unreadable file, a state file of another file)."""


@dataclass
class Progress:
    done: int = 0
    created: int = 0
    updated: int = 0
    rejected: int = 0
    skipped: int = 0


@dataclass
class ImportJob:
    path: Path
    org_id: int
    batch_size: int = 1000
    till_code: str | None = None
    report_path: Path | None = None
    resume: bool = False
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
        for number, row in enumerate(csv.DictReader(handle), start=1):
            yield number, customer_from_columns(row)


@dataclass(frozen=True)
class _Unreadable:
    reason: str


def customer_from_columns(row: dict[str, str | None]) -> dict[str, Any]:
    """A CSV row as an add item: empty cells are not sent; custom.X and extended.X become fields."""
    customer: dict[str, Any] = {}
    for column, value in row.items():
        if column is None or value is None or value == "":
            continue
        for prefix, key in _FIELD_PREFIXES.items():
            if column.startswith(prefix):
                customer.setdefault(key, {"field": []})["field"].append({"name": column[len(prefix):], "value": value})
                break
        else:
            customer[column] = value
    return customer


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


async def run_import(engine: AsyncEngine, job: ImportJob, on_batch: Callable[[Progress], None] | None = None) -> Progress:
    orgs = OrgCache(engine, ttl=3600)
    org = await orgs.get(job.org_id)
    if org is None:
        raise ImportRefused(f"no org {job.org_id}")
    till = job.till_code or next((code for code in org.tills), None)
    if till is None or org.till(till) is None:
        raise ImportRefused(f"org {job.org_id} has no till {till!r} to attribute the import to")
    start_after = _read_state(job)
    # Each batch makes many short-lived objects and keeps none: collect less often, and never
    # scan what was loaded before the first batch.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    run_id = uuid.uuid4().hex[:12]
    caller = Caller(
        org=org,
        till_code=till,
        api_client_key=None,
        request_id=f"import-{run_id}",
        user_context={"entity_type": "IMPORT", "entity_source": "IMPORT", "entity_id": job.path.name},
    )
    progress = job.progress
    report = _Report(job.report_path, append=start_after > 0)
    # Two batches in flight: while the database writes one, the next is read and validated.
    # A batch waits for the one before it when they name the same identifier, so that rows about
    # one customer still apply in the file's order.
    in_flight: tuple[asyncio.Task[None], set[str], int] | None = None

    async def settle() -> None:
        nonlocal in_flight
        if in_flight is not None:
            task, _, last_row = in_flight
            in_flight = None
            await task
            _write_state(job, last_row)
            if on_batch:
                on_batch(progress)

    try:
        for batch in _batches(read_rows(job.path), job.batch_size, start_after, progress):
            keys = _identifier_values(batch)
            if in_flight is not None and in_flight[1] & keys:
                await settle()
            task = asyncio.create_task(_import_batch(engine, caller, batch, progress, report))
            await settle()
            in_flight = (task, keys, batch[-1][0])
        await settle()
    finally:
        if in_flight is not None:
            in_flight[0].cancel()
        report.close()
    # A table that grew by a bulk import has statistics from before it: without fresh ones the
    # planner may pick an index that matches the org and filters the rest, for every look-up.
    await analyze_customer_tables(engine)
    return progress


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


def _identifier_values(batch: list[tuple[int, Any]]) -> set[str]:
    return {
        str(customer[name]).strip().lower()
        for _, customer in batch
        if isinstance(customer, dict)
        for name in IDENTIFIERS
        if customer.get(name) not in (None, "")
    }


async def _import_batch(engine: AsyncEngine, caller: Caller, batch: list[tuple[int, Any]], progress: Progress, report: _Report) -> None:
    readable = [(number, customer) for number, customer in batch if not isinstance(customer, _Unreadable)]
    for number, customer in batch:
        if isinstance(customer, _Unreadable):
            report.write(number, "", customer.reason, {})
            progress.rejected += 1
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    results = await register(
        [customer for _, customer in readable],
        caller,
        lambda **options: unit_of_work(engine, **options),
        now,
        batch_limit=len(readable) or 1,
    )
    for (number, customer), result in zip(readable, results, strict=True):
        _count(progress, result)
        if not result.success:
            report.write(number, str(int(result.code)), result.message, customer if isinstance(customer, dict) else {})
    progress.done += len(batch)


def _count(progress: Progress, result: ItemResult) -> None:
    if not result.success:
        progress.rejected += 1
    elif result.created:
        progress.created += 1
    else:
        progress.updated += 1


class _Report:
    """Every rejected row with its code and message, as CSV."""

    def __init__(self, path: Path | None, append: bool) -> None:
        self._handle = path.open("a" if append else "w", newline="", encoding="utf-8") if path else None
        self._writer = csv.writer(self._handle) if self._handle else None
        if self._writer and not append:
            self._writer.writerow(["row", "code", "message", *IDENTIFIERS])

    def write(self, row: int, code: str, message: str, customer: dict[str, Any]) -> None:
        if self._writer:
            self._writer.writerow([row, code, message, *(customer.get(name, "") for name in IDENTIFIERS)])

    def close(self) -> None:
        if self._handle:
            self._handle.close()


