"""Writes deploy/grafana/modelhub-dashboard.json, the Grafana dashboard of the modelhub operator.

    python hack/dashboard.py [--check]

The JSON is what ships (import it in Grafana, or the chart's dashboard ConfigMap); this script only keeps it
regular. --check writes nothing and exits 1 when the checked-in JSON differs (the unit tests run it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "deploy" / "grafana" / "modelhub-dashboard.json"
CONFIGMAP = ROOT / "deploy" / "grafana" / "modelhub-dashboard-configmap.yaml"
DS = {"type": "prometheus", "uid": "${datasource}"}
J = 'job=~"$job"'
RATE = "$__rate_interval"


def target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": True}


def panel(kind: str, title: str, description: str, targets: list[tuple[str, str]], grid: tuple[int, int, int, int],
          unit: str = "short", **extra: Any) -> dict[str, Any]:
    x, y, w, h = grid
    out: dict[str, Any] = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [target(e, legend, chr(ord("A") + i)) for i, (e, legend) in enumerate(targets)],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
    }
    if kind == "timeseries":
        out["options"] = {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}
    for key, value in extra.items():
        if key == "defaults":
            out["fieldConfig"]["defaults"].update(value)
        else:
            out[key] = value
    return out


def row(title: str, y: int) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
            "panels": []}


def quantiles(metric: str, by: str = "") -> list[tuple[str, str]]:
    group = f"le, {by}" if by else "le"
    prefix = f"{{{{{by}}}}} " if by else ""
    return [
        (f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{{{J}}}[{RATE}])))", f"{prefix}p{int(q * 100)}")
        for q in (0.5, 0.9, 0.99)
    ]


def stacked() -> dict[str, Any]:
    return {"custom": {"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 30}}


def panels() -> list[dict[str, Any]]:
    p: list[dict[str, Any]] = []
    p.append(row("Overview", 0))
    p.append(panel("stat", "Operators up", "Scraped operator replicas that answer.",
                   [(f"sum(up{{{J}}})", "up")], (0, 1, 4, 4),
                   defaults={"thresholds": {"mode": "absolute", "steps": [
                       {"color": "red", "value": None}, {"color": "green", "value": 1}]}}))
    p.append(panel("stat", "Leaders", "Replicas that reconcile (exactly 1 is right).",
                   [(f"sum(modelhub_leader{{{J}}})", "leaders")], (4, 1, 4, 4),
                   defaults={"thresholds": {"mode": "absolute", "steps": [
                       {"color": "red", "value": None}, {"color": "green", "value": 1}, {"color": "orange", "value": 2}]}}))
    p.append(panel("stat", "Revocations not enforced", "Revocations whose workloads are still being torn down.",
                   [(f"sum(modelhub_revocations_unenforced{{{J}}})", "unenforced")], (8, 1, 4, 4),
                   defaults={"thresholds": {"mode": "absolute", "steps": [
                       {"color": "green", "value": None}, {"color": "red", "value": 1}]}}))
    p.append(panel("stat", "Versions serving", "ModelVersions whose Ready condition is True.",
                   [(f'sum(modelhub_model_versions{{{J},condition="Ready",status="True"}})', "serving")],
                   (12, 1, 4, 4)))
    p.append(panel("stat", "Versions refused", "ModelVersions whose signature verification refused them.",
                   [(f'sum(modelhub_model_versions{{{J},condition="SignatureVerified",status="False",'
                     'reason!~"BundleNotFound|BundleUnreachable|ModelNotFound"})', "refused")], (16, 1, 4, 4),
                   defaults={"thresholds": {"mode": "absolute", "steps": [
                       {"color": "green", "value": None}, {"color": "orange", "value": 1}]}}))
    p.append(panel("stat", "Queue depth", "Keys waiting for a reconcile.",
                   [(f"sum(modelhub_queue_depth{{{J}}})", "queued")], (20, 1, 4, 4)))

    p.append(row("Rollouts", 5))
    p.append(panel("timeseries", "Rollout duration", "ModelVersion created to Available (first time).",
                   quantiles("modelhub_rollout_duration_seconds"), (0, 6, 8, 8), unit="s"))
    p.append(panel("timeseries", "Rollouts per minute", "ModelVersions that became Available.",
                   [(f"sum(rate(modelhub_rollout_duration_seconds_count{{{J}}}[{RATE}])) * 60", "rollouts/min")],
                   (8, 6, 8, 8)))
    p.append(panel("timeseries", "Serving replicas", "Ready replicas by model and role (stable, canary).",
                   [(f"sum by (namespace, model, role) (modelhub_serving_replicas{{{J}}})",
                     "{{namespace}}/{{model}} {{role}}")], (16, 6, 8, 8), defaults=stacked()))

    p.append(row("Versions", 14))
    p.append(panel("timeseries", "Versions by state", "ModelVersions by the reason of their Ready condition.",
                   [(f'sum by (status, reason) (modelhub_model_versions{{{J},condition="Ready"}})',
                     "Ready={{status}} {{reason}}")], (0, 15, 12, 8), defaults=stacked()))
    p.append(panel("table", "Versions by condition", "Every condition type, status and reason with its count.",
                   [(f"sum by (condition, status, reason) (modelhub_model_versions{{{J}}})", "")],
                   (12, 15, 12, 8),
                   transformations=[{"id": "labelsToFields", "options": {}}]))

    p.append(row("Signatures", 23))
    p.append(panel("timeseries", "Verification results", "Signature verifications per second by result reason.",
                   [(f"sum by (reason) (rate(modelhub_signature_verifications_total{{{J}}}[{RATE}]))",
                     "{{reason}}")], (0, 24, 24, 8), unit="ops", defaults=stacked()))

    p.append(row("Revocation", 32))
    target_line = {"custom": {"thresholdsStyle": {"mode": "line"}},
                   "thresholds": {"mode": "absolute", "steps": [
                       {"color": "green", "value": None}, {"color": "red", "value": 30}]}}
    p.append(panel("timeseries", "Revocation latency", "Revocation created to the last revoked workload gone; "
                   "the red line is the 30 s target.",
                   [*quantiles("modelhub_revocation_enforcement_seconds"), ("vector(30)", "target 30 s")],
                   (0, 33, 12, 8), unit="s", defaults=target_line))
    p.append(panel("stat", "Enforced within 30 s", "Share of the revocations enforced in the dashboard's range "
                   "that met the 30 s target.",
                   [(f'sum(increase(modelhub_revocation_enforcement_seconds_bucket{{{J},le="30.0"}}[$__range])) / '
                     f"sum(increase(modelhub_revocation_enforcement_seconds_count{{{J}}}[$__range]))", "within 30 s")],
                   (12, 33, 4, 8), unit="percentunit",
                   defaults={"thresholds": {"mode": "absolute", "steps": [
                       {"color": "red", "value": None}, {"color": "green", "value": 0.99}]}}))
    p.append(panel("timeseries", "Workloads torn down", "Workloads deleted by revocations, by kind.",
                   [(f"sum by (kind) (increase(modelhub_workloads_torn_down_total{{{J}}}[{RATE}]))", "{{kind}}")],
                   (16, 33, 8, 8), defaults=stacked()))

    p.append(row("Operator", 41))
    p.append(panel("timeseries", "Queue", "Keys waiting, and how long they waited before their reconcile.",
                   [(f"sum(modelhub_queue_depth{{{J}}})", "depth"),
                    (f"histogram_quantile(0.99, sum by (le) (rate(modelhub_queue_wait_seconds_bucket{{{J}}}[{RATE}])))",
                     "wait p99 (s)")], (0, 42, 8, 8)))
    p.append(panel("timeseries", "Reconciles", "Reconciles per second by kind and result.",
                   [(f"sum by (kind, result) (rate(modelhub_reconcile_total{{{J}}}[{RATE}]))", "{{kind}} {{result}}")],
                   (8, 42, 8, 8), unit="ops"))
    p.append(panel("timeseries", "Reconcile duration p99", "The slowest reconciles, by kind.",
                   [(f"histogram_quantile(0.99, sum by (le, kind) (rate(modelhub_reconcile_duration_seconds_bucket"
                     f"{{{J}}}[{RATE}])))", "{{kind}}")], (16, 42, 8, 8), unit="s"))
    p.append(panel("timeseries", "Webhook requests", "Admission requests per second by webhook and result.",
                   [(f"sum by (webhook, result) (rate(modelhub_webhook_requests_total{{{J}}}[{RATE}]))",
                     "{{webhook}} {{result}}")], (0, 50, 8, 8), unit="ops"))
    p.append(panel("timeseries", "Operator CPU", "CPU seconds per second of each replica.",
                   [(f"rate(process_cpu_seconds_total{{{J}}}[{RATE}])", "{{instance}}")], (8, 50, 8, 8)))
    p.append(panel("timeseries", "Operator memory", "Resident memory of each replica.",
                   [(f"process_resident_memory_bytes{{{J}}}", "{{instance}}")], (16, 50, 8, 8), unit="bytes"))
    for i, item in enumerate(p):
        item["id"] = i + 1
    return p


def dashboard() -> dict[str, Any]:
    return {
        "uid": "modelhub-operator",
        "title": "modelhub",
        "description": "The modelhub operator: rollouts, versions by state, signature verification, revocation "
                       "latency against its 30 s target, teardowns, the work queue.",
        "tags": ["modelhub", "kubernetes", "ml"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "timezone": "",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
             "current": {}, "hide": 0},
            {"name": "job", "label": "Job (regex)", "type": "textbox", "query": "modelhub.*",
             "current": {"text": "modelhub.*", "value": "modelhub.*"}, "hide": 0},
        ]},
        "panels": panels(),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def render_configmap(text: str) -> str:
    """The dashboard as a ConfigMap that Grafana's sidecar (label grafana_dashboard=1) picks up."""
    doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "modelhub-dashboard",
                     "labels": {"grafana_dashboard": "1", "app.kubernetes.io/name": "modelhub",
                                "app.kubernetes.io/part-of": "modelhub"}},
        "data": {"modelhub-dashboard.json": text},
    }
    header = ("# Generated by hack/dashboard.py from deploy/grafana/modelhub-dashboard.json; DO NOT EDIT.\n"
              "# kubectl apply --server-side -n <grafana's namespace> -f this file (the sidecar loads labelled ones).\n")
    return header + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=1000)


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_Dumper.add_representer(str, _str)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    text = render()
    files = {OUT: text, CONFIGMAP: render_configmap(text)}
    if args.check:
        stale = [p for p, t in files.items() if not p.exists() or p.read_text() != t]
        for p in stale:
            print(f"{p} is out of date: run python hack/dashboard.py", file=sys.stderr)
        return 1 if stale else 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    for p, t in files.items():
        p.write_text(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
