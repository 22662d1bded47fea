"""The Grafana dashboard: every panel query parses with promtool (Prometheus' own parser, through `promtool check
rules` on a generated rules file, which needs no server), and every metric a query names is exported by the
operator (prometheus_client's registry after importing modelhub.adapters.metrics). Either failing fails here."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.unit.promql import check_expressions, metric_names, unknown_names

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "modelhub-dashboard.json"
# What Grafana substitutes before sending a query (values of the right kind for the parser).
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m", "$__interval": "1m", "$__range": "6h", "${job}": "modelhub.*", "$job": "modelhub.*",
}


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def all_panels(d: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in d["panels"]:
        out.append(p)
        out.extend(p.get("panels") or [])  # panels inside collapsed rows
    return out


def queries(d: dict[str, Any]) -> dict[str, str]:
    """panel title / refId -> PromQL with Grafana's variables substituted."""
    out = {}
    for p in all_panels(d):
        for t in p.get("targets") or []:
            expr = t["expr"]
            for var, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(var, value)
            out[f"{p['title']}/{t['refId']}"] = expr
    return out


def test_dashboard_is_generated_and_in_sync() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "hack" / "dashboard.py"), "--check"], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_every_query_parses_with_promtool(tmp_path: Path) -> None:
    exprs = queries(load())
    assert len(exprs) >= 20
    assert not any("$" in e for e in exprs.values()), "a Grafana variable is not substituted"
    proc = check_expressions(exprs, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in proc.stdout


def test_promtool_check_would_catch_a_broken_query(tmp_path: Path) -> None:
    proc = check_expressions({"broken": "sum by (reason (rate(modelhub_reconcile_total[5m]))"}, tmp_path)
    assert proc.returncode != 0


def test_every_metric_a_panel_reads_is_exported() -> None:
    exprs = queries(load())
    for name, expr in exprs.items():
        if expr != "vector(30)":
            assert metric_names(expr), name
    assert unknown_names(exprs.values()) == {}
    # and the check is not vacuous
    assert unknown_names(["sum(rate(modelhub_not_a_metric_total[5m]))"]) == {
        "sum(rate(modelhub_not_a_metric_total[5m]))": {"modelhub_not_a_metric_total"}
    }


def test_panels_cover_what_platform_teams_watch() -> None:
    d = load()
    titles = {p["title"] for p in all_panels(d)}
    for wanted in ("Rollout duration", "Versions by state", "Verification results", "Revocation latency",
                   "Workloads torn down", "Queue"):
        assert wanted in titles
    latency = next(p for p in all_panels(d) if p["title"] == "Revocation latency")
    steps = latency["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert {"color": "red", "value": 30} in steps
    assert latency["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line"
    assert any(t["expr"] == "vector(30)" for t in latency["targets"])
    ids = [p["id"] for p in all_panels(d)]
    assert len(ids) == len(set(ids))
    for p in all_panels(d):
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert p["targets"], p["title"]
            assert re.fullmatch(r"[A-Z]", p["targets"][0]["refId"])


def test_configmap_ships_the_same_json() -> None:
    import yaml

    doc = yaml.safe_load((ROOT / "deploy" / "grafana" / "modelhub-dashboard-configmap.yaml").read_text())
    assert doc["kind"] == "ConfigMap" and doc["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert doc["data"]["modelhub-dashboard.json"] == DASHBOARD.read_text()
