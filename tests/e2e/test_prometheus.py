"""A real Prometheus (Debian's package, started here on 127.0.0.1) scrapes the operator while a version rolls out
and is revoked; PromQL through Prometheus' HTTP API returns the expected series, and the alerting rules of
deploy/prometheus/modelhub-rules.yaml load and evaluate without error against the live data.

The operator runs as its own process here (not the shared `operator` fixture) so that its metrics and webhook
ports are free ones this module knows."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import start_operator, stop_operator
from tests.e2e.kubehelp import ROOT, apply, kubectl, unique, wait_condition, wait_for
from tests.e2e.test_rollout import WAIT, Env, gone, make_env, wait_ready

RULES = ROOT / "deploy" / "prometheus" / "modelhub-rules.yaml"
JOB = "modelhub"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.base}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback only
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        data = self.api("query", query=promql)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def value(self, promql: str) -> float | None:
        """The value of a query that yields one series (None when it yields none)."""
        result = self.query(promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def wait(self, promql: str, what: str, timeout: float = 60) -> list[dict[str, Any]]:
        """Poll until the query yields at least one series (use comparisons to wait for values)."""
        return wait_for(lambda: self.query(promql), timeout, interval=1, what=f"{what}: {promql}")


@pytest.fixture(scope="module")
def metrics_port(crds: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    if os.environ.get("MODELHUB_OPERATOR") == "external":
        pytest.skip("starts its own operator process; a second one beside an external operator would fight it")
    port = free_port()
    log = tmp_path_factory.mktemp("operator") / "operator-prometheus.log"
    proc = start_operator(log, MODELHUB_METRICS_PORT=str(port), MODELHUB_WEBHOOK_PORT=str(free_port()))
    try:
        yield port
    finally:
        stop_operator(proc)
        print(f"\noperator log: {log}")


@pytest.fixture(scope="module")
def prometheus(metrics_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is needed: make prometheus (hack/install-prometheus.sh) installs Debian's package"
    root = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}],
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = open(root / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [binary, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    prom = Prometheus(port)
    try:
        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"prometheus exited {proc.returncode}: {(root / 'prometheus.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{prom.base}/-/ready", timeout=2) as r:  # noqa: S310
                    return r.status == 200
            except OSError:
                return False

        wait_for(ready, 60, what="prometheus ready")
        prom.wait(f'up{{job="{JOB}"}} == 1', "the operator scraped")
        yield prom
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.fixture(scope="module")
def scenario(prometheus: Prometheus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A version rolled out and then revoked (with the operator under this module's Prometheus)."""
    ns = unique("e2e-prom")
    kubectl("create", "namespace", ns)
    rev = unique("rvk-prom")
    try:
        env: Env = make_env(ns, tmp_path_factory.mktemp("signed"))
        env.model("clf", stable="1.0.0")
        v1 = env.version("clf", "1.0.0")
        wait_ready(ns, v1)
        apply({"apiVersion": "modelhub.dev/v1alpha1", "kind": "Revocation", "metadata": {"name": rev},
               "spec": {"reason": "e2e: prometheus", "match": {"digests": [env.signed[v1].digest]}}})
        wait_condition("revocation", rev, None, "Enforced", "True", timeout=WAIT)
        wait_for(lambda: gone("deployment", ns, v1), WAIT, what="the revoked deployment gone")
        yield {"ns": ns, "version": v1, "revocation": rev}
    finally:
        kubectl("delete", "revocation", rev, "--ignore-not-found", "--wait=false", check=False)
        kubectl("delete", "namespace", ns, "--wait=false", check=False)


J = f'job="{JOB}"'


# --- series today's handlers record --------------------------------------------------------------------------
def test_scrape_target_and_process_metrics(prometheus: Prometheus) -> None:
    targets = prometheus.api("targets")["activeTargets"]
    assert [t["health"] for t in targets if t["labels"]["job"] == JOB] == ["up"]
    assert (prometheus.value(f"process_resident_memory_bytes{{{J}}}") or 0) > 0
    prometheus.wait(f"rate(process_cpu_seconds_total{{{J}}}[30s]) >= 0", "process cpu")
    assert prometheus.value(f"modelhub_leader{{{J}}}") == 1


def test_rollout_and_revocation_series(prometheus: Prometheus, scenario: dict[str, str]) -> None:
    # reconciles of every kind, without errors being the only thing recorded
    for kind in ("Model", "ModelVersion", "Revocation"):
        prometheus.wait(f'modelhub_reconcile_total{{{J},kind="{kind}",result="ok"}} > 0', f"{kind} reconciles")
    prometheus.wait(f'modelhub_signature_verifications_total{{{J},reason="Verified"}} >= 1', "a verification")
    # the revocation: enforced once, its latency observed, the Deployment counted as torn down
    prometheus.wait(f"modelhub_revocation_enforcement_seconds_count{{{J}}} >= 1", "an enforcement")
    p99 = prometheus.value(
        f"histogram_quantile(0.99, sum by (le) (modelhub_revocation_enforcement_seconds_bucket{{{J}}}))")
    assert p99 is not None and p99 > 0
    prometheus.wait(f'modelhub_workloads_torn_down_total{{{J},kind="Deployment"}} >= 1', "a teardown")
    # the served version's replicas were recorded while it served
    prometheus.wait(f'max_over_time(modelhub_serving_replicas{{{J},namespace="{scenario["ns"]}",model="clf"}}[10m]) >= 1',
                    "serving replicas")


def test_alert_rules_load_and_evaluate_on_live_data(prometheus: Prometheus, scenario: dict[str, str]) -> None:
    expected = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}

    def evaluated() -> list[dict[str, Any]] | None:
        rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
        done = {r["name"] for r in rules if r.get("lastEvaluation", "").startswith("20")}
        return rules if done >= expected else None

    rules = wait_for(evaluated, 60, interval=1, what="every alert rule evaluated")
    assert {r["name"] for r in rules} == expected
    for r in rules:
        assert r["health"] == "ok", r
    states = {r["name"]: r["state"] for r in rules}
    assert states["ModelhubOperatorDown"] == "inactive"
    assert states["ModelhubNoLeader"] == "inactive"
    assert states["ModelhubSeveralLeaders"] == "inactive"


def test_every_dashboard_query_runs_on_live_data(prometheus: Prometheus, scenario: dict[str, str]) -> None:
    """The Grafana panels' PromQL, with Grafana's variables substituted, as Grafana would send it."""
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "modelhub-dashboard.json").read_text())
    subst = {"$__rate_interval": "1m", "$__range": "10m", "$job": JOB}
    answered = {}
    for panel in dashboard["panels"]:
        for t in panel.get("targets") or []:
            expr = t["expr"]
            for var, val in subst.items():
                expr = expr.replace(var, val)
            answered[f"{panel['title']}/{t['refId']}"] = prometheus.query(expr)  # raises unless status=success
    assert len(answered) >= 20
    # panels fed by today's handlers show data after the rollout and the revocation
    for title in ("Operators up/A", "Leaders/A", "Verification results/A", "Reconciles/A", "Operator memory/A",
                  "Revocation latency/D"):
        assert answered[title], title


# --- series the reconcilers, the queue and the webhooks record ------------------------------------------------
RECORDED = [
    (f"modelhub_rollout_duration_seconds_count{{{J}}} >= 1", "record_rollout"),
    (f'modelhub_model_versions{{{J},condition="Revoked",status="True"}} >= 1', "watch_versions"),
    (f'modelhub_reconcile_duration_seconds_count{{{J},kind="ModelVersion"}} >= 1', "observe_reconcile"),
    (f"modelhub_queue_wait_seconds_count{{{J}}} >= 1", "observe_queue_wait"),
    (f'modelhub_webhook_requests_total{{{J},result="allowed"}} >= 1', "record_webhook"),
]


@pytest.mark.parametrize(("promql", "function"), [pytest.param(q, f, id=f) for q, f in RECORDED])
def test_series_of_the_recording_functions(prometheus: Prometheus, scenario: dict[str, str], promql: str,
                                           function: str) -> None:
    prometheus.wait(promql, f"the series {function} records", timeout=10)
