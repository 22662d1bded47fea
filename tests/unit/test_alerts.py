"""The alerting rules, checked by promtool itself: `promtool check rules` on the plain file and on the
PrometheusRule's groups, `promtool test rules` with input series for every alert (firing and not firing), the
PrometheusRule generated from the plain file, and every metric an alert reads exported by the operator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from tests.unit.promql import metric_names, promtool, unknown_names

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "modelhub-rules.yaml"
PROMETHEUSRULE = ROOT / "deploy" / "prometheus" / "prometheusrule.yaml"
RULE_TESTS = ROOT / "tests" / "prometheus" / "modelhub-rules.test.yaml"
ALERTS = {
    "ModelhubRevocationNotEnforced",
    "ModelhubRevocationEnforcementSlow",
    "ModelhubSignatureVerificationFailures",
    "ModelhubRolloutStuck",
    "ModelhubReconcileErrors",
    "ModelhubOperatorDown",
    "ModelhubNoLeader",
    "ModelhubSeveralLeaders",
    "ModelhubWebhookErrors",
}


def rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd)


def test_promtool_check_rules() -> None:
    proc = run("check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules())} rules found" in proc.stdout


def test_promtool_test_rules() -> None:
    proc = run("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    assert {r["alert"] for r in rules()} == ALERTS
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for t in case.get("alert_rule_test") or []:
            (firing if t.get("exp_alerts") else quiet).add(t["alertname"])
    assert firing == ALERTS and quiet == ALERTS


def test_a_broken_expectation_fails(tmp_path: Path) -> None:
    """promtool test rules really evaluates: expecting no alert where one fires is a failure."""
    spec = yaml.safe_load(RULE_TESTS.read_text())
    spec["rule_files"] = [str(RULES)]
    for case in spec["tests"]:
        for t in case.get("alert_rule_test") or []:
            if t["alertname"] == "ModelhubRevocationNotEnforced" and t.get("exp_alerts"):
                t["exp_alerts"] = []
    path = tmp_path / "broken.test.yaml"
    path.write_text(yaml.safe_dump(spec))
    proc = run("test", "rules", str(path))
    assert proc.returncode != 0 and "ModelhubRevocationNotEnforced" in proc.stdout + proc.stderr


def test_prometheusrule_holds_the_same_rules(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "hack" / "prometheusrule.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    doc = yaml.safe_load(PROMETHEUSRULE.read_text())
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    assert doc["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    extracted = tmp_path / "from-prometheusrule.yaml"
    extracted.write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}))
    proc = run("check", "rules", str(extracted))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alerts_read_only_exported_metrics() -> None:
    exprs = [r["expr"] for r in rules()]
    assert all(metric_names(e) for e in exprs)
    assert unknown_names(exprs) == {}


def test_every_alert_has_a_severity_and_text() -> None:
    for r in rules():
        assert r["labels"]["severity"] in {"critical", "warning"}
        assert r["annotations"]["summary"] and r["annotations"]["description"]
