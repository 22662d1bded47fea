"""The Helm chart without a cluster: its CRDs are the generated ones, and every value is documented."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "modelhub"


@pytest.mark.parametrize("path", sorted((ROOT / "crds").glob("*.yaml")), ids=lambda p: p.name)
def test_chart_crds_are_the_generated_ones(path: Path) -> None:
    copy = CHART / "crds" / path.name
    assert copy.exists(), f"{copy} is missing: run `make crds`"
    assert copy.read_bytes() == path.read_bytes(), f"{copy} drifted from {path}: run `make crds`"


def test_chart_has_no_stale_crds() -> None:
    assert {p.name for p in (CHART / "crds").glob("*.yaml")} == {p.name for p in (ROOT / "crds").glob("*.yaml")}


def _undocumented(lines: list[str]) -> list[str]:
    """Keys of values.yaml with no comment right above them nor above a mapping that holds them.

    A mapping key without a comment of its own is fine when each of its children has one."""
    missing: list[str] = []
    stack: list[tuple[int, bool]] = []  # (indent, documented) of the mappings we are in
    previous = ""
    for line in lines:
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#") or stripped.startswith("- ") or ":" not in stripped:
            previous = stripped
            continue
        indent = len(line) - len(line.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        documented = previous.startswith("#") or any(d for _, d in stack)
        key, rest = stripped.split(":", 1)
        if rest.strip():
            if not documented:
                missing.append(key)
        else:
            stack.append((indent, documented))
        previous = stripped
    return missing


def test_every_value_is_documented() -> None:
    text = (CHART / "values.yaml").read_text()
    yaml.safe_load(text)
    assert _undocumented(text.splitlines()) == []


def test_the_checker_finds_an_undocumented_value() -> None:
    assert _undocumented(["a:", "  # -- fine", "  b: 1", "  c: 2"]) == ["c"]
