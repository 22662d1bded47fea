"""The Argo CD health checks (resource_customizations/modelhub.dev/<Kind>/health.lua) run by gopher-lua, the Lua
5.1 interpreter Argo CD embeds, against objects whose status the operator's own domain functions computed; and the
argocd-cm snippet that ships them is in sync with the .lua files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "hack" / "argocd-health"
KINDS = ("Model", "ModelVersion", "Revocation")


def _python(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "operator")}
    return subprocess.run([sys.executable, str(HARNESS / script), *args], capture_output=True, text=True, env=env,
                          check=False, timeout=120)


def go_test(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    go = shutil.which("go")
    assert go, "go is needed to run the health checks with gopher-lua"
    return subprocess.run(
        [go, "test", "-count=1", "-v", "./...", *args], cwd=HARNESS, capture_output=True, text=True, check=False,
        timeout=600, env={**os.environ, "GOFLAGS": "-mod=mod", **(env or {})},
    )


def test_health_checks_pass_under_gopher_lua() -> None:
    proc = go_test("-run", "TestHealthChecks")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    # every listed test object ran as its own subtest
    for kind in KINDS:
        tests = yaml.safe_load((ROOT / "resource_customizations/modelhub.dev" / kind / "health_test.yaml").read_text())
        for case in tests["tests"]:
            assert f"--- PASS: TestHealthChecks/{kind}/{Path(case['inputPath']).name}" in proc.stdout


def test_the_harness_fails_on_a_wrong_expectation(tmp_path: Path) -> None:
    """The harness is not vacuous: a health_test.yaml expecting the wrong status makes `go test` fail."""
    copy = tmp_path / "repo"
    shutil.copytree(HARNESS, copy / "hack" / "argocd-health")
    shutil.copytree(ROOT / "resource_customizations", copy / "resource_customizations")
    spec = copy / "resource_customizations/modelhub.dev/Revocation/health_test.yaml"
    tests = yaml.safe_load(spec.read_text())
    enforced = next(t for t in tests["tests"] if "healthy_enforced" in t["inputPath"])
    enforced["healthStatus"]["status"] = "Degraded"
    spec.write_text(yaml.safe_dump(tests))
    proc = subprocess.run(
        ["go", "test", "-count=1", "./..."], cwd=copy / "hack" / "argocd-health", capture_output=True, text=True,
        check=False, timeout=600, env={**os.environ, "GOFLAGS": "-mod=mod"},
    )
    assert proc.returncode != 0
    assert "healthy_enforced.yaml" in proc.stdout and "want Degraded" in proc.stdout


def test_rules_in_the_test_objects() -> None:
    """The rules of the issue are covered: revoked and refused are Degraded, waiting is Progressing, an
    observedGeneration behind is Progressing, Enforced and Ready are Healthy."""
    expected = {}
    for kind in KINDS:
        tests = yaml.safe_load((ROOT / "resource_customizations/modelhub.dev" / kind / "health_test.yaml").read_text())
        for case in tests["tests"]:
            expected[(kind, Path(case["inputPath"]).stem)] = case["healthStatus"]["status"]
    assert expected[("ModelVersion", "degraded_revoked")] == "Degraded"
    assert expected[("ModelVersion", "degraded_badSignature")] == "Degraded"
    assert expected[("ModelVersion", "progressing_bundleNotFound")] == "Progressing"
    assert expected[("ModelVersion", "progressing_awaitingApproval")] == "Progressing"
    assert expected[("ModelVersion", "progressing_rollingOut")] == "Progressing"
    assert expected[("ModelVersion", "healthy_serving")] == "Healthy"
    assert expected[("Model", "degraded_fellBack")] == "Degraded"
    assert expected[("Revocation", "healthy_enforced")] == "Healthy"
    assert expected[("Revocation", "progressing_tearingDown")] == "Progressing"
    for kind in KINDS:
        assert expected[(kind, "progressing_observedGenerationBehind")] == "Progressing"
    for (_, stem), status in expected.items():
        assert stem.split("_")[0] == status.lower()  # file names say what they test


def test_test_objects_are_what_the_domain_writes() -> None:
    proc = _python("testdata.py", "--check")
    assert proc.returncode == 0, proc.stderr


def test_argocd_cm_patch_is_in_sync_with_the_lua_files() -> None:
    proc = _python("argocd_cm.py", "--check")
    assert proc.returncode == 0, proc.stderr
    patch = yaml.safe_load((ROOT / "deploy/argocd/argocd-cm-patch.yaml").read_text())
    assert patch["metadata"]["name"] == "argocd-cm"
    for kind in KINDS:
        lua = (ROOT / "resource_customizations/modelhub.dev" / kind / "health.lua").read_text()
        assert patch["data"][f"resource.customizations.health.modelhub.dev_{kind}"] == lua
