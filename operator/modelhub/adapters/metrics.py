"""Prometheus metrics of the operator (served on :8000/metrics by default; MODELHUB_METRICS_PORT=0 disables)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECONCILES = Counter("modelhub_reconcile_total", "Reconciles by kind and result", ["kind", "result"])
VERIFICATIONS = Counter(
    "modelhub_signature_verifications_total", "Signature verifications by result reason", ["reason"]
)
ENFORCEMENT_SECONDS = Histogram(
    "modelhub_revocation_enforcement_seconds",
    "Seconds from a Revocation's creation to the last matching workload gone",
    buckets=(0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300),
)
TORN_DOWN = Counter("modelhub_workloads_torn_down_total", "Workloads deleted because a Revocation covers them")
SERVING = Gauge("modelhub_serving_replicas", "Ready replicas serving", ["namespace", "model", "version", "role"])


def serve(port: int) -> None:
    if port:
        start_http_server(port, addr="0.0.0.0")
