"""An OCI-served version with the operator on the real control plane: it rolls out with the oci:// URI handed to
the loader (and the registry Secret mounted), and a Revocation by artifact digest tears it down like any other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.kubehelp import apply, get, get_list, kubectl, unique, wait_condition, wait_for
from tests.e2e.signed import keyring, make_model, model_manifest, new_key, version_manifest
from tests.support.manifests import bundle_configmap
from tests.support.registry import Registry, push_modelpack, run_registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with run_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


def test_oci_version_rolls_out_and_is_revoked_by_digest(
    operator: Path, namespace: str, registry: Registry, tmp_path: Path
) -> None:
    key = new_key()
    signed = make_model(tmp_path, "oci-model", key)
    uri = f"oci://{registry.host}/models/oci-model@{push_modelpack(registry, signed.path, 'models/oci-model:1')}"

    keyring(namespace, "keys", {"release.pub": key})
    apply(bundle_configmap("bundles", signed.bundle), namespace)
    apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "regcred"},
           "type": "kubernetes.io/dockerconfigjson",
           "data": {".dockerconfigjson": "eyJhdXRocyI6IHt9fQ=="}}, namespace)  # {"auths": {}}
    apply(model_manifest("ocim", ["keys"], stable="1.0.0"), namespace)
    version = version_manifest("ocim-1-0-0", "ocim", "1.0.0", signed,
                               signature={"configMapRef": {"name": "bundles", "key": "model.sig"}})
    version["spec"]["artifact"]["uri"] = uri
    version["spec"]["artifact"]["credentialsSecretRef"] = {"name": "regcred"}
    apply(version, namespace)
    wait_condition("modelversion", "ocim-1-0-0", namespace, "Ready", timeout=90)

    deployment = next(d for d in get_list("deployments", namespace)
                      if d["metadata"]["annotations"].get("modelhub.dev/artifact-digest") == signed.digest)
    pod = deployment["spec"]["template"]["spec"]
    loader = pod["initContainers"][0]
    assert loader["command"][loader["command"].index("--uri") + 1] == uri
    assert {"name": "DOCKER_CONFIG", "value": "/var/run/modelhub/registry"} in loader["env"]
    assert any(v.get("secret", {}).get("secretName") == "regcred" for v in pod["volumes"])

    name = unique("rvk-oci")
    try:
        apply({"apiVersion": "modelhub.dev/v1alpha1", "kind": "Revocation", "metadata": {"name": name},
               "spec": {"reason": "e2e: oci artifact compromised", "match": {"digests": [signed.digest]}}})
        obj = wait_condition("modelversion", "ocim-1-0-0", namespace, "Revoked", "True", timeout=60)
        assert obj["status"]["revocation"]["name"] == name
        wait_for(lambda: not any(d["metadata"]["name"] == deployment["metadata"]["name"]
                                 for d in get_list("deployments", namespace)), timeout=60)
        rv = wait_condition("revocation", name, None, "Enforced", "True", timeout=60)
        assert signed.digest in rv["status"]["revokedDigests"]
        assert (get("modelversion", "ocim-1-0-0", namespace) or {})["spec"]["artifact"]["uri"] == uri
    finally:
        kubectl("delete", "revocation", name, "--ignore-not-found", "--wait=false", check=False)
