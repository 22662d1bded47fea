"""The `kubectl modelhub` plugin as users run it: discovered by kubectl on PATH, changing the Model through the
API server, and failing with clear messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelhub.cli.kubectl import status_rows
from tests.e2e.approvers import APPROVER, AS_APPROVER
from tests.e2e.kubehelp import get, wait_condition, wait_for
from tests.e2e.test_rollout import (
    WAIT,
    Env,
    deployment_available,
    gone,
    kubectl_modelhub,
    make_env,
    model_status,
    running,
    wait_ready,
)


@pytest.fixture
def env(operator: Path, namespace: str, tmp_path: Path) -> Env:
    return make_env(namespace, tmp_path)


def promotion(ns: str, model: str) -> dict[str, Any]:
    return ((get("model", model, ns) or {}).get("spec") or {}).get("promotion") or {}


def test_kubectl_finds_the_plugin(cluster: str) -> None:
    proc = kubectl_modelhub("--help")
    for command in ("approve", "promote", "canary", "rollback", "status"):
        assert command in proc.stdout


def test_promote_canary_rollback_and_status(env: Env) -> None:
    env.model("clf", replicas=2)
    v1, v2, v3 = (env.version("clf", v) for v in ("1.0.0", "1.1.0", "1.2.0"))

    # promote by SemVer
    assert "stable 1.1.0" in kubectl_modelhub("promote", "clf", "1.1.0", "-n", env.ns).stdout
    assert promotion(env.ns, "clf")["stable"] == "1.1.0"
    wait_ready(env.ns, v2)
    running(env.ns, v2, 2)

    # a canary, named by its ModelVersion
    out = kubectl_modelhub("canary", "clf", v3, "--weight", "50", "-n", env.ns).stdout
    assert "canary 1.2.0 at 50%" in out
    assert promotion(env.ns, "clf")["canary"] == {"version": "1.2.0", "weight": 50}
    wait_ready(env.ns, v3)
    running(env.ns, v2, 1)
    running(env.ns, v3, 1)

    def table_shows(*expected: str) -> str | None:
        out = kubectl_modelhub("status", "clf", "-n", env.ns).stdout
        return out if all(e in out for e in expected) else None

    out = wait_for(lambda: table_shows("canary 50%", "stable"), WAIT, what="status table with stable and canary")
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["MODEL", "VERSION", "NAME", "SERVING"]
    rows = {line.split()[1]: line for line in lines[1:]}
    assert list(rows) == ["1.0.0", "1.1.0", "1.2.0"]  # by SemVer
    assert "stable" in rows["1.1.0"] and "canary 50%" in rows["1.2.0"]
    assert "True" in rows["1.2.0"] and "1/1" in rows["1.2.0"]
    assert "False(NotPromoted)" in rows["1.0.0"]

    # promoting the canary ends the canary in the same change (stable and canary must differ)
    kubectl_modelhub("promote", "clf", "1.2.0", "-n", env.ns)
    assert promotion(env.ns, "clf").get("stable") == "1.2.0" and "canary" not in promotion(env.ns, "clf")
    deployment_available(env.ns, v3, 2)
    wait_for(lambda: gone("deployment", env.ns, v2), WAIT, what=f"deployment {v2} removed")

    # rollback to an older version; rolling "back" to a newer one is refused
    out = kubectl_modelhub("rollback", "clf", "1.0.0", "-n", env.ns).stdout
    assert "rolled back to 1.0.0 (was 1.2.0)" in out
    wait_ready(env.ns, v1)
    st = wait_for(lambda: (s := model_status(env.ns, "clf")).get("stableVersion") == "1.0.0" and s, WAIT,
                  what="stable 1.0.0")
    assert st["history"][-1]["reason"] == "RolledBack"
    proc = kubectl_modelhub("rollback", "clf", "1.1.0", "-n", env.ns, check=False)
    assert proc.returncode != 0
    assert "not older than the stable version 1.0.0" in proc.stderr and "promote" in proc.stderr


def test_clear_errors(env: Env) -> None:
    env.model("clf", stable="1.0.0")
    env.version("clf", "1.0.0")

    cases = [
        (["promote", "clf", "9.9.9", "-n", env.ns], "no ModelVersion of model clf"),
        (["promote", "nope", "1.0.0", "-n", env.ns], "Model nope not found"),
        (["canary", "clf", "1.0.0", "--weight", "10", "-n", env.ns], "is the stable version"),
        (["canary", "clf", "1.0.0", "--weight", "150", "-n", env.ns], "weight must be within 0-100"),
        (["canary", "clf", "1.0.0", "-n", env.ns], "--weight"),
        (["rollback", "clf", "1.0.0", "-n", env.ns], "already is the stable version"),
        (["approve", "clf-9-9-9", "-n", env.ns], "not found"),
        (["status", "nope", "-n", env.ns], "Model nope not found"),
    ]
    for args, message in cases:
        proc = kubectl_modelhub(*args, check=False)
        assert proc.returncode != 0, args
        assert message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr, args
    assert promotion(env.ns, "clf").get("stable") == "1.0.0" and "canary" not in promotion(env.ns, "clf")


def test_approve_several_versions(env: Env) -> None:
    env.model("clf", stable="1.0.0", require_approval=True)
    names = [env.version("clf", v) for v in ("1.0.0", "1.1.0")]
    for n in names:
        wait_condition("modelversion", n, env.ns, "Approved", "False", reason="AwaitingApproval", timeout=WAIT)
    out = kubectl_modelhub("approve", *names, "-n", env.ns, *AS_APPROVER).stdout
    me = APPROVER
    assert out.splitlines() == [f"modelversion.modelhub.dev/{n} approved by {me}" for n in names]
    for n in names:
        mv = wait_condition("modelversion", n, env.ns, "Approved", "True", reason="Approved", timeout=WAIT)
        assert mv["status"]["approval"]["approvedBy"] == me
    wait_ready(env.ns, names[0])


# --- the status table, without a cluster -------------------------------------------------------------------
def _mv(name: str, version: str, **conds: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": "2020-01-01T00:00:00Z"},
        "spec": {"model": "m", "version": version},
        "status": {"conditions": [{"type": t, "status": s.split(":")[0], "reason": s.split(":")[-1]}
                                  for t, s in conds.items()]},
    }


def test_status_rows_order_by_semver_and_show_reasons() -> None:
    model = {"metadata": {"name": "m", "namespace": "ns"},
             "status": {"stableVersion": "1.10.0", "canaryVersion": "1.2.0", "canaryWeight": 10}}
    versions = [
        _mv("m-b", "1.10.0", SignatureVerified="True:Verified", Ready="True:Serving"),
        _mv("m-a", "1.2.0", SignatureVerified="True:Verified", Ready="True:Serving"),
        _mv("m-c", "1.0.0-rc.1", SignatureVerified="False:UntrustedKey", Revoked="True:Revoked"),
    ]
    rows = status_rows([model], versions, all_ns=False)
    assert [r[1] for r in rows[1:]] == ["1.0.0-rc.1", "1.2.0", "1.10.0"]
    by_version = {r[1]: r for r in rows[1:]}
    assert by_version["1.10.0"][3] == "stable" and by_version["1.2.0"][3] == "canary 10%"
    assert by_version["1.0.0-rc.1"][4] == "False(UntrustedKey)" and by_version["1.0.0-rc.1"][6] == "True(Revoked)"
    assert status_rows([model], versions, all_ns=True)[0][0] == "NAMESPACE"
