"""Helpers shared by the alert and dashboard tests: promtool on PromQL, the metric names a query reads, and the
metric names the operator exports (from prometheus_client's registry after importing modelhub.adapters.metrics).

promtool is the syntax authority (`promtool check rules` parses each expression with Prometheus' own parser);
``metric_names`` only has to find the names in text promtool already accepted."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import modelhub.adapters.metrics  # noqa: F401  (registers the operator's metrics in REGISTRY)

# PromQL words that look like identifiers but are not metric names.
KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "inf", "nan", "atan2", "start", "end",
}
# Names that are not the operator's: Prometheus' own scrape metrics.
SCRAPE_METRICS = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is needed: hack/install-prometheus.sh installs Debian's prometheus package"
    return found


def check_expressions(exprs: dict[str, str], tmp: Path) -> subprocess.CompletedProcess[str]:
    """`promtool check rules` on a rules file with one recording rule per expression (parse-only, no server)."""
    rules = [{"record": f"check:{re.sub(r'[^a-zA-Z0-9_]', '_', name)}:{i}", "expr": expr}
             for i, (name, expr) in enumerate(exprs.items())]
    path = tmp / "exprs.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "check", "rules": rules}]}, sort_keys=False))
    return subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60,
                          check=False)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (bare names and __name__ matchers)."""
    names = set(re.findall(r'__name__\s*=\s*"([^"]+)"', expr))
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # Grafana variables such as $__rate_interval
    for m in re.finditer(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in KEYWORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


def exported_names() -> set[str]:
    """Every sample name the operator's registry can expose (histogram/counter suffixes included)."""
    out = set()
    for family in REGISTRY.collect():
        base = family.name
        if family.type == "counter":
            out |= {f"{base}_total", f"{base}_created"}
        elif family.type == "histogram":
            out |= {f"{base}_bucket", f"{base}_count", f"{base}_sum", f"{base}_created"}
        elif family.type == "summary":
            out |= {base, f"{base}_count", f"{base}_sum", f"{base}_created"}
        else:
            out.add(base)
        out |= {s.name for s in family.samples}
    return out


def unknown_names(exprs: Iterable[str]) -> dict[str, set[str]]:
    exported = exported_names()
    missing = {}
    for expr in exprs:
        unknown = metric_names(expr) - exported - SCRAPE_METRICS
        if unknown:
            missing[expr] = unknown
    return missing
