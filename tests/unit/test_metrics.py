"""The operator's metrics through prometheus_client's own exposition: each recording function changes exactly the
series it should, as Prometheus would read them (the text format parsed back), with bounded label values."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from modelhub.adapters import metrics

NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the default registry, as the /metrics text format gives it."""
    text = generate_latest(REGISTRY).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(name: str, **labels: str) -> float:
    return scrape().get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def families() -> dict[str, str]:
    text = generate_latest(REGISTRY).decode()
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def test_names_types_and_conventions() -> None:
    fams = families()
    expected = {
        "modelhub_model_versions": "gauge",
        "modelhub_signature_verifications": "counter",
        "modelhub_rollout_duration_seconds": "histogram",
        "modelhub_revocation_enforcement_seconds": "histogram",
        "modelhub_revocations_unenforced": "gauge",
        "modelhub_revocation_oldest_unenforced_timestamp_seconds": "gauge",
        "modelhub_workloads_torn_down": "counter",
        "modelhub_reconcile": "counter",
        "modelhub_reconcile_errors": "counter",
        "modelhub_reconcile_duration_seconds": "histogram",
        "modelhub_queue_depth": "gauge",
        "modelhub_queue_wait_seconds": "histogram",
        "modelhub_webhook_requests": "counter",
        "modelhub_leader": "gauge",
        "modelhub_serving_replicas": "gauge",
    }
    for name, kind in expected.items():
        assert fams.get(name) == kind, name  # the parser strips a counter's _total from the family name
    # process metrics from prometheus_client's default ProcessCollector
    assert "process_cpu_seconds" in fams and "process_resident_memory_bytes" in fams
    for name in fams:
        assert NAME.match(name)
        if name.startswith("modelhub_") and fams[name] == "histogram":
            assert name.endswith("_seconds")
    text = generate_latest(REGISTRY).decode()
    for line in text.splitlines():
        if line.startswith("# TYPE modelhub_") and line.endswith(" counter"):
            name = line.split()[2]
            assert name.endswith("_total") or f"{name}_total " in text


def test_verification_results() -> None:
    before = scrape()
    metrics.record_verification("Verified")
    metrics.record_verification("BadSignature")
    metrics.record_verification("BadSignature")
    metrics.record_verification("<script>alert(1)</script>")  # not a reason: bounded to Other
    after = scrape()
    assert delta(before, after, "modelhub_signature_verifications_total", reason="Verified") == 1
    assert delta(before, after, "modelhub_signature_verifications_total", reason="BadSignature") == 2
    assert delta(before, after, "modelhub_signature_verifications_total", reason="Other") == 1
    # the legacy object the handlers use today writes the same series
    metrics.VERIFICATIONS.labels("Verified").inc()
    assert delta(after, scrape(), "modelhub_signature_verifications_total", reason="Verified") == 1


def test_rollout_histogram_and_its_seconds() -> None:
    assert metrics.rollout_seconds("2026-03-02T10:00:00Z", "2026-03-02T10:00:42Z") == 42.0
    assert metrics.rollout_seconds("2026-03-02T10:00:00Z", dt.datetime(2026, 3, 2, 10, 1, tzinfo=dt.UTC)) == 60.0
    assert metrics.rollout_seconds("yesterday", "2026-03-02T10:00:42Z") is None
    before = scrape()
    metrics.record_rollout(42.0)
    metrics.record_rollout(7.0)
    after = scrape()
    assert delta(before, after, "modelhub_rollout_duration_seconds_count") == 2
    assert delta(before, after, "modelhub_rollout_duration_seconds_sum") == pytest.approx(49.0)
    assert delta(before, after, "modelhub_rollout_duration_seconds_bucket", le="10.0") == 1
    assert delta(before, after, "modelhub_rollout_duration_seconds_bucket", le="60.0") == 2
    assert delta(before, after, "modelhub_rollout_duration_seconds_bucket", le="+Inf") == 2


def test_enforcement_and_unenforced_revocations() -> None:
    before = scrape()
    metrics.record_enforcement(1.5)
    metrics.ENFORCEMENT_SECONDS.observe(40)  # legacy name, as the handlers call it today
    after = scrape()
    assert delta(before, after, "modelhub_revocation_enforcement_seconds_count") == 2
    assert delta(before, after, "modelhub_revocation_enforcement_seconds_bucket", le="30.0") == 1
    metrics.set_unenforced_revocations(["2026-03-02T10:00:05Z", 1772445600.0, "garbage"])
    assert value("modelhub_revocations_unenforced") == 2
    assert value("modelhub_revocation_oldest_unenforced_timestamp_seconds") == 1772445600.0
    metrics.set_unenforced_revocations([])
    assert value("modelhub_revocations_unenforced") == 0
    assert value("modelhub_revocation_oldest_unenforced_timestamp_seconds") == 0


def test_teardowns_by_kind() -> None:
    before = scrape()
    metrics.record_teardown("Deployment", 3)
    metrics.record_teardown("StatefulSet")
    metrics.record_teardown("MyCustomThing", 2)
    metrics.record_teardown("Deployment", 0)
    metrics.TORN_DOWN.inc(2)  # legacy call of today's handlers: Deployments
    after = scrape()
    assert delta(before, after, "modelhub_workloads_torn_down_total", kind="Deployment") == 5
    assert delta(before, after, "modelhub_workloads_torn_down_total", kind="StatefulSet") == 1
    assert delta(before, after, "modelhub_workloads_torn_down_total", kind="Other") == 2


def test_reconcile_duration_and_errors() -> None:
    before = scrape()
    metrics.observe_reconcile("Model", 0.02)
    metrics.observe_reconcile("Model", 3.0, error=True)
    metrics.observe_reconcile("Pod", 0.01)  # not a kind of ours
    after = scrape()
    assert delta(before, after, "modelhub_reconcile_total", kind="Model", result="ok") == 1
    assert delta(before, after, "modelhub_reconcile_total", kind="Model", result="error") == 1
    assert delta(before, after, "modelhub_reconcile_errors_total", kind="Model") == 1
    assert delta(before, after, "modelhub_reconcile_duration_seconds_count", kind="Model") == 2
    assert delta(before, after, "modelhub_reconcile_duration_seconds_bucket", kind="Model", le="0.025") == 1
    assert delta(before, after, "modelhub_reconcile_total", kind="Other", result="ok") == 1
    assert delta(before, after, "modelhub_reconcile_total", kind="Pod", result="ok") == 0


def test_queue_webhooks_leader() -> None:
    metrics.queue_depth(17)
    assert value("modelhub_queue_depth") == 17
    metrics.queue_depth(-3)
    assert value("modelhub_queue_depth") == 0
    before = scrape()
    metrics.observe_queue_wait(0.2)
    metrics.record_webhook("approval", "allowed")
    metrics.record_webhook("no-resurrection", "denied")
    metrics.record_webhook("no-resurrection", "error")
    metrics.record_webhook("whatever", "maybe")
    after = scrape()
    assert delta(before, after, "modelhub_queue_wait_seconds_count") == 1
    assert delta(before, after, "modelhub_queue_wait_seconds_bucket", le="0.25") == 1
    assert delta(before, after, "modelhub_webhook_requests_total", webhook="approval", result="allowed") == 1
    assert delta(before, after, "modelhub_webhook_requests_total", webhook="no-resurrection", result="denied") == 1
    assert delta(before, after, "modelhub_webhook_requests_total", webhook="no-resurrection", result="error") == 1
    assert delta(before, after, "modelhub_webhook_requests_total", webhook="Other", result="Other") == 1
    assert value("modelhub_leader") == 1  # a single replica leads until leader election says otherwise
    metrics.set_leader(False)
    assert value("modelhub_leader") == 0
    metrics.set_leader(True)
    assert value("modelhub_leader") == 1


def _version(**conds: tuple[str, str]) -> dict:
    return {"status": {"conditions": [{"type": t, "status": s, "reason": r} for t, (s, r) in conds.items()]}}


def test_versions_by_condition_counts_and_replaces() -> None:
    versions = [
        _version(SignatureVerified=("True", "Verified"), Approved=("True", "Approved"), Revoked=("False", "NotRevoked"),
                 Available=("True", "MinimumReplicasAvailable"), Ready=("True", "Serving")),
        _version(SignatureVerified=("False", "BadSignature"), Approved=("True", "NotRequired"),
                 Revoked=("False", "NotRevoked"), Available=("False", "BadSignature"), Ready=("False", "BadSignature")),
        {"metadata": {"name": "fresh"}},  # no status yet
    ]
    counts = metrics.count_versions_by_condition(versions)
    assert counts[("SignatureVerified", "True", "Verified")] == 1
    assert counts[("SignatureVerified", "False", "BadSignature")] == 1
    assert counts[("SignatureVerified", "Unknown", "NoStatus")] == 1
    assert counts[("Revoked", "False", "NotRevoked")] == 2
    for ctype in metrics.CONDITIONS:  # every version counts once per condition type
        assert sum(n for (t, _, _), n in counts.items() if t == ctype) == 3
    metrics.set_versions_by_condition(counts)
    assert value("modelhub_model_versions", condition="Ready", status="False", reason="BadSignature") == 1
    assert value("modelhub_model_versions", condition="Ready", status="True", reason="Serving") == 1
    # the refused version is deleted: its series disappears instead of staying at 1
    metrics.set_versions_by_condition(metrics.count_versions_by_condition(versions[:1]))
    assert ("modelhub_model_versions", (("condition", "Ready"), ("reason", "BadSignature"), ("status", "False"))) \
        not in scrape()
    assert value("modelhub_model_versions", condition="Ready", status="True", reason="Serving") == 1


def test_reason_labels_are_bounded() -> None:
    many = [_version(Ready=("False", f"Reason{i}")) for i in range(500)]
    counts = metrics.count_versions_by_condition(many)
    ready = {r for (t, _, r) in counts if t == "Ready"}
    assert len(ready) <= metrics.MAX_REASONS + 1 and "Other" in ready
    assert sum(n for (t, _, _), n in counts.items() if t == "Ready") == 500
    hostile = [_version(Ready=("Maybe", "x" * 500), Approved=("True", "has space"))]
    counts = metrics.count_versions_by_condition(hostile)
    assert counts[("Ready", "Other", "Other")] == 1 and counts[("Approved", "True", "Other")] == 1


def test_versions_and_revocations_pulled_from_a_source_at_scrape_time() -> None:
    versions = [_version(Revoked=("True", "Revoked"), Ready=("False", "Revoked"))]
    revocations = [
        {"metadata": {"name": "a", "creationTimestamp": "2026-03-02T10:00:00Z"},
         "status": {"conditions": [{"type": "Enforced", "status": "False", "reason": "TearingDown"}]}},
        {"metadata": {"name": "b", "creationTimestamp": "2026-03-02T09:00:00Z"},
         "status": {"conditions": [{"type": "Enforced", "status": "True", "reason": "Enforced"}]}},
        {"metadata": {"name": "c", "creationTimestamp": "2026-03-02T10:00:30Z"}},  # not seen yet
    ]
    assert metrics.unenforced_creation_times(revocations) == [
        dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC).timestamp(), dt.datetime(2026, 3, 2, 10, 0, 30, tzinfo=dt.UTC).timestamp()]
    metrics.watch_versions(lambda: versions)
    metrics.watch_revocations(lambda: revocations)
    try:
        assert value("modelhub_model_versions", condition="Revoked", status="True", reason="Revoked") == 1
        assert value("modelhub_revocations_unenforced") == 2
        assert value("modelhub_revocation_oldest_unenforced_timestamp_seconds") == \
            dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC).timestamp()
        # the cluster changes: the next scrape shows it, without anyone pushing
        versions.append(_version(Revoked=("True", "Revoked")))
        revocations[0]["status"]["conditions"][0].update(status="True", reason="Enforced")
        revocations.pop()
        assert value("modelhub_model_versions", condition="Revoked", status="True", reason="Revoked") == 2
        assert value("modelhub_revocations_unenforced") == 0
        assert value("modelhub_revocation_oldest_unenforced_timestamp_seconds") == 0

        # a failing source keeps the last values; the scrape still works
        def broken() -> list:
            raise RuntimeError("dictionary changed size during iteration")

        metrics.watch_versions(broken)
        assert value("modelhub_model_versions", condition="Revoked", status="True", reason="Revoked") == 2
    finally:
        metrics.watch_versions(None)
        metrics.watch_revocations(None)


def test_reconcile_timer() -> None:
    before = scrape()
    with metrics.reconcile_timer("Revocation"):
        pass
    with pytest.raises(KeyError), metrics.reconcile_timer("Revocation"):
        raise KeyError("boom")
    after = scrape()
    assert delta(before, after, "modelhub_reconcile_total", kind="Revocation", result="ok") == 1
    assert delta(before, after, "modelhub_reconcile_total", kind="Revocation", result="error") == 1
    assert delta(before, after, "modelhub_reconcile_errors_total", kind="Revocation") == 1
    assert delta(before, after, "modelhub_reconcile_duration_seconds_count", kind="Revocation") == 2
