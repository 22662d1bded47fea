"""Deployment and Service builders, label sanitizing and the stable/canary replica split."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from modelhub.domain.placement import PlacementError
from modelhub.domain.workloads import (
    ANN_DIGEST,
    ANN_VERSION_NAME,
    LABEL_MANAGED,
    LABEL_MODEL,
    LABEL_ROLE,
    LABEL_SERVES,
    LABEL_VERSION,
    LOADER_REASON_MAX,
    WorkloadError,
    build_deployment,
    build_service,
    loader_failure,
    sanitize_label_value,
    split_replicas,
)

DIGEST = "sha256:" + "ab" * 32
LOADER = "ghcr.io/modelhub/operator:0.1.0"
CPU_SELECTOR = {"modelhub.dev/node-class": "cpu"}
LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def model_manifest(**serving_overrides) -> dict:
    serving = {
        "runtime": {
            "image": "ghcr.io/acme/server:1.0",
            "port": 9000,
            "args": ["--model-dir", "/models/model"],
            "env": [{"name": "LOG_LEVEL", "value": "info"}],
            "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
        },
        "accelerator": {"kind": "gpu", "count": 2, "product": "NVIDIA-A100-SXM4-80GB"},
        "replicas": 3,
    }
    serving.update(serving_overrides)
    return {
        "apiVersion": "modelhub.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "sentiment", "namespace": "ml", "uid": "model-uid-1", "generation": 2},
        "spec": {
            "trust": {
                "keys": [{"name": "ml-team-keys", "key": "release.pub"}, {"name": "security-keys"}],
                "requireApproval": True,
            },
            "serving": serving,
            "promotion": {"stable": "1.0.0+build.5"},
        },
    }


def version_manifest(
    version: str = "1.0.0+build.5",
    name: str = "sentiment-1-0-0",
    uri: str = "pvc://models/sentiment/1.0.0",
    signature: dict | None = None,
    serving: dict | None = None,
) -> dict:
    spec: dict = {
        "model": "sentiment",
        "version": version,
        "artifact": {"uri": uri, "digest": DIGEST},
    }
    spec["artifact"]["signature"] = (
        signature
        if signature is not None
        else {"configMapRef": {"name": "sentiment-sigs", "key": "1.0.0.sig"}}
    )
    if serving is not None:
        spec["serving"] = serving
    return {
        "apiVersion": "modelhub.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": name, "namespace": "ml", "uid": "mv-uid-1", "generation": 1},
        "spec": spec,
    }


def deploy(model=None, version=None, **kw) -> dict:
    args = {"replicas": 3, "role": "stable", "loader_image": LOADER, "cpu_node_selector": CPU_SELECTOR}
    args.update(kw)
    return build_deployment(model or model_manifest(), version or version_manifest(), **args)


def container(pod_spec: dict, name: str) -> dict:
    return next(c for c in pod_spec.get("initContainers", []) + pod_spec["containers"] if c["name"] == name)


def volume(pod_spec: dict, name: str) -> dict:
    return next(v for v in pod_spec["volumes"] if v["name"] == name)


# --- labels -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, expected",
    [
        ("1.0.0", "1.0.0"),
        ("1.0.0+build.5", "1.0.0_build.5"),
        ("1.0.0-rc.1+exp.sha.5114f85", "1.0.0-rc.1_exp.sha.5114f85"),
        ("sentiment", "sentiment"),
        ("+weird+", "weird"),
        ("", ""),
    ],
)
def test_sanitize_label_value(value, expected):
    assert sanitize_label_value(value) == expected
    assert LABEL_VALUE.match(expected)


def test_sanitize_long_values_are_capped_and_stay_distinct():
    a = "1.0.0-" + "a" * 80
    b = "1.0.0-" + "a" * 79 + "b"
    sa, sb = sanitize_label_value(a), sanitize_label_value(b)
    assert len(sa) <= 63 and len(sb) <= 63
    assert LABEL_VALUE.match(sa) and LABEL_VALUE.match(sb)
    assert sa != sb
    assert sanitize_label_value(a) == sa  # deterministic


# --- Deployment -------------------------------------------------------------------------------------------
def test_deployment_metadata_and_owner():
    d = deploy()
    assert d["apiVersion"] == "apps/v1" and d["kind"] == "Deployment"
    meta = d["metadata"]
    assert meta["name"] == "sentiment-1-0-0"
    assert meta["namespace"] == "ml"
    assert meta["labels"] == {
        "app.kubernetes.io/name": "sentiment",
        "app.kubernetes.io/instance": "sentiment-1-0-0",
        "app.kubernetes.io/version": "1.0.0_build.5",
        "app.kubernetes.io/managed-by": "modelhub",
        "modelhub.dev/model": "sentiment",
        "modelhub.dev/version": "1.0.0_build.5",
        "modelhub.dev/role": "stable",
        "modelhub.dev/serves-artifact": "true",
    }
    assert meta["annotations"] == {ANN_DIGEST: DIGEST, ANN_VERSION_NAME: "sentiment-1-0-0"}
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "modelhub.dev/v1alpha1",
            "kind": "ModelVersion",
            "name": "sentiment-1-0-0",
            "uid": "mv-uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    for value in meta["labels"].values():
        assert LABEL_VALUE.match(value) and len(value) <= 63


def test_selector_and_pod_template_labels():
    d = deploy(replicas=4)
    spec = d["spec"]
    assert spec["replicas"] == 4
    assert spec["selector"] == {
        "matchLabels": {"modelhub.dev/model": "sentiment", "app.kubernetes.io/instance": "sentiment-1-0-0"}
    }
    tmpl = spec["template"]["metadata"]
    assert tmpl["labels"] == {
        "modelhub.dev/model": "sentiment",
        "modelhub.dev/version": "1.0.0_build.5",
        "app.kubernetes.io/instance": "sentiment-1-0-0",
        "modelhub.dev/serves-artifact": "true",
    }
    assert tmpl["annotations"] == {ANN_DIGEST: DIGEST}
    # the selector must select the template
    assert spec["selector"]["matchLabels"].items() <= tmpl["labels"].items()


def test_role_is_not_in_the_pod_template():
    stable, canary = deploy(role="stable"), deploy(role="canary")
    assert stable["metadata"]["labels"][LABEL_ROLE] == "stable"
    assert canary["metadata"]["labels"][LABEL_ROLE] == "canary"
    assert LABEL_ROLE not in stable["spec"]["template"]["metadata"]["labels"]
    assert stable["spec"]["template"] == canary["spec"]["template"]  # a role change does not restart pods


def test_loader_with_configmap_signature_and_pvc_artifact():
    pod = deploy()["spec"]["template"]["spec"]
    loader = container(pod, "loader")
    assert loader["image"] == LOADER
    assert loader["command"] == [
        "modelhub", "load",
        "--uri", "pvc://models/sentiment/1.0.0",
        "--digest", DIGEST,
        "--dest", "/models",
        "--keys-dir", "/keys",
        "--max-total-bytes", str(64 * 1024**3),
        "--max-file-bytes", str(64 * 1024**3),
        "--deadline", "3600",
        "--min-rate", "65536",
        "--rate-window", "30",
        "--max-bundle-bytes", str(4 * 1024**2),
        "--signature-file", "/signature/1.0.0.sig",
    ]  # fmt: skip
    mounts = {m["mountPath"]: m for m in loader["volumeMounts"]}
    assert mounts["/models"]["name"] == "model" and not mounts["/models"].get("readOnly")
    assert mounts["/keys"]["readOnly"] is True
    assert mounts["/signature"]["readOnly"] is True
    assert mounts["/mnt/pvc/models"]["readOnly"] is True

    sig = volume(pod, mounts["/signature"]["name"])
    assert sig["configMap"] == {
        "name": "sentiment-sigs",
        "items": [{"key": "1.0.0.sig", "path": "1.0.0.sig"}],
    }
    pvc = volume(pod, mounts["/mnt/pvc/models"]["name"])
    assert pvc["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}
    assert volume(pod, "model") == {"name": "model", "emptyDir": {"sizeLimit": "65600Mi"}}  # 64 GiB + 64 MiB


def test_keys_are_a_projected_volume_of_the_trusted_configmaps():
    pod = deploy()["spec"]["template"]["spec"]
    assert volume(pod, "keys") == {
        "name": "keys",
        "projected": {
            "sources": [
                {
                    "configMap": {
                        "name": "ml-team-keys",
                        "items": [{"key": "release.pub", "path": "ml-team-keys--release.pub"}],
                    }
                },
                {"configMap": {"name": "security-keys"}},
            ]
        },
    }


def test_loader_with_signature_uri_on_https():
    version = version_manifest(
        uri="https://models.example.com/sentiment/1.0.0/",
        signature={"uri": "https://models.example.com/sentiment/1.0.0/model.sig"},
    )
    pod = deploy(version=version)["spec"]["template"]["spec"]
    loader = container(pod, "loader")
    assert loader["command"][-2:] == [
        "--signature-uri",
        "https://models.example.com/sentiment/1.0.0/model.sig",
    ]
    assert "--signature-file" not in loader["command"]
    assert {v["name"] for v in pod["volumes"]} == {"model", "keys"}  # no ConfigMap, no PVC


def test_signature_on_another_pvc_mounts_both_claims():
    version = version_manifest(
        uri="pvc://models/sentiment/1.0.0", signature={"uri": "pvc://signatures/sentiment/1.0.0.sig"}
    )
    pod = deploy(version=version)["spec"]["template"]["spec"]
    claims = sorted(
        v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v
    )
    assert claims == ["models", "signatures"]
    paths = {m["mountPath"] for m in container(pod, "loader")["volumeMounts"]}
    assert {"/mnt/pvc/models", "/mnt/pvc/signatures"} <= paths


def test_server_container():
    pod = deploy()["spec"]["template"]["spec"]
    server = container(pod, "server")
    assert server["image"] == "ghcr.io/acme/server:1.0"
    assert server["args"] == ["--model-dir", "/models/model"]
    assert "command" not in server
    assert server["env"] == [
        {"name": "LOG_LEVEL", "value": "info"},
        {"name": "MODEL_DIR", "value": "/models/model"},
    ]
    assert server["ports"] == [{"name": "http", "containerPort": 9000}]
    assert server["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"memory": "4Gi", "nvidia.com/gpu": "2"},
    }
    assert server["readinessProbe"] == {
        "tcpSocket": {"port": "http"},
        "initialDelaySeconds": 0,
        "periodSeconds": 5,
    }
    assert server["volumeMounts"] == [{"name": "model", "mountPath": "/models", "readOnly": True}]


def test_gpu_pod_placement():
    pod = deploy()["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "affinity" not in pod
    assert pod["enableServiceLinks"] is False
    assert pod["automountServiceAccountToken"] is False


def test_cpu_version_override_on_a_gpu_model():
    version = version_manifest(serving={"accelerator": {"kind": "cpu"}, "runtime": {"port": 8000}})
    pod = deploy(version=version)["spec"]["template"]["spec"]
    server = container(pod, "server")
    assert pod["nodeSelector"] == CPU_SELECTOR
    assert "tolerations" not in pod
    assert "nvidia.com/gpu" not in server["resources"].get("limits", {})
    assert server["ports"] == [{"name": "http", "containerPort": 8000}]


def test_edge_node_selector_is_kept():
    version = version_manifest(
        serving={"accelerator": {"kind": "cpu"}, "nodeSelector": {"node-role.kubernetes.io/edge": "true"}}
    )
    pod = deploy(version=version)["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"node-role.kubernetes.io/edge": "true"}


def test_user_gpu_request_is_aligned_with_the_limit():
    model = model_manifest()
    model["spec"]["serving"]["runtime"]["resources"] = {
        "requests": {"nvidia.com/gpu": "1"},
        "limits": {"nvidia.com/gpu": "1"},
    }
    server = container(deploy(model=model)["spec"]["template"]["spec"], "server")
    assert server["resources"] == {"requests": {"nvidia.com/gpu": "2"}, "limits": {"nvidia.com/gpu": "2"}}


def test_user_model_dir_wins():
    version = version_manifest(
        serving={"runtime": {"env": [{"name": "MODEL_DIR", "value": "/models/model/sub"}]}}
    )
    env = container(deploy(version=version)["spec"]["template"]["spec"], "server")["env"]
    assert [e for e in env if e["name"] == "MODEL_DIR"] == [
        {"name": "MODEL_DIR", "value": "/models/model/sub"}
    ]


def test_deployment_is_deterministic_and_does_not_modify_inputs():
    model, version = model_manifest(), version_manifest()
    before = copy.deepcopy((model, version))
    a = deploy(model=model, version=version)
    b = deploy(model=copy.deepcopy(model), version=copy.deepcopy(version))
    assert a == b
    assert json.dumps(a, sort_keys=False) == json.dumps(b, sort_keys=False)  # same key order too
    assert (model, version) == before
    json.dumps(a)  # plain JSON-serialisable data


@pytest.mark.parametrize(
    "change, error, needle",
    [
        (lambda m, v: m["spec"]["serving"]["runtime"].pop("image"), WorkloadError, "runtime.image"),
        (lambda m, v: m["spec"]["trust"].update(keys=[]), WorkloadError, "no trusted keys"),
        (lambda m, v: v["metadata"].pop("uid"), WorkloadError, "metadata.uid"),
        (lambda m, v: v["spec"].update(model="other"), WorkloadError, "belongs to model other"),
        (lambda m, v: m["spec"]["serving"]["accelerator"].update(count=0), PlacementError, "count >= 1"),
    ],
)
def test_deployment_errors(change, error, needle):
    model, version = model_manifest(), version_manifest()
    change(model, version)
    with pytest.raises(error, match=needle):
        deploy(model=model, version=version)


def test_bad_role_or_replicas():
    with pytest.raises(WorkloadError, match="role"):
        deploy(role="primary")
    with pytest.raises(WorkloadError, match="replicas"):
        deploy(replicas=-1)


# --- Service ----------------------------------------------------------------------------------------------
def test_service():
    svc = build_service(model_manifest(), port=80)
    assert svc["apiVersion"] == "v1" and svc["kind"] == "Service"
    assert svc["metadata"]["name"] == "sentiment"
    assert svc["metadata"]["namespace"] == "ml"
    assert svc["metadata"]["labels"][LABEL_MANAGED] == "modelhub"
    assert svc["metadata"]["labels"][LABEL_MODEL] == "sentiment"
    assert svc["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "modelhub.dev/v1alpha1",
            "kind": "Model",
            "name": "sentiment",
            "uid": "model-uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert svc["spec"]["selector"] == {
        "modelhub.dev/model": "sentiment",
        "modelhub.dev/serves-artifact": "true",
    }
    assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert build_service(model_manifest(), port=80) == svc


def test_service_selects_stable_and_canary_pods_of_the_model_only():
    model = model_manifest()
    svc = build_service(model, port=80)
    stable = deploy(model=model, role="stable")
    canary = deploy(
        model=model, role="canary", version=version_manifest(version="1.1.0", name="sentiment-1-1-0")
    )
    selector = svc["spec"]["selector"].items()
    for d in (stable, canary):
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert selector <= labels.items()
        assert labels[LABEL_SERVES] == "true"
        assert "http" in [p["name"] for p in d["spec"]["template"]["spec"]["containers"][0]["ports"]]
    assert canary["spec"]["template"]["metadata"]["labels"][LABEL_VERSION] == "1.1.0"
    other = copy.deepcopy(stable["spec"]["template"]["metadata"]["labels"])
    other[LABEL_MODEL] = "other-model"
    assert not selector <= other.items()


def test_service_name_must_be_a_dns1035_label():
    model = model_manifest()
    model["metadata"]["name"] = "sentiment.v2"
    with pytest.raises(WorkloadError, match="DNS-1035"):
        build_service(model, port=80)


# --- split_replicas ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "total, weight, expected",
    [
        (5, 20, (4, 1)),
        (10, 25, (7, 3)),  # 2.5 rounds half up
        (10, 15, (8, 2)),  # 1.5 rounds half up
        (10, 14, (9, 1)),
        (4, 50, (2, 2)),
        (3, 50, (1, 2)),  # 1.5 → 2
        (10, 1, (9, 1)),  # a canary asked for always gets a pod
        (5, 99, (1, 4)),  # a partial canary never takes the last stable pod
        (2, 90, (1, 1)),
        (1, 50, (1, 1)),  # total 1: keep the stable and add one canary pod
        (1, 1, (1, 1)),
        (1, 99, (1, 1)),
        (5, 0, (5, 0)),
        (5, 100, (0, 5)),
        (1, 100, (0, 1)),
        (0, 50, (0, 0)),
        (0, 100, (0, 0)),
    ],
)
def test_split_replicas(total, weight, expected):
    assert split_replicas(total, weight) == expected


def test_split_replicas_invariants():
    for total in range(0, 30):
        for weight in range(0, 101):
            stable, canary = split_replicas(total, weight)
            assert stable >= 0 and canary >= 0
            if total >= 2 or weight in (0, 100) or total == 0:
                assert stable + canary == total
            if 0 < weight < 100 and total > 0:
                assert stable >= 1 and canary >= 1


@pytest.mark.parametrize("total, weight", [(-1, 10), (5, -1), (5, 101), (5, 12.5), (True, 10)])
def test_split_replicas_rejects_bad_input(total, weight):
    with pytest.raises(ValueError):
        split_replicas(total, weight)


def test_certificate_authorities_are_mounted_for_the_loader():
    model = model_manifest()
    model["spec"]["trust"]["certificateAuthorities"] = [{"name": "corp-pki", "key": "root.pem"}, {"name": "more-cas"}]
    pod = deploy(model)["spec"]["template"]["spec"]
    loader = container(pod, "loader")
    assert loader["command"][loader["command"].index("--keys-dir") + 1] == "/keys"
    assert loader["command"][loader["command"].index("--cas-dir") + 1] == "/cas"
    assert volume(pod, "cas")["projected"]["sources"] == [
        {"configMap": {"name": "corp-pki", "items": [{"key": "root.pem", "path": "corp-pki--root.pem"}]}},
        {"configMap": {"name": "more-cas"}},
    ]
    assert {m["mountPath"]: m for m in loader["volumeMounts"]}["/cas"]["readOnly"] is True
    # CAs alone: no keys volume, no --keys-dir
    model["spec"]["trust"]["keys"] = []
    pod = deploy(model)["spec"]["template"]["spec"]
    loader = container(pod, "loader")
    assert "--keys-dir" not in loader["command"] and "--cas-dir" in loader["command"]
    assert {v["name"] for v in pod["volumes"]} >= {"model", "cas"} and "keys" not in {v["name"] for v in pod["volumes"]}
    # neither: refused
    model["spec"]["trust"]["certificateAuthorities"] = []
    with pytest.raises(WorkloadError, match="no trusted keys nor certificate authorities"):
        deploy(model)
def test_loader_failure_reason_reaches_the_pod_status():
    """The loader's reason for refusing is its termination message: written file, else its log's end on error."""
    pod = deploy()["spec"]["template"]["spec"]
    loader = container(pod, "loader")
    assert loader["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert loader["terminationMessagePath"] == "/dev/termination-log"
    server = next(c for c in pod["containers"] if c["name"] != "loader")
    assert "terminationMessagePolicy" not in server  # the server keeps Kubernetes' default


def _pod(name: str, *statuses: dict) -> dict:
    return {"metadata": {"name": name}, "status": {"initContainerStatuses": list(statuses)}}


def _loader_status(state: dict | None = None, last: dict | None = None, name: str = "loader") -> dict:
    return {"name": name, "state": state or {}, "lastState": last or {}}


REFUSED = (
    "load: fetching 2 files from https://10.88.151.1:1/tiny/ with 2 workers\n"
    "error: Unreachable: config.json: https://10.88.151.1:1/tiny/config.json: [Errno 111] Connection refused\n"
)


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        ([], None),
        ([_pod("a")], None),
        # Running, or succeeded: nothing to report.
        ([_pod("a", _loader_status({"running": {}}))], None),
        ([_pod("a", _loader_status({"terminated": {"exitCode": 0, "message": "ok"}}))], None),
        # Failed now: the last line of its message (FallbackToLogsOnError gives the log's end).
        ([_pod("a", _loader_status({"terminated": {"exitCode": 2, "message": REFUSED}}))],
         "error: Unreachable: config.json: https://10.88.151.1:1/tiny/config.json: [Errno 111] Connection refused"),
        # In a crash loop: waiting now, the reason is in lastState.
        ([_pod("a", _loader_status({"waiting": {"reason": "CrashLoopBackOff"}},
                                   {"terminated": {"exitCode": 1, "message": "rejected: weights.bin digest mismatch\n"}}))],
         "rejected: weights.bin digest mismatch"),
        # No message at all: the exit code and the runtime's reason.
        ([_pod("a", _loader_status({"terminated": {"exitCode": 137, "reason": "OOMKilled"}}))],
         "the loader exited with code 137 (OOMKilled)"),
        # Another init container failing is not the loader's verdict.
        ([_pod("a", _loader_status({"terminated": {"exitCode": 1, "message": "x"}}, name="other"))], None),
        # Several pods: the first by name, whatever the list order.
        ([_pod("b", _loader_status({"terminated": {"exitCode": 1, "message": "from b"}})),
          _pod("a", _loader_status({"terminated": {"exitCode": 1, "message": "from a"}}))], "from a"),
        # Hostile shapes do not crash it.
        ([{"status": {"initContainerStatuses": ["junk", {"name": "loader", "state": {"terminated": {"exitCode": "1"}}}]}}],
         None),
    ],
)
def test_loader_failure(pods, expected):
    assert loader_failure(pods) == expected


def test_loader_failure_is_bounded():
    reason = loader_failure([_pod("a", _loader_status({"terminated": {"exitCode": 1, "message": "x" * 5000}}))])
    assert reason is not None and len(reason) == LOADER_REASON_MAX and reason.endswith("...")


@pytest.mark.parametrize(("pods", "reason"), [
    ([], None),
    ([{"metadata": {"name": "b"}, "status": {"conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/6 nodes: gpu"}]}},
      {"metadata": {"name": "a"}, "status": {"conditions": [{"type": "PodScheduled", "status": "True"}]}}],
     "0/6 nodes: gpu"),
    ([{"metadata": {"name": "a"}, "status": {"conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}}], None),
])
def test_unschedulable_reason(pods: list[dict[str, Any]], reason: str | None) -> None:
    from modelhub.domain.workloads import unschedulable_reason

    assert unschedulable_reason(pods) == reason


def test_store_ca_configmap_is_mounted_for_the_loader():
    """spec.artifact.caConfigMapRef: the ConfigMap's key is mounted read-only at a fixed path (whatever the key is
    called) and the loader is told to trust it; not optional, so a missing ConfigMap keeps the pod from starting."""
    version = version_manifest(uri="https://store.internal/sentiment/1.0.0/")
    version["spec"]["artifact"]["caConfigMapRef"] = {"name": "corp-store-ca", "key": "root.pem"}
    pod = deploy(version=version)["spec"]["template"]["spec"]
    loader = container(pod, "loader")
    i = loader["command"].index("--store-ca-file")
    assert loader["command"][i + 1] == "/store-ca/ca.crt"
    assert {"name": "store-ca", "mountPath": "/store-ca", "readOnly": True} in loader["volumeMounts"]
    assert volume(pod, "store-ca") == {
        "name": "store-ca", "configMap": {"name": "corp-store-ca", "items": [{"key": "root.pem", "path": "ca.crt"}]}
    }
    assert "optional" not in volume(pod, "store-ca")["configMap"]
    server = container(pod, "server")
    assert all(m["name"] != "store-ca" for m in server["volumeMounts"])  # the server never sees it

    version["spec"]["artifact"]["caConfigMapRef"] = {"name": "corp-store-ca"}  # the key defaults to ca.crt
    pod = deploy(version=version)["spec"]["template"]["spec"]
    assert volume(pod, "store-ca")["configMap"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]


def test_no_store_ca_without_the_field():
    pod = deploy(version=version_manifest(uri="https://store.internal/x/"))["spec"]["template"]["spec"]
    assert "--store-ca-file" not in container(pod, "loader")["command"]
    assert all(v["name"] != "store-ca" for v in pod["volumes"])
