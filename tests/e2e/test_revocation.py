"""Revocation on the real control plane: every match kind, cross-namespace teardown (including workloads we did not
create), fallback, no resurrection through kubectl, and lifting a Revocation."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.kubehelp import apply, condition, get, get_list, kubectl, unique, wait_condition, wait_for
from tests.e2e.signed import Key, Signed, keyring, make_model, model_manifest, new_key, version_manifest


@pytest.fixture
def revocations() -> Iterator[list[str]]:
    """Names of Revocations a test creates (cluster-scoped): deleted after the test."""
    names: list[str] = []
    yield names
    for n in names:
        kubectl("delete", "revocation", n, "--ignore-not-found", "--wait=false", check=False)


def revoke(names: list[str], match: dict[str, Any], reason: str = "e2e: compromised") -> str:
    name = unique("rvk")
    names.append(name)
    apply({"apiVersion": "modelhub.dev/v1alpha1", "kind": "Revocation", "metadata": {"name": name},
           "spec": {"reason": reason, "match": match}})
    return name


def deployments(namespace: str) -> set[str]:
    return {d["metadata"]["name"] for d in get_list("deployments", namespace)}


def serve(namespace: str, tmp: Path, key: Key, model: str, versions: list[str], stable: str,
          datasets: dict[str, str] | None = None, **promotion: Any) -> dict[str, Signed]:
    """A Model trusting `key`, with signed versions; waits until the stable one is Ready."""
    keyring(namespace, "keys", {"release.pub": key})
    apply(model_manifest(model, ["keys"], stable=stable, **promotion), namespace)
    signed = {}
    for v in versions:
        signed[v] = make_model(tmp / namespace, f"{model}-{v}", key)
        extra = {}
        if datasets and v in datasets:
            extra["lineage"] = {"datasets": [{"name": "train", "uri": "s3://data/train", "digest": datasets[v]}]}
        apply(version_manifest(f"{model}-{v.replace('.', '-')}", model, v, signed[v], **extra), namespace)
    wait_condition("modelversion", f"{model}-{stable.replace('.', '-')}", namespace, "Ready", timeout=60)
    return signed


def assert_revoked(namespace: str, mv: str, revocation: str) -> dict[str, Any]:
    obj = wait_condition("modelversion", mv, namespace, "Revoked", "True", timeout=30)
    assert obj["status"]["revocation"]["name"] == revocation
    assert revocation in condition(obj, "Revoked")["message"]
    assert condition(obj, "Ready")["status"] == "False"
    return obj


def test_digest_revocation_tears_down_every_namespace_and_third_party_workloads(
    operator: Path, tmp_path: Path, revocations: list[str]
) -> None:
    key = new_key()
    a, b, other = unique("rv-a"), unique("rv-b"), unique("rv-3p")
    for ns in (a, b, other):
        kubectl("create", "namespace", ns)
    try:
        signed = make_model(tmp_path, "shared", key)
        for ns in (a, b):
            keyring(ns, "keys", {"release.pub": key})
            apply(model_manifest("clf", ["keys"], stable="1.0.0", replicas=2), ns)
            apply(version_manifest("clf-1-0-0", "clf", "1.0.0", signed), ns)
        # A workload modelhub did not create, declaring the same artifact.
        apply({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "homegrown", "labels": {"modelhub.dev/serves-artifact": "true"},
                         "annotations": {"modelhub.dev/artifact-digest": signed.digest}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "homegrown"}},
                     "template": {"metadata": {"labels": {"app": "homegrown"}},
                                  "spec": {"containers": [{"name": "s", "image": "example.invalid/s:1"}]}}},
        }, other)
        for ns in (a, b):
            wait_condition("modelversion", "clf-1-0-0", ns, "Ready", timeout=60)
        kubectl("wait", "--for=condition=Available", "deployment/homegrown", "-n", other, "--timeout=60s")

        name = revoke(revocations, {"digests": [signed.digest]})
        rev = wait_condition("revocation", name, None, "Enforced", "True", timeout=30)
        for ns in (a, b):
            assert deployments(ns) == set()
            assert_revoked(ns, "clf-1-0-0", name)
        assert "homegrown" not in deployments(other)
        st = rev["status"]
        assert st["matchedVersions"] == 2 and st["affectedTotal"] == 2
        assert st["workloadsTornDown"] == 3
        assert {(x["namespace"], x["name"]) for x in st["affected"]} == {(a, "clf-1-0-0"), (b, "clf-1-0-0")}
        assert st["enforcementSeconds"] >= 0 and st["enforcedAt"]
        # Pods go too (garbage collection of the deleted Deployments).
        wait_for(lambda: not get_list("pods", a) and not get_list("pods", b), 60, what="pods gone")
        # A Warning Event names the teardown.
        events = kubectl("get", "events", "-A", "--field-selector", f"involvedObject.name={name}", "-o",
                         "jsonpath={.items[*].reason}").stdout
        assert "TornDown" in events
    finally:
        for ns in (a, b, other):
            kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.mark.parametrize("kind", ["keyFingerprints", "models", "datasetDigests"])
def test_each_match_kind_and_fallback_to_the_previous_good_version(
    kind: str, operator: Path, namespace: str, tmp_path: Path, revocations: list[str]
) -> None:
    good, bad = new_key(), new_key()
    dataset = "sha256:" + os.urandom(32).hex()  # unique: other tests' namespaces may still be terminating
    keyring(namespace, "keys", {"good.pub": good, "bad.pub": bad})
    apply(model_manifest("fraud", ["keys"], stable="1.1.0"), namespace)
    v100 = make_model(tmp_path, "fraud-1.0.0", good)
    v110 = make_model(tmp_path, "fraud-1.1.0", bad)
    apply(version_manifest("fraud-1-0-0", "fraud", "1.0.0", v100), namespace)
    apply(version_manifest("fraud-1-1-0", "fraud", "1.1.0", v110,
                           lineage={"datasets": [{"name": "train", "uri": "s3://d/t", "digest": dataset}]}), namespace)
    wait_condition("modelversion", "fraud-1-1-0", namespace, "Ready", timeout=60)
    assert deployments(namespace) == {"fraud-1-1-0"}

    match = {
        "keyFingerprints": {"keyFingerprints": [bad.fingerprint]},
        "models": {"models": [{"namespace": namespace, "name": "fraud", "versions": ">=1.1.0,<1.2.0"}]},
        "datasetDigests": {"datasetDigests": [dataset]},
    }[kind]
    name = revoke(revocations, match)
    wait_condition("revocation", name, None, "Enforced", "True", timeout=30)
    assert_revoked(namespace, "fraud-1-1-0", name)
    # onRevocation defaults to rollback: the newest verified, approved, unrevoked version takes over.
    wait_condition("modelversion", "fraud-1-0-0", namespace, "Ready", timeout=30)
    assert deployments(namespace) == {"fraud-1-0-0"}
    model = get("model", "fraud", namespace)
    assert model["status"]["stableVersion"] == "1.0.0"
    assert model["status"]["history"][-1]["reason"] == "FellBack"
    assert get("revocation", name)["status"]["matchedVersions"] == 1


def test_no_resurrection_and_lifting_the_revocation_restores_service(
    operator: Path, namespace: str, tmp_path: Path, revocations: list[str]
) -> None:
    key = new_key()
    signed = serve(namespace, tmp_path, key, "ranker", ["1.0.0", "1.1.0"], stable="1.1.0")
    name = revoke(revocations, {"digests": [signed["1.1.0"].digest]}, reason="e2e: backdoor found")
    wait_condition("revocation", name, None, "Enforced", "True", timeout=30)
    assert_revoked(namespace, "ranker-1-1-0", name)

    # GitOps self-heal: delete and re-apply the same ModelVersion -> refused, naming the Revocation.
    kubectl("delete", "modelversion", "ranker-1-1-0", "-n", namespace)
    out = apply(version_manifest("ranker-1-1-0", "ranker", "1.1.0", signed["1.1.0"]), namespace, check=False)
    assert out.returncode != 0
    assert name in out.stderr and "backdoor" in out.stderr
    # Under another name too: it is the artifact that is revoked.
    out = apply(version_manifest("ranker-again", "ranker", "1.1.0", signed["1.1.0"]), namespace, check=False)
    assert out.returncode != 0 and name in out.stderr
    # Promoting a version a model rule covers is refused as well.
    rule = revoke(revocations, {"models": [{"namespace": namespace, "name": "ranker", "versions": "<1.0.1"}]})
    out = kubectl("patch", "model", "ranker", "-n", namespace, "--type=merge",
                  "-p", '{"spec":{"promotion":{"stable":"1.0.0"}}}', check=False)
    assert out.returncode != 0 and rule in out.stderr
    kubectl("delete", "revocation", rule)

    # Lifting: delete the Revocation; the version can be applied again, verifies, and serves again.
    kubectl("delete", "revocation", name)
    apply(version_manifest("ranker-1-1-0", "ranker", "1.1.0", signed["1.1.0"]), namespace)
    obj = wait_condition("modelversion", "ranker-1-1-0", namespace, "Ready", timeout=60)
    assert condition(obj, "Revoked")["status"] == "False"
    assert "ranker-1-1-0" in deployments(namespace)
    assert get("model", "ranker", namespace)["status"]["stableVersion"] == "1.1.0"


def test_lifting_a_revocation_reverifies_versions_that_stayed(
    operator: Path, namespace: str, tmp_path: Path, revocations: list[str]
) -> None:
    key = new_key()
    serve(namespace, tmp_path, key, "ocr", ["2.0.0"], stable="2.0.0")
    name = revoke(revocations, {"keyFingerprints": [key.fingerprint]})
    assert_revoked(namespace, "ocr-2-0-0", name)
    wait_for(lambda: deployments(namespace) == set(), 30, what="teardown")
    model = wait_condition("model", "ocr", namespace, "Ready", "False", timeout=30)
    assert condition(model, "Ready")["reason"] == "NoEligibleVersion"
    kubectl("delete", "revocation", name)
    obj = wait_condition("modelversion", "ocr-2-0-0", namespace, "Ready", timeout=60)
    assert condition(obj, "Revoked")["status"] == "False"
    assert "revocation" not in obj["status"]


def test_on_revocation_none_serves_nothing_and_says_so(
    operator: Path, namespace: str, tmp_path: Path, revocations: list[str]
) -> None:
    key = new_key()
    signed = serve(namespace, tmp_path, key, "asr", ["1.0.0", "1.1.0"], stable="1.1.0", onRevocation="none")
    name = revoke(revocations, {"digests": [signed["1.1.0"].digest]})
    wait_condition("revocation", name, None, "Enforced", "True", timeout=30)
    model = wait_condition("model", "asr", namespace, "Ready", "False", reason="Revoked", timeout=30)
    assert "1.1.0" in condition(model, "Ready")["message"]
    assert deployments(namespace) == set()
