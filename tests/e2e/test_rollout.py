"""Rollout on the real local control plane, asserted the way users see it: pods on nodes, conditions,
Deployments, the Service, Model status and Events.

Every test gets its own namespace with a trusted keyring (`release-keys`) and real signed model directories; the
operator is the session's real process. Resources are applied with kubectl, approvals go through the real
admission webhook and the `kubectl modelhub` plugin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.approvers import APPROVER, AS_APPROVER
from tests.e2e.kubehelp import (
    ROOT,
    apply,
    condition,
    get,
    get_list,
    kubectl,
    kubectl_bin,
    wait_condition,
    wait_for,
)
from tests.e2e.signed import Key, Signed, keyring, make_model, model_manifest, new_key, version_manifest

KEYRING = "release-keys"
IMAGE = "ghcr.io/example/serve:1.0"
H100 = "NVIDIA-H100-80GB-HBM3"
WAIT = 30  # seconds: the longest any single wait in this module may take


@dataclass
class Env:
    """A namespace with a trusted key, and helpers to create Models and signed ModelVersions in it."""

    ns: str
    key: Key
    root: Path
    signed: dict[str, Signed] = field(default_factory=dict)

    def model(self, name: str, **kwargs: Any) -> dict[str, Any]:
        node_selector = kwargs.pop("node_selector", None)
        manifest = model_manifest(name, [KEYRING], **kwargs)
        if node_selector:
            manifest["spec"]["serving"]["nodeSelector"] = node_selector
        apply(manifest, self.ns)
        return manifest

    def version(self, model: str, version: str, *, key: Key | None = None, name: str | None = None,
                signed: Signed | None = None, annotations: dict[str, str] | None = None,
                status: dict[str, Any] | None = None, **extra: Any) -> str:
        name = name or f"{model}-{version.replace('.', '-')}"
        if signed is None:
            signed = make_model(self.root, name, key or self.key)
        self.signed[name] = signed
        manifest = version_manifest(name, model, version, signed, **extra)
        if annotations:
            manifest["metadata"]["annotations"] = annotations
        if status:
            manifest["status"] = status
        apply(manifest, self.ns)
        return name


def make_env(namespace: str, root: Path) -> Env:
    """The namespace with a new key trusted by the `release-keys` keyring ConfigMap."""
    key = new_key()
    keyring(namespace, KEYRING, {"release.pub": key})
    return Env(namespace, key, root)


@pytest.fixture
def env(operator: Path, namespace: str, tmp_path: Path) -> Env:
    return make_env(namespace, tmp_path)


# --- what users look at ------------------------------------------------------------------------------------
def wait_ready(ns: str, *names: str) -> None:
    """`kubectl wait --for=condition=Ready modelversion/NAME` as a user would run it."""
    kubectl("wait", "--for=condition=Ready", *(f"modelversion/{n}" for n in names), "-n", ns,
            f"--timeout={WAIT}s", timeout=WAIT + 10)


def pods(ns: str, instance: str) -> list[dict[str, Any]]:
    """The live (not terminating) pods of one ModelVersion's Deployment."""
    return [p for p in get_list("pods", ns, f"app.kubernetes.io/instance={instance}")
            if not p["metadata"].get("deletionTimestamp")]


def running(ns: str, instance: str, count: int) -> list[dict[str, Any]]:
    """Wait until exactly `count` pods of `instance` are Running, scheduled and Ready."""
    def check() -> list[dict[str, Any]] | None:
        ps = pods(ns, instance)
        ok = [p for p in ps if p["status"].get("phase") == "Running" and p["spec"].get("nodeName")
              and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])]
        return ok if len(ok) == count == len(ps) else None

    return wait_for(check, WAIT, what=f"{count} running pods of {ns}/{instance}")


def deployment_available(ns: str, name: str, replicas: int | None = None) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        d = get("deployment", name, ns)
        if not d or d["metadata"].get("deletionTimestamp"):
            return None
        want = d["spec"]["replicas"] if replicas is None else replicas
        st = d.get("status") or {}
        done = d["spec"]["replicas"] == want and st.get("availableReplicas", 0) == want == st.get("readyReplicas", 0)
        return d if done and st.get("observedGeneration") == d["metadata"]["generation"] else None

    return wait_for(check, WAIT, what=f"deployment {ns}/{name} available")


def gone(kind: str, ns: str, name: str) -> bool:
    obj = get(kind, name, ns)
    return obj is None or bool(obj["metadata"].get("deletionTimestamp"))


def never(fn: Callable[[], Any], seconds: float, what: str) -> None:
    """Assert fn() stays falsy for `seconds` (polling), i.e. something does NOT happen."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = fn()
        assert not value, f"{what}: {value!r}"
        time.sleep(0.5)


def model_status(ns: str, name: str) -> dict[str, Any]:
    return (get("model", name, ns) or {}).get("status") or {}


def kubectl_modelhub(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`kubectl modelhub ...` through kubectl's plugin discovery (the venv's kubectl-modelhub on PATH)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "KUBECTL": kubectl_bin()}
    proc = subprocess.run([kubectl_bin(), "modelhub", *args], capture_output=True, text=True, env=env,
                          timeout=60, check=False, cwd=ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl modelhub {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def events(ns: str, kind: str, name: str) -> list[dict[str, Any]]:
    """`kubectl get events` about one object, oldest first."""
    items = json.loads(kubectl("get", "events", "-n", ns, "-o", "json").stdout)["items"]
    mine = [e for e in items if e["involvedObject"].get("kind") == kind and e["involvedObject"].get("name") == name]
    return sorted(mine, key=lambda e: e.get("eventTime") or e.get("lastTimestamp") or "")


# --- 1. placement ------------------------------------------------------------------------------------------
def test_gpu_cpu_and_edge_versions_land_on_their_nodes(env: Env) -> None:
    env.model("llm", stable="1.0.0", accelerator={"kind": "gpu", "count": 2, "product": H100})
    env.model("clf", stable="1.0.0", replicas=2)
    env.model("kiosk", stable="1.0.0", node_selector={"modelhub.dev/node-class": "edge"})
    gpu, cpu, edge = (env.version(m, "1.0.0") for m in ("llm", "clf", "kiosk"))

    wait_ready(env.ns, gpu, cpu, edge)

    (gpu_pod,) = running(env.ns, gpu, 1)
    assert gpu_pod["spec"]["nodeName"] == "gpu-h100-0"
    server = next(c for c in gpu_pod["spec"]["containers"] if c["name"] == "server")
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert gpu_pod["spec"]["nodeSelector"]["nvidia.com/gpu.product"] == H100
    assert any(t.get("key") == "nvidia.com/gpu" and t.get("effect") == "NoSchedule"
               for t in gpu_pod["spec"]["tolerations"])

    cpu_pods = running(env.ns, cpu, 2)
    assert {p["spec"]["nodeName"] for p in cpu_pods} <= {"cpu-0", "cpu-1"}
    for p in cpu_pods:
        server = next(c for c in p["spec"]["containers"] if c["name"] == "server")
        assert "nvidia.com/gpu" not in ((server.get("resources") or {}).get("limits") or {})
        assert not any(t.get("key") == "nvidia.com/gpu" for t in p["spec"].get("tolerations") or [])

    (edge_pod,) = running(env.ns, edge, 1)
    assert edge_pod["spec"]["nodeName"] == "edge-0"

    mv = get("modelversion", gpu, env.ns)
    assert condition(mv, "Available")["status"] == "True"
    assert mv["status"]["workload"]["deployment"] == gpu
    assert mv["status"]["workload"]["servedDigest"] == env.signed[gpu].digest


# --- 2. unschedulable --------------------------------------------------------------------------------------
def test_too_many_gpus_shows_unschedulable_on_the_version(env: Env) -> None:
    env.model("huge", stable="1.0.0", accelerator={"kind": "gpu", "count": 16, "product": H100})
    name = env.version("huge", "1.0.0")

    mv = wait_condition("modelversion", name, env.ns, "Ready", "False", reason="Unschedulable", timeout=WAIT)
    message = condition(mv, "Ready")["message"]
    assert "Insufficient nvidia.com/gpu" in message
    assert condition(mv, "Available")["reason"] == "Unschedulable"
    (pod,) = pods(env.ns, name)
    assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")


# --- 3. canary ---------------------------------------------------------------------------------------------
def test_canary_weight_is_a_share_of_replicas_behind_one_service(env: Env) -> None:
    env.model("clf", stable="1.0.0", replicas=5, canary={"version": "1.1.0", "weight": 20})
    stable, canary = env.version("clf", "1.0.0"), env.version("clf", "1.1.0")

    wait_ready(env.ns, stable, canary)
    stable_pods, canary_pods = running(env.ns, stable, 4), running(env.ns, canary, 1)
    assert get("deployment", stable, env.ns)["metadata"]["labels"]["modelhub.dev/role"] == "stable"
    assert get("deployment", canary, env.ns)["metadata"]["labels"]["modelhub.dev/role"] == "canary"

    # one Service, and its selector picks both sets of pods
    services = get_list("services", env.ns)
    assert [s["metadata"]["name"] for s in services] == ["clf"]
    selector = ",".join(f"{k}={v}" for k, v in services[0]["spec"]["selector"].items())
    selected = {p["metadata"]["name"] for p in get_list("pods", env.ns, selector)
                if not p["metadata"].get("deletionTimestamp")}
    assert selected == {p["metadata"]["name"] for p in stable_pods + canary_pods}

    def both_serving() -> dict[str, Any] | None:
        st = model_status(env.ns, "clf")
        serving = {s["version"]: s for s in st.get("serving") or []}
        ok = (st.get("stableVersion"), st.get("canaryVersion")) == ("1.0.0", "1.1.0") and \
            {v: (s["role"], s["replicas"], s["readyReplicas"]) for v, s in serving.items()} == \
            {"1.0.0": ("stable", 4, 4), "1.1.0": ("canary", 1, 1)}
        return st if ok else None

    st = wait_for(both_serving, WAIT, what="model status serving 4 stable + 1 canary")
    assert st["canaryWeight"] == 20
    ready = condition({"status": st}, "Ready")
    assert ready["status"] == "True" and "canary" in ready["message"]
    assert condition({"status": st}, "Progressing")["reason"] == "CanaryActive"


# --- 4. rollback -------------------------------------------------------------------------------------------
def test_rollback_serves_the_older_version_and_records_it(env: Env) -> None:
    env.model("clf", stable="1.1.0")
    old, new = env.version("clf", "1.0.0"), env.version("clf", "1.1.0")
    wait_ready(env.ns, new)
    deployment_available(env.ns, new)
    assert get("deployment", old, env.ns) is None

    kubectl("patch", "model", "clf", "-n", env.ns, "--type=merge", "-p", '{"spec":{"promotion":{"stable":"1.0.0"}}}')

    # make before break: at every moment some version serves, until 1.1.0's Deployment is gone
    deadline = time.monotonic() + WAIT
    while True:
        deps = {d["metadata"]["name"]: d for d in get_list("deployments", env.ns)
                if not d["metadata"].get("deletionTimestamp")}
        assert any((d.get("status") or {}).get("availableReplicas") for d in deps.values()), \
            f"no Deployment serves during the rollback: {sorted(deps)}"
        if new not in deps:
            break
        assert time.monotonic() < deadline, f"deployment {new} was not removed within {WAIT}s"
        time.sleep(0.1)
    wait_ready(env.ns, old)
    deployment_available(env.ns, old)
    st = wait_for(lambda: (s := model_status(env.ns, "clf")).get("stableVersion") == "1.0.0" and s, WAIT,
                  what="status.stableVersion 1.0.0")
    assert st["history"][-1]["reason"] == "RolledBack"
    assert st["history"][-1]["stable"] == "1.0.0"
    assert [h["stable"] for h in st["history"]][-2:] == ["1.1.0", "1.0.0"]
    assert [s["version"] for s in st["serving"]] == ["1.0.0"]
    wait_condition("modelversion", new, env.ns, "Ready", "False", reason="NotPromoted", timeout=WAIT)
    # the Service now selects only the rolled-back version's pods
    selector = ",".join(f"{k}={v}" for k, v in get("service", "clf", env.ns)["spec"]["selector"].items())
    wait_for(lambda: {p["metadata"]["labels"]["modelhub.dev/version"]
                      for p in get_list("pods", env.ns, selector)} == {"1.0.0"},
             WAIT, what="only 1.0.0 pods behind the Service")


def test_promotion_needing_the_gpus_of_the_served_version_replaces_it(env: Env) -> None:
    """Make before break stops where there is no room: the new version cannot be placed while the old one holds
    every GPU of the node, so the old one goes and the new one takes its place (no deadlock)."""
    env.model("llm", stable="1.0.0", accelerator={"kind": "gpu", "count": 4, "product": "NVIDIA-L4"})
    old, new = env.version("llm", "1.0.0"), env.version("llm", "1.1.0")
    wait_ready(env.ns, old)
    assert running(env.ns, old, 1)[0]["spec"]["nodeName"] == "gpu-l4-0"

    kubectl("patch", "model", "llm", "-n", env.ns, "--type=merge", "-p", '{"spec":{"promotion":{"stable":"1.1.0"}}}')

    wait_ready(env.ns, new)
    assert running(env.ns, new, 1)[0]["spec"]["nodeName"] == "gpu-l4-0"
    wait_for(lambda: gone("deployment", env.ns, old), WAIT, what=f"deployment {old} removed")


# --- 5. approval and verification gate the rollout ---------------------------------------------------------
def test_unapproved_version_waits_for_approval_by_the_authenticated_user(env: Env) -> None:
    env.model("gated", stable="1.0.0", require_approval=True)
    env.model("stray", stable="1.0.0")
    gated = env.version("gated", "1.0.0")
    stray = env.version("stray", "1.0.0", key=new_key())  # signed by a key nobody trusts

    mv = wait_condition("modelversion", gated, env.ns, "Approved", "False", reason="AwaitingApproval", timeout=WAIT)
    assert condition(mv, "SignatureVerified")["status"] == "True"
    mv = wait_condition("modelversion", stray, env.ns, "SignatureVerified", "False", reason="UntrustedKey",
                        timeout=WAIT)
    assert condition(mv, "Ready")["status"] == "False"
    never(lambda: [d["metadata"]["name"] for d in get_list("deployments", env.ns)], 4,
          "a Deployment appeared for an unapproved or unverified version")

    # the author (the kubeconfig's user) cannot approve: someone else does
    refused = kubectl_modelhub("approve", gated, "-n", env.ns, check=False)
    assert refused.returncode != 0 and "the author of a version cannot approve it" in refused.stderr
    out = kubectl_modelhub("approve", gated, "-n", env.ns, *AS_APPROVER).stdout
    assert "approved" in out

    wait_ready(env.ns, gated)
    deployment_available(env.ns, gated)
    me = APPROVER
    mv = get("modelversion", gated, env.ns)
    assert mv["status"]["approval"]["approvedBy"] == me
    assert condition(mv, "Approved")["reason"] == "Approved" and me in condition(mv, "Approved")["message"]
    # the request annotation became the sealed record
    annotations = mv["metadata"]["annotations"]
    assert "modelhub.dev/approve" not in annotations
    assert json.loads(annotations["modelhub.dev/approval"])["by"] == me
    # the untrusted one still has nothing
    assert get("deployment", stray, env.ns) is None
    assert condition(get("modelversion", stray, env.ns), "Ready")["reason"] == "UntrustedKey"


# --- 6. forged approvals ---------------------------------------------------------------------------------
def test_forged_approvals_approve_nothing(env: Env) -> None:
    for model in ("ann", "stat", "copy"):
        env.model(model, stable="1.0.1" if model == "copy" else "1.0.0", require_approval=True)
    me = kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout.strip()

    # a hand-written record in the YAML
    signed = make_model(env.root, "ann", env.key)
    forged = json.dumps({"by": me, "groups": ["system:masters"], "at": "2026-01-01T00:00:00Z",
                         "digest": signed.digest, "mac": "0" * 64}, sort_keys=True)
    ann = env.version("ann", "1.0.0", signed=signed, annotations={"modelhub.dev/approval": forged})
    # status.approval and an Approved condition written into the YAML
    stat = env.version("stat", "1.0.0", status={
        "approval": {"approvedBy": me, "approvedAt": "2026-01-01T00:00:00Z"},
        "conditions": [{"type": "Approved", "status": "True", "reason": "Approved", "message": "trust me",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}],
    })
    # a genuine record copied from another version of the same artifact
    donor_artifact = make_model(env.root, "copy", env.key)
    donor = env.version("copy", "1.0.0", signed=donor_artifact)
    copy = env.version("copy", "1.0.1", signed=donor_artifact)
    kubectl("annotate", "modelversion", donor, "-n", env.ns, "modelhub.dev/approve=true", *AS_APPROVER)
    record = wait_for(lambda: ((get("modelversion", donor, env.ns) or {}).get("metadata", {}).get("annotations")
                               or {}).get("modelhub.dev/approval"), WAIT, what="the donor's sealed record")
    wait_condition("modelversion", donor, env.ns, "Approved", "True", reason="Approved", timeout=WAIT)
    kubectl("annotate", "--overwrite", "modelversion", copy, "-n", env.ns, f"modelhub.dev/approval={record}")

    for name in (ann, stat, copy):
        mv = wait_condition("modelversion", name, env.ns, "SignatureVerified", "True", timeout=WAIT)
        mv = wait_condition("modelversion", name, env.ns, "Approved", "False", reason="AwaitingApproval",
                            timeout=WAIT)
        assert "approval" not in mv["status"], name
        # the webhook reverted the written record
        assert "modelhub.dev/approval" not in (mv["metadata"].get("annotations") or {}), name

    def served() -> list[str]:
        out = [d["metadata"]["name"] for d in get_list("deployments", env.ns)]
        out += [n for n in (ann, stat, copy) if condition(get("modelversion", n, env.ns), "Approved")["status"] != "False"]
        return out

    never(served, 4, "a forged approval took effect")


# --- 7. drift ----------------------------------------------------------------------------------------------
def test_manual_edits_of_managed_objects_are_undone(env: Env) -> None:
    env.model("clf", stable="1.0.0", replicas=2)
    name = env.version("clf", "1.0.0")
    wait_ready(env.ns, name)
    first = deployment_available(env.ns, name, 2)

    def image() -> str:
        d = get("deployment", name, env.ns) or {}
        containers = d.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [{}]
        return next(c["image"] for c in containers if c.get("name") == "server")

    kubectl("set", "image", f"deployment/{name}", "server=evil.example/miner:latest", "-n", env.ns)
    wait_for(lambda: image() == IMAGE, WAIT, what="the server image restored")

    kubectl("scale", f"deployment/{name}", "--replicas=5", "-n", env.ns)
    wait_for(lambda: (get("deployment", name, env.ns) or {}).get("spec", {}).get("replicas") == 2, WAIT,
             what="replicas restored to 2")
    deployment_available(env.ns, name, 2)
    running(env.ns, name, 2)

    kubectl("delete", "deployment", name, "-n", env.ns, "--wait=false")
    recreated = wait_for(
        lambda: (d := get("deployment", name, env.ns)) and d["metadata"]["uid"] != first["metadata"]["uid"]
        and not d["metadata"].get("deletionTimestamp") and d, WAIT, what="the Deployment recreated")
    assert recreated["metadata"]["ownerReferences"][0]["kind"] == "ModelVersion"
    deployment_available(env.ns, name, 2)


def test_deleted_service_is_recreated(env: Env) -> None:
    env.model("clf", stable="1.0.0")
    name = env.version("clf", "1.0.0")
    wait_ready(env.ns, name)
    service = wait_for(lambda: get("service", "clf", env.ns), WAIT, what="the Service")
    wait_for(lambda: [s["readyReplicas"] for s in model_status(env.ns, "clf").get("serving") or []] == [1], WAIT,
             what="the Model serving")
    time.sleep(4)  # settled: no reconcile of the Model is pending (it looks again every 3 s while pods start)

    kubectl("delete", "service", "clf", "-n", env.ns, "--wait=false")
    recreated = wait_for(
        lambda: (s := get("service", "clf", env.ns)) and s["metadata"]["uid"] != service["metadata"]["uid"] and s,
        15, what="the Service recreated")
    assert recreated["spec"]["selector"] == service["spec"]["selector"]


# --- 8. events ---------------------------------------------------------------------------------------------
def test_events_record_version_transitions_and_promotions(env: Env) -> None:
    env.model("clf", stable="1.0.0")
    old, new = env.version("clf", "1.0.0"), env.version("clf", "1.1.0")
    wait_ready(env.ns, old)
    kubectl("patch", "model", "clf", "-n", env.ns, "--type=merge", "-p", '{"spec":{"promotion":{"stable":"1.1.0"}}}')
    wait_ready(env.ns, new)
    wait_condition("modelversion", old, env.ns, "Ready", "False", reason="NotPromoted", timeout=WAIT)

    def reasons(kind: str, name: str, *wanted: str) -> list[dict[str, Any]] | None:
        evs = events(env.ns, kind, name)
        return evs if set(wanted) <= {e["reason"] for e in evs} else None

    evs = wait_for(lambda: reasons("Model", "clf", "Promoted"), WAIT, what="Promoted events on the Model")
    promoted = [e["message"] for e in evs if e["reason"] == "Promoted"]
    assert any("1.0.0" in m for m in promoted) and any("1.1.0" in m and "was 1.0.0" in m for m in promoted)

    evs = wait_for(lambda: reasons("ModelVersion", old, "Verified", "Serving", "NotPromoted"), WAIT,
                   what="transition events of the first version")
    verified = next(e for e in evs if e["reason"] == "Verified")
    assert verified["type"] == "Normal" and "SignatureVerified=True" in verified["message"]
    assert verified["source"].get("component") or verified.get("reportingComponent")
    wait_for(lambda: reasons("ModelVersion", new, "Verified", "Serving"), WAIT,
             what="transition events of the second version")

    # and `kubectl describe` shows them too
    described = kubectl("describe", "modelversion", new, "-n", env.ns).stdout
    assert "Verified" in described and "Serving" in described
