"""A Revocation survives operator crashes: SIGKILL at six points during enforcement of a 50-version Revocation,
restart, and every workload is gone and the status complete. Then, with the webhooks gone, the reconcile path
alone still refuses to serve a revoked artifact.

This module runs its own operator processes (with failpoints, see modelhub/adapters/failpoints.py), not the
shared fixture's.
"""

from __future__ import annotations

import signal
import subprocess

import pytest

from tests.e2e.conftest import start_operator, stop_operator
from tests.e2e.kubehelp import apply, condition, get, get_list, kubectl, unique, wait_condition, wait_for
from tests.e2e.signed import keyring, make_model, model_manifest, new_key, version_manifest

NAMESPACES = 5
PER_NAMESPACE = 10


def managed_deployments(namespaces: list[str]) -> list[dict]:
    return [d for ns in namespaces for d in get_list("deployments", ns, "app.kubernetes.io/managed-by=modelhub")]


def wait_killed(proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    proc.wait(timeout)
    assert proc.returncode == -signal.SIGKILL, f"operator exited {proc.returncode}, not by its failpoint"


@pytest.fixture(scope="module")
def fleet(crds: None, tmp_path_factory: pytest.TempPathFactory):
    """50 signed versions serving in 5 namespaces, all signed by one key."""
    tmp = tmp_path_factory.mktemp("crash")
    log = tmp / "operator.log"
    key = new_key()
    namespaces = [unique("crash") for _ in range(NAMESPACES)]
    docs = []
    for ns in namespaces:
        kubectl("create", "namespace", ns)
        keyring(ns, "keys", {"release.pub": key})
        for i in range(PER_NAMESPACE):
            signed = make_model(tmp / ns, f"m{i}", key)
            docs.append((ns, model_manifest(f"m{i}", ["keys"], stable="1.0.0")))
            docs.append((ns, version_manifest(f"m{i}-1-0-0", f"m{i}", "1.0.0", signed)))
    proc = start_operator(log)
    try:
        for ns in namespaces:
            apply([d for n, d in docs if n == ns], ns)
        wait_for(lambda: sum(int((d.get("status") or {}).get("readyReplicas") or 0)
                             for d in managed_deployments(namespaces)) == NAMESPACES * PER_NAMESPACE,
                 120, interval=1, what="50 Deployments ready")
    finally:
        stop_operator(proc)
    yield key, namespaces, log
    for ns in namespaces:
        kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_enforcement_survives_sigkill_at_every_point(fleet) -> None:
    key, namespaces, log = fleet
    total = NAMESPACES * PER_NAMESPACE
    name = unique("rvk-crash")
    try:
        # 1. The operator dies right before its first delete.
        proc = start_operator(log, MODELHUB_FAILPOINT="revocation.before-delete")
        apply({"apiVersion": "modelhub.dev/v1alpha1", "kind": "Revocation", "metadata": {"name": name},
               "spec": {"reason": "e2e: signing key leaked", "match": {"keyFingerprints": [key.fingerprint]}}})
        wait_killed(proc)
        assert len(managed_deployments(namespaces)) == total
        assert condition(get("revocation", name), "Enforced") is None  # died before writing anything

        # 2. Dies midway: after its 20th delete. With 4 deletes at a time, at most 3 more are on the wire when it
        #    dies (with the default 32, all 50 may already be sent by then, and the API server finishes them).
        proc = start_operator(log, MODELHUB_FAILPOINT="revocation.mid-delete:20", MODELHUB_TEARDOWN_CONCURRENCY="4")
        wait_killed(proc)
        left = len(managed_deployments(namespaces))
        assert 0 < left < total, left

        # 3. Dies after the deletes, before the final status.
        proc = start_operator(log, MODELHUB_FAILPOINT="revocation.after-delete")
        wait_killed(proc)
        assert managed_deployments(namespaces) == []
        assert condition(get("revocation", name), "Enforced")["status"] == "False"

        # 4. Dies after the final status, before the versions are marked.
        proc = start_operator(log, MODELHUB_FAILPOINT="revocation.after-status")
        wait_killed(proc)
        assert condition(get("revocation", name), "Enforced")["status"] == "True"

        # 5. Dies while marking versions Revoked (before the 10th status write).
        proc = start_operator(log, MODELHUB_FAILPOINT="version.before-revoked-status:10")
        wait_killed(proc)

        # 6. Dies a last time as it starts over (before its first delete: nothing left to delete, so it goes on
        #    until the first revoked version of its run), then a clean restart finishes the job.
        proc = start_operator(log, MODELHUB_FAILPOINT="version.before-revoked-status")
        wait_killed(proc)
        proc = start_operator(log)
        try:
            def all_revoked() -> bool:
                mvs = [v for ns in namespaces for v in get_list("modelversions", ns)]
                return len(mvs) == total and all(condition(v, "Revoked")["status"] == "True" for v in mvs)

            wait_for(all_revoked, 60, interval=1, what="every version Revoked")
            rev = wait_condition("revocation", name, None, "Enforced", "True", timeout=30)
            st = rev["status"]
            assert st["matchedVersions"] == total and st["affectedTotal"] == total
            assert len(st["affected"]) == total
            assert st["workloadsTornDown"] == total
            assert st["enforcementSeconds"] > 0 and st["enforcedAt"]
            assert managed_deployments(namespaces) == []
            wait_for(lambda: all(not get_list("pods", ns) for ns in namespaces), 90, interval=1, what="pods gone")
            for ns in namespaces:
                model = get("model", "m0", ns)
                assert condition(model, "Ready")["reason"] == "NoEligibleVersion"

            # Without webhooks (deleted, as if the operator were installed without them), the reconcile path
            # alone refuses: a revoked artifact applied under a new name is marked Revoked and never served.
            kubectl("delete", "validatingwebhookconfiguration,mutatingwebhookconfiguration", "modelhub.dev",
                    "--ignore-not-found")
            ns = namespaces[0]
            mv = get("modelversion", "m0-1-0-0", ns)
            resurrect = {"apiVersion": "modelhub.dev/v1alpha1", "kind": "ModelVersion",
                         "metadata": {"name": "m0-resurrected"},
                         "spec": {**mv["spec"], "version": "1.0.1"}}
            apply(resurrect, ns)
            kubectl("patch", "model", "m0", "-n", ns, "--type=merge", "-p", '{"spec":{"promotion":{"stable":"1.0.1"}}}')
            obj = wait_condition("modelversion", "m0-resurrected", ns, "Revoked", "True", timeout=30)
            assert name in condition(obj, "Revoked")["message"]
            assert not get_list("deployments", ns)
        finally:
            stop_operator(proc)
    finally:
        kubectl("delete", "revocation", name, "--ignore-not-found", check=False)
