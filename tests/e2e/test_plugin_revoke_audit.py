"""`kubectl modelhub revoke` and `kubectl modelhub audit` as users run them, against the real API server and the
operator: a Revocation from flags that waits for Enforced and prints what was torn down, and a timeline of who
approved, what was promoted, revoked and fell back. The objects left behind are also run through the Argo CD
health checks (gopher-lua), as Argo CD would see them."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.approvers import APPROVER, AS_APPROVER
from tests.e2e.kubehelp import ROOT, condition, get, kubectl, wait_condition, wait_for
from tests.e2e.signed import make_model
from tests.e2e.test_rollout import WAIT, Env, gone, kubectl_modelhub, make_env, wait_ready


@pytest.fixture
def env(operator: Path, namespace: str, tmp_path: Path) -> Env:
    return make_env(namespace, tmp_path)


@pytest.fixture
def revocations() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for n in names:
        kubectl("delete", "revocation", n, "--ignore-not-found", "--wait=false", check=False)


def test_revoke_by_model_range_waits_and_reports_the_teardown(env: Env, revocations: list[str]) -> None:
    env.model("clf", stable="1.0.0")
    # Weights of its own: an artifact other tests also serve (same files, same digest) would be torn down with it
    # wherever it still runs, and counted.
    signed = make_model(env.root, "clf-range", env.key, files={"weights.bin": os.urandom(64), "config.json": b"{}"})
    v1 = env.version("clf", "1.0.0", signed=signed)
    wait_ready(env.ns, v1)
    name = f"e2e-{env.ns}"
    revocations.append(name)
    proc = kubectl_modelhub("revoke", name, "--reason", "e2e: leaked weights", "--model", f"{env.ns}/clf",
                            "--versions", ">=1.0.0,<1.1.0")
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"revocation.modelhub.dev/{name} enforced in ")
    assert lines[0].endswith(": 1 version revoked, 1 workloads torn down")
    assert f"  {env.ns}/{v1}  clf 1.0.0" in lines
    assert "created" in proc.stderr and "Traceback" not in proc.stderr
    rev = get("revocation", name)
    assert condition(rev, "Enforced")["status"] == "True"
    assert rev["spec"]["match"] == {"models": [{"namespace": env.ns, "name": "clf", "versions": ">=1.0.0,<1.1.0"}]}
    assert gone("deployment", env.ns, v1)
    # running the same command again finds the Revocation enforced and reports it again
    again = kubectl_modelhub("revoke", name, "--reason", "e2e: leaked weights", "--model", f"{env.ns}/clf",
                             "--versions", ">=1.0.0,<1.1.0")
    assert "already exists" in again.stderr and again.stdout.splitlines()[0] == lines[0]


def test_revoke_by_public_key_without_waiting(env: Env, revocations: list[str], tmp_path: Path) -> None:
    env.model("clf", stable="1.0.0")
    v1 = env.version("clf", "1.0.0")
    wait_ready(env.ns, v1)
    pub = tmp_path / "release.pub"
    pub.write_bytes(env.key.public)
    name = f"e2e-key-{env.ns}"
    revocations.append(name)
    proc = kubectl_modelhub("revoke", name, "--reason", "e2e: key stolen", "--public-key", str(pub), "--no-wait")
    assert proc.stdout.strip() == f"revocation.modelhub.dev/{name} created"
    assert get("revocation", name)["spec"]["match"]["keyFingerprints"] == [env.key.fingerprint]
    wait_condition("modelversion", v1, env.ns, "Revoked", "True", timeout=WAIT)
    wait_for(lambda: gone("deployment", env.ns, v1), WAIT, what=f"deployment {v1} gone")


def test_revoke_errors_are_one_line(env: Env, revocations: list[str]) -> None:
    name = f"e2e-err-{env.ns}"
    revocations.append(name)
    kubectl_modelhub("revoke", name, "--reason", "first", "--digest", "sha256:" + "1" * 64, "--no-wait")
    cases = [
        (["revoke", name, "--reason", "other", "--digest", "sha256:" + "2" * 64], "already exists with another match"),
        (["revoke", "--reason", "x"], "nothing to revoke"),
        (["revoke", "--reason", "x", "--digest", "md5:abc"], "spec.match.digests[0]"),
        (["audit", "nope", "-n", env.ns], "Model nope not found"),
    ]
    for argv, message in cases:
        proc = kubectl_modelhub(*argv, check=False)
        assert proc.returncode != 0, argv
        assert message in proc.stderr, (argv, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr


def test_audit_shows_approval_promotion_revocation_and_fallback(env: Env, revocations: list[str],
                                                                 tmp_path: Path) -> None:
    env.model("clf", require_approval=True)
    v1, v2 = env.version("clf", "1.0.0"), env.version("clf", "1.1.0")
    me = APPROVER
    kubectl_modelhub("approve", v1, v2, "-n", env.ns, *AS_APPROVER)
    kubectl_modelhub("promote", "clf", "1.1.0", "-n", env.ns)
    wait_ready(env.ns, v2)
    name = f"e2e-audit-{env.ns}"
    revocations.append(name)
    kubectl_modelhub("revoke", name, "--reason", "e2e: bad eval", "--model", f"{env.ns}/clf", "--versions", "=1.1.0")
    wait_ready(env.ns, v1)  # fell back to the newest eligible version
    wait_for(lambda: (get("model", "clf", env.ns) or {}).get("status", {}).get("stableVersion") == "1.0.0", WAIT,
             what="fallback to 1.0.0")

    def timeline() -> list[dict[str, str]] | None:
        out = json.loads(kubectl_modelhub("audit", "clf", "-n", env.ns, "-o", "json").stdout)
        whats = " | ".join(e["what"] for e in out)
        wanted = [f"approved by {me}", "Promoted: stable 1.1.0", f"revoked by Revocation {name}: e2e: bad eval",
                  "FellBack: stable 1.0.0", "Warning Revoked"]
        return out if all(w in whats for w in wanted) else None

    entries = wait_for(timeline, WAIT, what="audit timeline with approval, promotion, revocation, fallback")
    times = [e["time"] for e in entries]
    assert times == sorted(times)
    first = {w: next(i for i, e in enumerate(entries) if w in e["what"])
             for w in (f"approved by {me}", "Promoted: stable 1.1.0", "FellBack: stable 1.0.0")}
    assert first[f"approved by {me}"] < first["Promoted: stable 1.1.0"] < first["FellBack: stable 1.0.0"]
    assert any(e["object"] == f"revocation/{name}" and e["what"].startswith("enforced in") for e in entries)
    table = kubectl_modelhub("audit", "clf", "-n", env.ns).stdout.splitlines()
    assert table[0].split() == ["TIME", "OBJECT", "SOURCE", "WHAT"] and len(table) == len(entries) + 1

    # the same objects through the Argo CD health checks, as Argo CD would read them from the cluster
    live = tmp_path / "live"
    for kind, obj_name, ns, expected in (
        ("ModelVersion", v2, env.ns, "Degraded"),   # revoked
        ("ModelVersion", v1, env.ns, "Healthy"),    # serving after the fallback
        ("Model", "clf", env.ns, "Degraded"),       # fell back from the promoted stable
        ("Revocation", name, None, "Healthy"),      # enforced
    ):
        obj = get(kind.lower(), obj_name, ns)
        (live / kind).mkdir(parents=True, exist_ok=True)
        (live / kind / f"{expected}_{obj_name}.json").write_text(json.dumps(obj))
    proc = subprocess.run(["go", "test", "-count=1", "-v", "-run", "TestLiveObjects", "./..."],
                          cwd=ROOT / "hack" / "argocd-health", capture_output=True, text=True, timeout=600,
                          check=False, env={**os.environ, "GOFLAGS": "-mod=mod", "MODELHUB_HEALTH_OBJECTS": str(live)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"ModelVersion/Degraded_{v2}.json: Degraded" in proc.stdout
    assert "Revocation/Healthy_" in proc.stdout
