"""The operator's side of oci://: a version names a *tag* of a real registry (basic auth); the operator resolves
it once, off its queue workers, records the digest in status.resolvedUri, fetches the bundle from the artifact's
``model.sig`` layer with the namespace's dockerconfigjson Secret, and verifies. A tag pushed again later does not
move the version; no Secret, no pull.

This module runs its own operator, told that the test registry on 127.0.0.1 speaks plain http.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import start_operator, stop_operator
from tests.e2e.kubehelp import apply, condition, get, kubectl, unique, wait_condition, wait_for
from tests.e2e.signed import keyring, make_model, model_manifest, new_key, version_manifest
from tests.support.registry import Registry, push_modelpack, run_registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with run_registry(tmp_path_factory.mktemp("registry"), htpasswd=("team", "s3cret-pass")) as reg:
        yield reg


@pytest.fixture(scope="module")
def oci_operator(crds: None, registry: Registry,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[bytes]]:
    log = tmp_path_factory.mktemp("oci-operator") / "operator.log"
    proc = start_operator(log, MODELHUB_OCI_PLAIN_HTTP=registry.host)
    yield proc
    stop_operator(proc)


def test_a_tag_is_resolved_once_and_the_bundle_pulled_with_the_namespace_secret(
        oci_operator: subprocess.Popen[bytes], registry: Registry, tmp_path: Path) -> None:
    ns = unique("oci-op")
    kubectl("create", "namespace", ns)
    try:
        key = new_key()
        signed = make_model(tmp_path, "llm", key)  # model.sig is one of its files: a layer of the artifact
        digest = push_modelpack(registry, signed.path, "models/llm:stable")
        keyring(ns, "keys", {"release.pub": key})
        apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "regcred"},
               "type": "kubernetes.io/dockerconfigjson",
               "data": {".dockerconfigjson": base64.b64encode(registry.dockerconfig()).decode()}}, ns)
        apply(model_manifest("llm", ["keys"]), ns)
        tag_uri = f"oci://{registry.host}/models/llm:stable"
        version = version_manifest("llm-1-0-0", "llm", "1.0.0", signed)
        version["spec"]["artifact"].update(uri=tag_uri, credentialsSecretRef={"name": "regcred"})
        apply(version, ns)
        obj = wait_condition("modelversion", "llm-1-0-0", ns, "SignatureVerified", "True", "Verified", timeout=60)
        pinned = f"oci://{registry.host}/models/llm@{digest}"
        assert obj["status"]["resolvedUri"] == pinned
        assert obj["status"]["verified"]["digest"] == signed.digest

        # The tag moves to other files; the version stays on what it resolved (and verified) first.
        other = make_model(tmp_path, "llm-v2", key)
        assert push_modelpack(registry, other.path, "models/llm:stable") != digest
        kubectl("-n", ns, "annotate", "modelversion", "llm-1-0-0", "e2e/poke=1")
        kubectl("-n", ns, "label", "configmap", "keys", "e2e/poke=1")  # a keyring change re-verifies
        wait_for(lambda: condition(get("modelversion", "llm-1-0-0", ns), "SignatureVerified"), 30)
        obj = get("modelversion", "llm-1-0-0", ns)
        assert obj["status"]["resolvedUri"] == pinned
        assert condition(obj, "SignatureVerified")["status"] == "True"

        # A version naming no Secret pulls anonymously, which this registry refuses: a reason, not a crash.
        anon = version_manifest("llm-1-0-1", "llm", "1.0.1", signed)
        anon["spec"]["artifact"]["uri"] = tag_uri
        apply(anon, ns)
        obj = wait_condition("modelversion", "llm-1-0-1", ns, "SignatureVerified", "False", timeout=60)
        c = condition(obj, "SignatureVerified")
        assert c["reason"] in ("BundleUnreachable", "BundleRefused"), c
        assert "s3cret" not in c["message"]
        assert "resolvedUri" not in obj["status"]
    finally:
        kubectl("delete", "namespace", ns, "--wait=false", check=False)
