"""Logging and metrics: one structured line per request, Prometheus counters, and GET /metrics."""

from patron.observability.logs import LineWriter, PatronFormatter, RequestLog, configure_logging
from patron.observability.masking import mask_email, mask_mobile, mask_text, redact_secrets
from patron.observability.metrics import MULTIPROC_ENV, Metrics, metrics, multiprocess_metrics
from patron.observability.middleware import METRICS_PATH, ObservabilityMiddleware, Observer

__all__ = [
    "METRICS_PATH", "MULTIPROC_ENV", "LineWriter", "Metrics", "ObservabilityMiddleware", "Observer", "PatronFormatter",
    "RequestLog", "configure_logging", "mask_email", "mask_mobile", "mask_text", "metrics", "multiprocess_metrics",
    "redact_secrets",
]
