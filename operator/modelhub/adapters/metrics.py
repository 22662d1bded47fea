"""Prometheus metrics of the operator (served on :8000/metrics by default; MODELHUB_METRICS_PORT=0 disables).

Every metric has a small typed recording function below; handlers call those, not the metric objects. Names
follow the Prometheus conventions (``modelhub_`` prefix, base units in the name, ``_total`` for counters) and
every label has a bounded set of values: a resource kind, a condition type/status, an operator-written reason,
a webhook id, a result. Nothing is labelled per object name, except the legacy ``modelhub_serving_replicas``
(one series per served version, bounded by what is promoted; kept because the handlers set it today).

The default registry also carries prometheus_client's process (``process_*``), platform and GC collectors.

| metric | type | labels |
| --- | --- | --- |
| modelhub_model_versions | gauge | condition, status, reason |
| modelhub_signature_verifications_total | counter | reason |
| modelhub_rollout_duration_seconds | histogram | |
| modelhub_revocation_enforcement_seconds | histogram | |
| modelhub_revocations_unenforced | gauge | |
| modelhub_revocation_oldest_unenforced_timestamp_seconds | gauge | |
| modelhub_workloads_torn_down_total | counter | kind |
| modelhub_reconcile_total | counter | kind, result |
| modelhub_reconcile_errors_total | counter | kind |
| modelhub_reconcile_duration_seconds | histogram | kind |
| modelhub_queue_depth | gauge | |
| modelhub_queue_wait_seconds | histogram | |
| modelhub_webhook_requests_total | counter | webhook, result |
| modelhub_leader | gauge | |
| modelhub_serving_replicas | gauge | namespace, model, version, role |
| modelhub_api_requests_total | counter | verb, resource |
| modelhub_events_dropped_total | counter | |
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from modelhub.vocab import conditions as C

log = logging.getLogger(__name__)

__all__ = [
    "REGISTRY",
    "count_versions_by_condition",
    "observe_queue_wait",
    "observe_reconcile",
    "queue_depth",
    "record_api_request",
    "record_event_dropped",
    "record_enforcement",
    "record_rollout",
    "record_teardown",
    "record_verification",
    "reconcile_timer",
    "record_webhook",
    "rollout_seconds",
    "serve",
    "set_leader",
    "set_serving_replicas",
    "set_unenforced_revocations",
    "set_versions_by_condition",
    "unenforced_creation_times",
    "watch_revocations",
    "watch_versions",
]

#: Label values outside these sets are recorded as OTHER, so no input can grow the number of series.
KINDS = frozenset({"Model", "ModelVersion", "Revocation"})
CONDITIONS = frozenset(C.VERSION_TYPES)
STATUSES = frozenset({"True", "False", "Unknown"})
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Pod"})
WEBHOOKS = frozenset({"approval", "no-resurrection", "no-revoked-promotion"})
WEBHOOK_RESULTS = frozenset({"allowed", "denied", "error"})
OTHER = "Other"
#: Reasons are CamelCase constants of the operator; anything else (or past the cap) becomes OTHER.
_REASON = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
MAX_REASONS = 64

# Seconds: from a few hundred milliseconds (a CPU model on a warm node) to many minutes (a GPU image pull).
_ROLLOUT_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600)
_ENFORCEMENT_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300)
_RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

VERIFICATIONS = Counter(
    "modelhub_signature_verifications_total",
    "Signature verifications by result reason (Verified, or the refusal/pending reason)",
    ["reason"],
)
ROLLOUT_SECONDS = Histogram(
    "modelhub_rollout_duration_seconds",
    "Seconds from a ModelVersion's creation to its first Available=True",
    buckets=_ROLLOUT_BUCKETS,
)
ENFORCEMENT_SECONDS = Histogram(
    "modelhub_revocation_enforcement_seconds",
    "Seconds from a Revocation's creation to the last matching workload gone",
    buckets=_ENFORCEMENT_BUCKETS,
)
TEARDOWNS = Counter(
    "modelhub_workloads_torn_down_total", "Workloads deleted because a Revocation covers them, by kind", ["kind"]
)
RECONCILES = Counter("modelhub_reconcile_total", "Reconciles by kind and result (ok, error)", ["kind", "result"])
RECONCILE_ERRORS = Counter("modelhub_reconcile_errors_total", "Reconciles that raised, by kind", ["kind"])
RECONCILE_SECONDS = Histogram(
    "modelhub_reconcile_duration_seconds", "Seconds one reconcile took, by kind", ["kind"],
    buckets=_RECONCILE_BUCKETS,
)
QUEUE_DEPTH = Gauge("modelhub_queue_depth", "Keys waiting in the work queue")
QUEUE_WAIT = Histogram(
    "modelhub_queue_wait_seconds", "Seconds a key waited in the work queue before its reconcile started",
    buckets=_WAIT_BUCKETS,
)
WEBHOOK_REQUESTS = Counter(
    "modelhub_webhook_requests_total",
    "Admission webhook requests by webhook and result (allowed, denied, error)",
    ["webhook", "result"],
)
LEADER = Gauge("modelhub_leader", "1 while this replica is the leader that reconciles, else 0")
API_REQUESTS = Counter(
    "modelhub_api_requests_total",
    "Requests the operator sent to the Kubernetes API server, by verb (get, list, watch, create, update, patch, "
    "delete, deletecollection) and resource (e.g. deployments, pods, modelversions/status)",
    ["verb", "resource"],
)
API_REQUEST_SECONDS = Histogram(
    "modelhub_api_request_duration_seconds",
    "Seconds from sending a request to the API server to its answer, by verb and resource (watches excluded)",
    ["verb", "resource"], buckets=_RECONCILE_BUCKETS,
)
EVENTS_DROPPED = Counter(
    "modelhub_events_dropped_total",
    "Kubernetes Events not recorded because the Event rate limit's backlog was full",
)
SERVING = Gauge("modelhub_serving_replicas", "Ready replicas serving", ["namespace", "model", "version", "role"])

# A single replica (no leader election) is the leader; leader election sets 0 while standing by.
LEADER.set(1)


class _StateCollector(Collector):
    """The gauges that describe the whole cluster state: ModelVersions by condition, unenforced Revocations.

    Either pushed (:func:`set_versions_by_condition`, :func:`set_unenforced_revocations`) or, better, pulled
    at scrape time from a source the handlers register once (:func:`watch_versions`, :func:`watch_revocations`:
    a callable returning the current objects, e.g. a snapshot of the watch cache), so no reconcile pays for a
    recount. A source that raises keeps the last values (a scrape never fails because of it)."""

    def __init__(self) -> None:
        self.version_counts: dict[tuple[str, str, str], int] = {}
        self.unenforced: list[float] = []
        self.versions_source: Callable[[], Iterable[Mapping[str, Any]]] | None = None
        self.revocations_source: Callable[[], Iterable[Mapping[str, Any]]] | None = None
        self._lock = threading.Lock()

    def describe(self) -> Iterable[Metric]:
        return list(self._families({}, []))

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            if self.versions_source is not None:
                try:
                    self.version_counts = count_versions_by_condition(list(self.versions_source()))
                except Exception:  # noqa: BLE001 - keep the last counts
                    log.debug("versions source failed", exc_info=True)
            if self.revocations_source is not None:
                try:
                    self.unenforced = unenforced_creation_times(list(self.revocations_source()))
                except Exception:  # noqa: BLE001
                    log.debug("revocations source failed", exc_info=True)
            counts, unenforced = dict(self.version_counts), list(self.unenforced)
        return list(self._families(counts, unenforced))

    @staticmethod
    def _families(counts: Mapping[tuple[str, str, str], int], unenforced: list[float]) -> Iterable[Metric]:
        versions = GaugeMetricFamily(
            "modelhub_model_versions",
            "ModelVersions by condition type, status and reason (each version counts once per condition type)",
            labels=["condition", "status", "reason"],
        )
        for (ctype, status, reason), n in sorted(counts.items()):
            versions.add_metric([_one_of(ctype, CONDITIONS), _one_of(status, STATUSES), _reason(reason)], n)
        yield versions
        yield GaugeMetricFamily(
            "modelhub_revocations_unenforced", "Revocations whose Enforced condition is not True", value=len(unenforced)
        )
        yield GaugeMetricFamily(
            "modelhub_revocation_oldest_unenforced_timestamp_seconds",
            "Creation time (Unix seconds) of the oldest Revocation not yet enforced; 0 when all are enforced",
            value=min(unenforced) if unenforced else 0,
        )


CLUSTER_STATE = _StateCollector()
REGISTRY.register(CLUSTER_STATE)

# --- legacy names (today's handlers use them) -------------------------------------------------------------
#: ``modelhub_model_versions`` is computed by CLUSTER_STATE; set it with :func:`set_versions_by_condition` or
#: :func:`watch_versions`.
VERSIONS = CLUSTER_STATE


class _TornDown:
    """``TORN_DOWN.inc(n)`` of the unlabelled counter of old: counts Deployments."""

    def inc(self, amount: float = 1) -> None:
        record_teardown("Deployment", int(amount))


TORN_DOWN = _TornDown()


# --- bounding -----------------------------------------------------------------------------------------------
def _one_of(value: str, allowed: frozenset[str]) -> str:
    return value if value in allowed else OTHER


def _reason(value: Any) -> str:
    text = str(value or "")
    return text if _REASON.match(text) else OTHER


# --- recording functions ------------------------------------------------------------------------------------
def record_verification(reason: str) -> None:
    """One signature verification: ``Verified``, or the refusal/pending reason of the SignatureVerified condition."""
    VERIFICATIONS.labels(_reason(reason)).inc()


def record_rollout(seconds: float) -> None:
    """A ModelVersion became Available for the first time, ``seconds`` after its creation."""
    ROLLOUT_SECONDS.observe(max(0.0, float(seconds)))


def rollout_seconds(created: str, available_at: dt.datetime | str) -> float | None:
    """Seconds from ``metadata.creationTimestamp`` to ``available_at`` (RFC 3339 or an aware datetime); None when
    either is not a time."""
    try:
        start = _parse_time(created)
        end = available_at if isinstance(available_at, dt.datetime) else _parse_time(available_at)
    except (TypeError, ValueError):
        return None
    return max(0.0, (end - start).total_seconds())


def record_enforcement(seconds: float) -> None:
    """A Revocation became Enforced ``seconds`` after its creation (``status.enforcementSeconds``)."""
    ENFORCEMENT_SECONDS.observe(max(0.0, float(seconds)))


def set_unenforced_revocations(created: Iterable[float | str]) -> None:
    """The creation times (Unix seconds or RFC 3339) of every Revocation not yet Enforced (all of them: the
    gauges are replaced). The alert on revocations not enforced within 30 s reads the oldest."""
    stamps = []
    for c in created:
        try:
            stamps.append(float(c) if not isinstance(c, str) else _parse_time(c).timestamp())
        except (TypeError, ValueError):
            continue
    with CLUSTER_STATE._lock:
        CLUSTER_STATE.unenforced = stamps


def unenforced_creation_times(revocations: Iterable[Mapping[str, Any]]) -> list[float]:
    """Creation times (Unix seconds) of the Revocations whose Enforced condition is not True (pure)."""
    out = []
    for r in revocations:
        conds = (r.get("status") or {}).get("conditions") or []
        if any(isinstance(c, Mapping) and c.get("type") == C.ENFORCED and c.get("status") == C.TRUE for c in conds):
            continue
        try:
            out.append(_parse_time((r.get("metadata") or {}).get("creationTimestamp") or "").timestamp())
        except (TypeError, ValueError):
            continue
    return out


def watch_versions(source: Callable[[], Iterable[Mapping[str, Any]]] | None) -> None:
    """Compute ``modelhub_model_versions`` at every scrape from ``source()`` (the current ModelVersion objects,
    e.g. ``lambda: list(cache.values())``); None stops."""
    with CLUSTER_STATE._lock:
        CLUSTER_STATE.versions_source = source


def watch_revocations(source: Callable[[], Iterable[Mapping[str, Any]]] | None) -> None:
    """Compute the unenforced-Revocation gauges at every scrape from ``source()`` (the current Revocations)."""
    with CLUSTER_STATE._lock:
        CLUSTER_STATE.revocations_source = source


def record_teardown(kind: str, count: int = 1) -> None:
    """``count`` workloads of ``kind`` (Deployment, StatefulSet, ...) deleted because a Revocation covers them."""
    if count > 0:
        TEARDOWNS.labels(_one_of(kind, WORKLOAD_KINDS)).inc(count)


#: Resources the operator talks to (anything else is recorded as OTHER, so no path can grow the series).
API_RESOURCES = frozenset({
    "models", "modelversions", "revocations", "models/status", "modelversions/status", "revocations/status",
    "deployments", "statefulsets", "daemonsets", "replicasets", "jobs", "cronjobs", "pods", "inferenceservices",
    "services", "configmaps", "secrets", "namespaces", "events", "leases", "customresourcedefinitions", "discovery",
})
API_VERBS = frozenset({"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"})


def record_api_request(verb: str, resource: str) -> None:
    """One request the operator sent to the API server (counted by the kube adapter for every call)."""
    API_REQUESTS.labels(_one_of(verb, API_VERBS), _one_of(resource, API_RESOURCES)).inc()


def record_api_latency(verb: str, resource: str, seconds: float) -> None:
    """How long one request (not a watch) took to be answered."""
    if verb != "watch":
        API_REQUEST_SECONDS.labels(_one_of(verb, API_VERBS), _one_of(resource, API_RESOURCES)).observe(seconds)


def record_event_dropped(count: int = 1) -> None:
    """``count`` Events left unrecorded by the Event rate limit (their facts are in the objects' status)."""
    if count > 0:
        EVENTS_DROPPED.inc(count)


def observe_reconcile(kind: str, seconds: float, error: bool = False) -> None:
    """One reconcile of a ``kind`` (Model, ModelVersion, Revocation) that took ``seconds`` and raised or not."""
    k = _one_of(kind, KINDS)
    RECONCILES.labels(k, "error" if error else "ok").inc()
    if error:
        RECONCILE_ERRORS.labels(k).inc()
    RECONCILE_SECONDS.labels(k).observe(max(0.0, float(seconds)))


@contextlib.contextmanager
def reconcile_timer(kind: str) -> Iterator[None]:
    """``with reconcile_timer("Model"): ...`` records :func:`observe_reconcile` for the block: its duration, and
    an error when it raises an Exception (a cancellation records nothing)."""
    start = time.perf_counter()
    try:
        yield
    except Exception:
        observe_reconcile(kind, time.perf_counter() - start, error=True)
        raise
    observe_reconcile(kind, time.perf_counter() - start)


def queue_depth(n: int) -> None:
    """How many keys wait in the work queue now."""
    QUEUE_DEPTH.set(max(0, int(n)))


def observe_queue_wait(seconds: float) -> None:
    """A key waited ``seconds`` between being enqueued (or due, when delayed) and its reconcile starting."""
    QUEUE_WAIT.observe(max(0.0, float(seconds)))


def record_webhook(webhook: str, result: str) -> None:
    """One admission request to ``webhook`` (approval, no-resurrection, no-revoked-promotion) and its ``result``
    (allowed, denied, error: the handler raised something other than an admission refusal)."""
    WEBHOOK_REQUESTS.labels(_one_of(webhook, WEBHOOKS), _one_of(result, WEBHOOK_RESULTS)).inc()


def set_leader(leading: bool) -> None:
    """Whether this replica is the leader (it reconciles) or stands by."""
    LEADER.set(1 if leading else 0)


def set_serving_replicas(namespace: str, model: str, version: str, role: str, ready: int) -> None:
    SERVING.labels(namespace, model, version, role).set(ready)


def count_versions_by_condition(versions: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str], int]:
    """(condition, status, reason) -> number of ModelVersions, from their ``status.conditions`` (pure). A version
    without a condition of a type counts as (type, "Unknown", "NoStatus"). At most MAX_REASONS distinct reasons
    per condition type; the rest count as OTHER."""
    tally: Tally[tuple[str, str, str]] = Tally()
    for v in versions:
        conds = ((v.get("status") or {}).get("conditions")) or []
        by_type = {c.get("type"): c for c in conds if isinstance(c, Mapping)}
        for ctype in sorted(CONDITIONS):
            c = by_type.get(ctype)
            if c is None:
                tally[(ctype, "Unknown", "NoStatus")] += 1
            else:
                tally[(ctype, _one_of(str(c.get("status")), STATUSES), _reason(c.get("reason")))] += 1
    out: dict[tuple[str, str, str], int] = {}
    reasons: Tally[str] = Tally()
    for (ctype, status, reason), n in sorted(tally.items()):
        if reason != OTHER and reasons[ctype] >= MAX_REASONS:
            reason = OTHER
        else:
            reasons[ctype] += 1
        out[(ctype, status, reason)] = out.get((ctype, status, reason), 0) + n
    return out


def set_versions_by_condition(counts: Mapping[tuple[str, str, str], int]) -> None:
    """Replace every ``modelhub_model_versions`` series with ``counts`` (see :func:`count_versions_by_condition`):
    a reason no version has any more disappears instead of lingering at its last value."""
    with CLUSTER_STATE._lock:
        CLUSTER_STATE.version_counts = dict(counts)


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def serve(port: int, addr: str = "0.0.0.0") -> None:
    if port:
        start_http_server(port, addr=addr)
