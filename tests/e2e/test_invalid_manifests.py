"""The CRDs against a real API server: invalid manifests are refused with an error naming the field, the
samples are accepted, and `kubectl explain` / `kubectl get` show what the schema promises.

Every file in tests/e2e/invalid/ starts with one or more ``# expect: <text>`` lines; ``kubectl apply
--validate=strict`` of it must fail and its stderr must contain every expected text. A file with several YAML
documents is a transition: the earlier documents are applied first (and must be accepted), then the last one
must be refused (immutable fields).

Needs KUBECONFIG (skips otherwise) and kubectl (env KUBECTL, default `kubectl` on PATH). No operator needed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.kubehelp import kubectl, unique

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
INVALID = Path(__file__).resolve().parent / "invalid"
SAMPLES = ROOT / "config" / "samples"
FIXTURES = sorted(INVALID.glob("*.yaml"))


def expectations(path: Path) -> list[str]:
    return re.findall(r"^# expect: (.+?)\s*$", path.read_text(), re.M)


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def apply_strict(namespace: str, *, path: Path | None = None, docs: list[dict[str, Any]] | None = None):
    args = ["apply", "--validate=strict", "-n", namespace, "-f"]
    if path is not None:
        return kubectl(*args, str(path), check=False)
    return kubectl(*args, "-", input=yaml.safe_dump_all(docs or [], sort_keys=False), check=False)


def exists(kind: str, name: str, namespace: str) -> bool:
    proc = kubectl("get", kind, name, "-n", namespace, "--ignore-not-found", "-o", "name", check=False)
    assert proc.returncode == 0, proc.stderr
    return bool(proc.stdout.strip())


@pytest.fixture(scope="module")
def ns(crds: None) -> Iterator[str]:
    """A fresh namespace for this module, deleted afterwards."""
    name = unique("e2e-invalid")
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_there_are_enough_fixtures():
    assert len(FIXTURES) >= 22
    assert all(expectations(p) for p in FIXTURES)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_invalid_manifest_is_refused(ns: str, path: Path):
    expected = expectations(path)
    docs = documents(path)
    setup, final = docs[:-1], docs[-1]
    try:
        for doc in setup:
            proc = apply_strict(ns, docs=[doc])
            assert proc.returncode == 0, f"setup document of {path.name} refused: {proc.stderr}"
        proc = apply_strict(ns, docs=[final]) if setup else apply_strict(ns, path=path)
        assert proc.returncode != 0, f"{path.name} was accepted: {proc.stdout}"
        for text in expected:
            assert text in proc.stderr, f"{path.name}: {text!r} not in stderr:\n{proc.stderr}"
        if not setup:
            assert not exists(final["kind"], final["metadata"]["name"], ns)
    finally:
        if setup:
            kubectl(
                "delete", "-n", ns, "--ignore-not-found", "--wait=false", "-f", "-",
                input=yaml.safe_dump_all(setup, sort_keys=False), check=False,
            )


# --- valid samples ----------------------------------------------------------------------------------------
def sample_docs(ns: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The samples, with the cluster-scoped Revocation renamed and narrowed to this test's namespace so that it
    cannot touch anything else in a shared cluster."""
    docs = [d for p in sorted(SAMPLES.glob("*.yaml")) for d in documents(p)]
    namespaced = [d for d in docs if d["kind"] != "Revocation"]
    (rvk,) = [d for d in docs if d["kind"] == "Revocation"]
    rvk["metadata"]["name"] = f"{rvk['metadata']['name']}-{ns}"
    for selector in rvk["spec"]["match"].get("models", []):
        selector["namespace"] = ns
    # Keep the ConfigMap first: the Model refers to it.
    namespaced.sort(key=lambda d: {"ConfigMap": 0, "Model": 1}.get(d["kind"], 2))
    return namespaced, rvk


def test_samples_are_accepted(ns: str):
    namespaced, rvk = sample_docs(ns)
    kinds = {d["kind"] for d in namespaced} | {rvk["kind"]}
    assert {"ConfigMap", "Model", "ModelVersion", "Revocation"} <= kinds
    try:
        proc = apply_strict(ns, docs=namespaced + [rvk])
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.strip() == "", proc.stderr  # no warnings (e.g. unknown fields dropped)
        for doc in namespaced + [rvk]:
            args = ["get", doc["kind"].lower(), doc["metadata"]["name"], "-o", "json"]
            if doc["kind"] != "Revocation":
                args += ["-n", ns]
            live = json.loads(kubectl(*args).stdout)
            if doc["kind"] != "ConfigMap":
                # Nothing was pruned: every field we sent comes back (plus schema defaults).
                assert _contains(live["spec"], doc["spec"]), (doc["kind"], live["spec"])
        header = kubectl("get", "rvk", rvk["metadata"]["name"]).stdout.splitlines()[0].split()
        assert header == ["NAME", "REASON", "MATCHED", "ENFORCED", "SECONDS", "AGE"]
        mv = json.loads(kubectl("get", "mv", "sentiment-1-4-2", "-n", ns, "-o", "json").stdout)
        assert mv["spec"]["artifact"]["allowSymlinks"] is False  # defaulted by the API server
        model = json.loads(kubectl("get", "mdl", "sentiment", "-n", ns, "-o", "json").stdout)
        assert model["spec"]["serving"]["runtime"]["resources"]["requests"]["cpu"] == "2"
    finally:
        kubectl("delete", "revocation", rvk["metadata"]["name"], "--ignore-not-found", "--wait=false", check=False)


def _contains(live: Any, sent: Any) -> bool:
    if isinstance(sent, dict):
        return isinstance(live, dict) and all(k in live and _contains(live[k], v) for k, v in sent.items())
    if isinstance(sent, list):
        return isinstance(live, list) and len(live) == len(sent) and all(map(_contains, live, sent))
    return live == sent or (isinstance(sent, int) and str(sent) == live)


def test_updates_that_keep_immutable_fields_are_accepted(ns: str):
    namespaced, _ = sample_docs(ns)
    mv = next(d for d in namespaced if d["kind"] == "ModelVersion")
    mv["metadata"]["name"] = "mutable-fields"
    assert apply_strict(ns, docs=[mv]).returncode == 0
    mv["spec"]["evaluation"] = {"metrics": [{"name": "accuracy", "value": 0.95}]}
    mv["spec"]["serving"] = {"replicas": 0}
    proc = apply_strict(ns, docs=[mv])
    assert proc.returncode == 0, proc.stderr


def test_status_goes_through_the_status_subresource(ns: str):
    namespaced, _ = sample_docs(ns)
    mv = next(d for d in namespaced if d["kind"] == "ModelVersion")
    mv["metadata"]["name"] = "status-check"
    assert apply_strict(ns, docs=[mv]).returncode == 0
    status = {"status": {"conditions": [{
        "type": "SignatureVerified", "status": "True", "reason": "Verified", "message": "signed by signers/k",
        "lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": 1}]}}
    proc = kubectl("patch", "mv", "status-check", "-n", ns, "--subresource=status", "--type=merge",
                   "-p", json.dumps(status), check=False)
    assert proc.returncode == 0, proc.stderr
    bad = {"status": {"conditions": [{"type": "Ready", "status": "Maybe"}]}}
    proc = kubectl("patch", "mv", "status-check", "-n", ns, "--subresource=status", "--type=merge",
                   "-p", json.dumps(bad), check=False)
    assert proc.returncode != 0 and "status.conditions[0].status" in proc.stderr, proc.stderr


def test_printer_columns_and_short_names(ns: str):
    namespaced, _ = sample_docs(ns)
    assert apply_strict(ns, docs=namespaced).returncode == 0
    header = kubectl("get", "mv", "-n", ns).stdout.splitlines()[0].split()
    assert header == ["NAME", "MODEL", "VERSION", "VERIFIED", "APPROVED", "READY", "REPLICAS", "AGE"]
    header = kubectl("get", "mdl", "-n", ns).stdout.splitlines()[0].split()
    assert header == ["NAME", "STABLE", "CANARY", "WEIGHT", "TRAFFIC", "READY", "AGE"]
    names = kubectl("get", "modelhub", "-n", ns, "-o", "name").stdout.split()
    assert "model.modelhub.dev/sentiment" in names
    assert "modelversion.modelhub.dev/sentiment-1-4-2" in names


def test_kubectl_explain_teaches_the_fields(ns: str):
    out = kubectl("explain", "modelversion.spec.artifact").stdout
    for text in ("digest", "sha256", "signature", "model.sig", "allowSymlinks", "pvc://", "s3://"):
        assert text in out, out
    out = kubectl("explain", "model.spec.serving.accelerator").stdout
    assert "nvidia.com/gpu.product" in out and "count" in out
    out = kubectl("explain", "revocation.spec.match").stdout
    assert "keyFingerprints" in out and "datasetDigests" in out and "Immutable" in out
