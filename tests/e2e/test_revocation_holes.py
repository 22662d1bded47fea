"""Revocation without holes, on the real control plane: every workload kind (and a KServe InferenceService once
its CRD is installed) torn down at its top-most owner, malformed digests warned, late links, no resurrection
by key, two replicas with leader election, and API server restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.kubehelp import apply, condition, get, get_list, kubectl, unique, wait_condition, wait_for
from tests.e2e.signed import keyring, make_model, model_manifest, new_key, version_manifest
from tests.e2e.test_revocation import revocations, revoke  # noqa: F401 - the fixture

SERVES = {"modelhub.dev/serves-artifact": "true"}
IMAGE = "ghcr.io/example/serve:1.0"


def pod_template(app: str, digest: str) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": app, **SERVES}, "annotations": {"modelhub.dev/artifact-digest": digest}},
            "spec": {"containers": [{"name": "s", "image": IMAGE}],
                     "nodeSelector": {"modelhub.dev/node-class": "cpu"}}}


def declaring(kind: str, name: str, digest: str) -> dict[str, Any]:
    """A third-party workload of `kind` that declares the artifact it serves, as the README says."""
    meta = {"name": name, "labels": SERVES, "annotations": {"modelhub.dev/artifact-digest": digest}}
    tmpl = pod_template(name, digest)
    sel = {"matchLabels": {"app": name}}
    if kind == "Pod":
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": tmpl["spec"]}
    if kind == "CronJob":
        job = {"template": {**tmpl, "spec": {**tmpl["spec"], "restartPolicy": "Never"}}}
        return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta,
                "spec": {"schedule": "* * * * *", "jobTemplate": {"metadata": {"labels": SERVES}, "spec": job}}}
    if kind == "Job":
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
                "spec": {"template": {**tmpl, "spec": {**tmpl["spec"], "restartPolicy": "Never"}}}}
    spec: dict[str, Any] = {"selector": sel, "template": tmpl}
    if kind in ("StatefulSet", "ReplicaSet"):
        spec["replicas"] = 2
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": spec}


KSERVE_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "inferenceservices.serving.kserve.io"},
    "spec": {"group": "serving.kserve.io", "scope": "Namespaced",
             "names": {"plural": "inferenceservices", "singular": "inferenceservice", "kind": "InferenceService",
                       "shortNames": ["isvc"]},
             "versions": [{"name": "v1beta1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
}


@pytest.fixture
def ns() -> Iterator[str]:
    name = unique("holes")
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def kinds_left(namespace: str) -> set[str]:
    out = kubectl("get", "deployments,statefulsets,daemonsets,replicasets,jobs,cronjobs,pods", "-n", namespace,
                  "-l", "modelhub.dev/serves-artifact=true", "-o", "json").stdout
    return {f"{o['kind']}/{o['metadata']['name']}" for o in json.loads(out)["items"]
            if not o["metadata"].get("deletionTimestamp")}


def test_every_workload_kind_declaring_a_revoked_artifact_is_torn_down(
        operator: Path, ns: str, tmp_path: Path, revocations: list[str]) -> None:  # noqa: F811
    key = new_key()
    bad = make_model(tmp_path, "bad", key)
    good = make_model(tmp_path, "good", key)
    kinds = ["StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"]
    apply([declaring(k, f"bad-{k.lower()}", bad.digest) for k in kinds], ns)
    apply(declaring("Pod", "good-pod", good.digest), ns)
    kubectl("apply", "-f", "-", input=json.dumps(KSERVE_CRD))
    kubectl("wait", "--for=condition=Established", "crd/inferenceservices.serving.kserve.io", "--timeout=30s")
    apply({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
           "metadata": {"name": "bad-isvc", "labels": SERVES,
                        "annotations": {"modelhub.dev/artifact-digest": bad.digest.upper()}},  # case-folded
           "spec": {"predictor": {"model": {"storageUri": "s3://models/bad"}}}}, ns)
    wait_for(lambda: any(p["metadata"]["name"].startswith("bad-statefulset") for p in get_list("pods", ns)), 60,
             what="the StatefulSet's pods")
    # A malformed declaration is a Warning Event on the workload, not silently ignored.
    apply(declaring("Pod", "typo-pod", "sha256:not-a-digest"), ns)
    wait_for(lambda: [e for e in get_list("events.events.k8s.io", ns)
                      if e.get("reason") == "MalformedDigest" and e["regarding"]["name"] == "typo-pod"], 30,
             what="a MalformedDigest Event")
    time.sleep(12)  # the InferenceService watch starts when discovery finds its API (every 10 s)
    name = revoke(revocations, {"digests": [bad.digest]})
    wait_condition("revocation", name, None, "Enforced", timeout=60)
    wait_for(lambda: kinds_left(ns) <= {"Pod/good-pod", "Pod/typo-pod"}, 60, what="every bad workload gone")
    assert get("inferenceservice", "bad-isvc", ns) is None
    # Nothing comes back: no controller was left to recreate the pods.
    time.sleep(3)
    assert kinds_left(ns) <= {"Pod/good-pod", "Pod/typo-pod"}, kinds_left(ns)
    assert "Pod/good-pod" in kinds_left(ns)


def test_late_link_a_version_tying_a_revoked_dataset_to_a_running_workload(
        operator: Path, ns: str, tmp_path: Path, revocations: list[str]) -> None:  # noqa: F811
    key = new_key()
    dataset = "sha256:" + os.urandom(32).hex()
    signed = make_model(tmp_path, "late", key)
    apply(declaring("StatefulSet", "third-party", signed.digest), ns)
    revoke(revocations, {"datasetDigests": [dataset]})
    time.sleep(2)
    assert get("statefulset", "third-party", ns) is not None  # nothing links it yet
    keyring(ns, "keys", {"release.pub": key})
    apply(model_manifest("late", ["keys"]), ns)
    # The version is refused (the Revocation covers it by its dataset), and the link it declares is enforced:
    # the running workload with its artifact goes.
    proc = apply(version_manifest("late-1-0-0", "late", "1.0.0", signed,
                                  lineage={"datasets": [{"name": "crawl", "uri": "s3://d/crawl", "digest": dataset}]}),
                 ns, check=False)
    assert proc.returncode != 0 and "dataset digest" in proc.stderr, proc.stderr
    wait_for(lambda: get("statefulset", "third-party", ns) is None, 20, what="the linked workload torn down")
    rev = get("revocation", revocations[-1])
    assert signed.digest in rev["status"]["revokedDigests"]


def test_an_artifact_revoked_by_key_is_refused_under_a_new_name(
        operator: Path, ns: str, tmp_path: Path, revocations: list[str]) -> None:  # noqa: F811
    key = new_key()
    signed = make_model(tmp_path, "k", key)
    keyring(ns, "keys", {"release.pub": key})
    apply(model_manifest("k", ["keys"], stable="1.0.0"), ns)
    apply(version_manifest("k-1-0-0", "k", "1.0.0", signed), ns)
    wait_condition("modelversion", "k-1-0-0", ns, "Ready", timeout=60)
    name = revoke(revocations, {"keyFingerprints": [key.fingerprint]})
    rev = wait_condition("revocation", name, None, "Enforced", timeout=60)
    assert signed.digest in rev["status"]["revokedDigests"]
    # The same artifact under a new name, its signature moved to a ConfigMap that does not exist yet (so no
    # key is known for it at admission): refused by digest, naming the Revocation.
    mv = version_manifest("k-again", "k", "1.0.1", signed,
                          signature={"configMapRef": {"name": "not-yet", "key": "model.sig"}})
    proc = apply(mv, ns, check=False)
    assert proc.returncode != 0 and name in proc.stderr, proc.stderr


# --- API server restarts ---------------------------------------------------------------------------------------
def restart_apiserver() -> None:
    """Kill kube-apiserver (not etcd) and start it again with the same command line, as kwokctl ran it."""
    pid = subprocess.run(["pgrep", "-f", "bin/kube-apiserver .*--etcd-servers"], capture_output=True,
                         text=True).stdout.split()
    mine = [p for p in pid if os.environ.get("KUBECONFIG", "") and _same_cluster(p)]
    assert mine, f"no kube-apiserver of this cluster among {pid}"
    p = mine[0]
    cmd = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[:-1]
    cwd = os.readlink(f"/proc/{p}/cwd")
    env = dict(e.split(b"=", 1) for e in Path(f"/proc/{p}/environ").read_bytes().split(b"\0") if b"=" in e)
    os.kill(int(p), signal.SIGKILL)
    wait_for(lambda: _gone(p), 10, what="kube-apiserver gone")
    time.sleep(2)
    subprocess.Popen([c.decode() for c in cmd], cwd=cwd, env={k.decode(): v.decode() for k, v in env.items()},
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for(lambda: kubectl("get", "--raw", "/readyz", check=False).returncode == 0, 60, what="apiserver back")


def _gone(pid: str) -> bool:
    """Exited: no /proc entry, or a zombie nobody reaps yet (its port is free all the same)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def _same_cluster(pid: str) -> bool:
    port = kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout
    port = port.rsplit(":", 1)[-1].strip("/")
    args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return any(a in (f"--secure-port={port}".encode(), f"--insecure-port={port}".encode()) for a in args) or (
        port.encode() in b" ".join(args))


def ready_versions(namespace: str) -> int:
    return sum(1 for v in get_list("modelversions", namespace) if (condition(v, "Ready") or {}).get("status") == "True")


def test_api_server_restarts_during_a_rollout_and_a_revocation(
        operator: Path, ns: str, tmp_path: Path, revocations: list[str]) -> None:  # noqa: F811
    key = new_key()
    keyring(ns, "keys", {"release.pub": key})
    docs = []
    for i in range(50):
        s = make_model(tmp_path, f"r{i}", key)
        docs += [model_manifest(f"r{i}", ["keys"], stable="1.0.0"), version_manifest(f"r{i}-1-0-0", f"r{i}", "1.0.0", s)]
    apply(docs, ns)
    wait_for(lambda: ready_versions(ns) >= 5, 60, interval=0.5, what="the rollout under way")
    restart_apiserver()
    wait_for(lambda: ready_versions(ns) == 50, 180, interval=2, what="all 50 versions Ready after the restart")
    assert len(get_list("deployments", ns)) == 50
    name = revoke(revocations, {"keyFingerprints": [key.fingerprint]})
    wait_for(lambda: len(get_list("deployments", ns)) < 50, 30, interval=0.2, what="the teardown under way")
    restart_apiserver()
    rev = wait_condition("revocation", name, None, "Enforced", timeout=120)
    assert rev["status"]["matchedVersions"] == 50
    wait_for(lambda: not get_list("deployments", ns), 60, what="every Deployment gone")
    wait_for(lambda: all((condition(v, "Revoked") or {}).get("status") == "True"
                         for v in get_list("modelversions", ns)), 90, interval=2, what="every version Revoked")
