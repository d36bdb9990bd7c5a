"""The relay's Prometheus series (events.md §4) and the HTTP endpoint `patron relay --metrics-port` serves them on."""

from __future__ import annotations

from typing import Any

# Seconds; a webhook answers in tens of milliseconds, a timeout takes 15 s.
DELIVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)


class RelayMetrics:
    """The series of one relay. A sink is reported by the relay that holds it (pending, lag,
    failing), so that a sum over relays counts it once; disabled sinks by every relay (use max)."""

    def __init__(self, *, private: bool = False) -> None:
        """`private`: series of their own, not the process's (several relays in one process: tests)."""
        from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry() if private else REGISTRY
        by_sink = ["org", "sink"]
        self.pending = Gauge(
            "patron_events_pending", "Events a sink has yet to take: after its position in the stream, or waiting"
            " for a retry (or behind one).", by_sink, registry=self.registry)
        self.lag = Gauge(
            "patron_event_lag_seconds", "Age of the oldest event a sink has yet to take (0 when it has taken all).",
            by_sink, registry=self.registry)
        self.deliveries = Counter(
            "patron_event_deliveries_total", "Delivery attempts, by sink and result (delivered, retry, dead,"
            " disabled).", [*by_sink, "result"], registry=self.registry)
        self.delivery_seconds = Histogram(
            "patron_event_delivery_seconds", "Time a sink took to answer a delivery attempt.", by_sink,
            buckets=DELIVERY_BUCKETS, registry=self.registry)
        self.failing = Gauge(
            "patron_event_sink_failing", "1 while a sink has failed 5 times in a row or more (it is then only"
            " probed).", by_sink, registry=self.registry)
        self.disabled = Gauge(
            "patron_event_sink_disabled", "1 when a sink is disabled (a 410, or failing for 5 days): it is sent"
            " nothing until re-enabled.", by_sink, registry=self.registry)
        self._attempts: dict[tuple[str, str, str], Any] = {}
        self._latency: dict[tuple[str, str], Any] = {}

    def attempt(self, org_id: int, sink: str, result: str, seconds: float) -> None:
        key = (str(org_id), sink, result)
        counter = self._attempts.get(key)
        if counter is None:
            counter = self._attempts[key] = self.deliveries.labels(*key)
        counter.inc()
        histogram = self._latency.get(key[:2])
        if histogram is None:
            histogram = self._latency[key[:2]] = self.delivery_seconds.labels(*key[:2])
        histogram.observe(seconds)

    def backlog(self, org_id: int, sink: str, pending: int, lag_seconds: float, failing: bool) -> None:
        labels = (str(org_id), sink)
        self.pending.labels(*labels).set(pending)
        self.lag.labels(*labels).set(lag_seconds)
        self.failing.labels(*labels).set(1 if failing else 0)

    def let_go(self, org_id: int, sink: str) -> None:
        """The relay no longer holds the sink: the holder reports it now."""
        for gauge in (self.pending, self.lag, self.failing):
            try:
                gauge.remove(str(org_id), sink)
            except KeyError:
                pass

    def set_disabled(self, org_id: int, sink: str, disabled: bool) -> None:
        self.disabled.labels(str(org_id), sink).set(1 if disabled else 0)


_PROCESS_METRICS: RelayMetrics | None = None


def process_metrics() -> RelayMetrics:
    """The process's one set of relay series (the Prometheus registry refuses a name twice)."""
    global _PROCESS_METRICS
    if _PROCESS_METRICS is None:
        _PROCESS_METRICS = RelayMetrics()
    return _PROCESS_METRICS


def serve(metrics: RelayMetrics, port: int) -> Any:
    """Serve the series on 127.0.0.1:`port` (a thread of prometheus_client's); the server, to close."""
    from prometheus_client import start_http_server

    server, _ = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    return server
