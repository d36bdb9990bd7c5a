"""Prometheus metrics: the counters and histograms, their multiprocess directory, and their exposition."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


from patron.settings import Settings


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds; registration is a few database round trips, so most requests land in the low buckets.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Requests sharing one statement: one when idle, tens under load.
SHARED_STATEMENT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """The Prometheus series; labelled children are cached, as `labels()` costs a few µs a call."""

    def __init__(self) -> None:
        # Imported here: prometheus_client picks its multiprocess mode from the environment at
        # import, and `patron serve` sets that environment before the workers start.
        from prometheus_client import Counter, Gauge, Histogram

        self.requests = _metric(Counter, "patron_requests_total", "Requests answered, by route and HTTP status.",
                                ["route", "status"])
        self.latency = _metric(Histogram, "patron_request_duration_seconds", "Time to answer a request, by route.",
                               ["route"], buckets=LATENCY_BUCKETS)
        self.items = _metric(Counter, "patron_customer_items_total",
                             "Customers of add and get requests, by route and item code.", ["route", "code"])
        self.warnings = _metric(Counter, "patron_item_warnings_total", "Item warnings of add requests, by code.",
                                ["code"])
        self.pool_in_use = _metric(Gauge, "patron_db_pool_in_use", "Database connections checked out.",
                                   multiprocess_mode="livesum")
        self.pool_size = _metric(Gauge, "patron_db_pool_size", "Database connections the pools may hold.",
                                 multiprocess_mode="livesum")
        self.requests_per_statement = _metric(
            Histogram, "patron_requests_per_statement",
            "Requests one statement served (PostgreSQL): registrations of new customers, look-ups.",
            ["statement"], buckets=SHARED_STATEMENT_BUCKETS)
        self.units_per_transaction = _metric(
            Histogram, "patron_units_per_transaction",
            "Units of work (a request's new customers, an item resolved and written) one transaction of"
            " the SQLite writer committed.", buckets=SHARED_STATEMENT_BUCKETS)
        self.auth_lockouts = _metric(
            Counter, "patron_auth_lockouts_total",
            "Credential-check limits reached (each then refuses for its window, per worker), by kind of"
            " credential (till, client, console) and scope (credential: refused to the networks that failed"
            " on it; address; network: its /24 or /64).", ["kind", "scope"])
        self.auth_refusals = _metric(
            Counter, "patron_auth_refusals_total",
            "Credential checks refused before their slow hash, by kind and reason (limit: 429, a limit"
            " reached; busy: 503, no slow hash free for it in time).", ["kind", "reason"])
        self._requests: dict[tuple[str, int], Any] = {}
        self._latency: dict[str, Any] = {}
        self._items: dict[tuple[str, str], Any] = {}
        self._warnings: dict[str, Any] = {}
        self._statements: dict[str, Any] = {}

    def request(self, route: str, status: int, seconds: float) -> None:
        counter = self._requests.get((route, status))
        if counter is None:
            counter = self._requests[(route, status)] = self.requests.labels(route, str(status))
        counter.inc()
        histogram = self._latency.get(route)
        if histogram is None:
            histogram = self._latency[route] = self.latency.labels(route)
        histogram.observe(seconds)

    def item(self, route: str, code: str, count: int = 1) -> None:
        counter = self._items.get((route, code))
        if counter is None:
            counter = self._items[(route, code)] = self.items.labels(route, code)
        counter.inc(count)

    def shared_statement(self, statement: str, requests: int) -> None:
        histogram = self._statements.get(statement)
        if histogram is None:
            histogram = self._statements[statement] = self.requests_per_statement.labels(statement)
        histogram.observe(requests)

    def auth_lockout(self, kind: str, scope: str) -> None:
        self.auth_lockouts.labels(kind, scope).inc()

    def auth_refusal(self, kind: str, reason: str) -> None:
        self.auth_refusals.labels(kind, reason).inc()

    def warning(self, code: str, count: int = 1) -> None:
        counter = self._warnings.get(code)
        if counter is None:
            counter = self._warnings[code] = self.warnings.labels(code)
        counter.inc(count)


_METRICS: Metrics | None = None


def _metric(kind: Any, name: str, documentation: str, labels: list[str] | None = None, **options: Any) -> Any:
    return kind(name, documentation, labels or (), **options)


def metrics() -> Metrics:
    """The process's one set of series (the Prometheus registry refuses a name twice)."""
    global _METRICS
    if _METRICS is None:
        _METRICS = Metrics()
    return _METRICS


def exposition() -> tuple[bytes, str]:
    """The scrape: this process's series, or with several workers the sum of all of them."""
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        generate_latest,
    )

    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# Prometheus names its files TYPE_PID.db; only those are ever removed from a metrics directory,
# which an operator may have pointed at a folder that holds other things.
_METRICS_FILE = re.compile(r"^(counter|histogram|summary|gauge_[a-z]+)_\w+\.db$")


def _clear_metrics_files(path: Path) -> None:
    for file in path.iterdir():
        if _METRICS_FILE.match(file.name):
            file.unlink(missing_ok=True)


@contextmanager
def multiprocess_metrics(settings: Settings, workers: int) -> Iterator[Path | None]:
    """With several workers, a directory where each writes its series, so a scrape sees their sum.

    Cleared at start (series of a previous run would be added in) and at the end; a directory
    made here is removed.
    """
    if workers <= 1:
        yield None
        return
    given = settings.metrics_dir or os.environ.get(MULTIPROC_ENV)
    path = Path(given) if given else Path(tempfile.mkdtemp(prefix="patron-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    _clear_metrics_files(path)
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        if given:
            _clear_metrics_files(path)
        else:
            shutil.rmtree(path, ignore_errors=True)


