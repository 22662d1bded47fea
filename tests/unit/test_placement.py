"""Effective serving settings (Model defaults + version overrides) and pod placement on GPU / CPU / edge nodes."""

from __future__ import annotations

import copy

import pytest

from modelhub.domain.placement import (
    GPU_TOLERATION,
    NODE_CLASS_LABEL,
    PlacementError,
    effective_serving,
    pod_placement,
)

CPU_SELECTOR = {"modelhub.dev/node-class": "cpu"}

MODEL_SERVING = {
    "runtime": {
        "image": "ghcr.io/acme/server:1.0",
        "port": 9000,
        "args": ["--workers", "2"],
        "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "THREADS", "value": "4"}],
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
    },
    "accelerator": {"kind": "gpu", "count": 1, "product": "NVIDIA-A100-SXM4-80GB"},
    "replicas": 3,
    "nodeSelector": {"topology.kubernetes.io/zone": "eu-1a", "tier": "gold"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
}


# --- effective_serving ------------------------------------------------------------------------------------
def test_no_override_is_a_copy_of_the_model_defaults():
    out = effective_serving(MODEL_SERVING, None)
    assert out == MODEL_SERVING
    out["runtime"]["env"].append({"name": "X", "value": "1"})
    out["nodeSelector"]["tier"] = "bronze"
    assert len(MODEL_SERVING["runtime"]["env"]) == 2  # no aliasing of the input
    assert MODEL_SERVING["nodeSelector"]["tier"] == "gold"


def test_defaults_are_filled():
    out = effective_serving({"runtime": {"image": "img"}}, None)
    assert out["runtime"]["port"] == 8080
    assert out["replicas"] == 1
    assert effective_serving(None, None) == {"runtime": {"port": 8080}, "replicas": 1}


def test_runtime_is_merged_key_by_key():
    version = {"runtime": {"image": "ghcr.io/acme/server:2.0", "args": ["--fast"]}}
    before = copy.deepcopy(version)
    out = effective_serving(MODEL_SERVING, version)
    rt = out["runtime"]
    assert rt["image"] == "ghcr.io/acme/server:2.0"
    assert rt["args"] == ["--fast"]  # lists are replaced, not concatenated
    assert rt["port"] == 9000  # kept from the Model
    assert rt["env"] == MODEL_SERVING["runtime"]["env"]
    assert version == before


def test_env_is_merged_by_name_in_place_and_new_names_appended():
    version = {"runtime": {"env": [{"name": "THREADS", "value": "16"}, {"name": "NEW", "value": "x"}]}}
    env = effective_serving(MODEL_SERVING, version)["runtime"]["env"]
    assert env == [
        {"name": "LOG_LEVEL", "value": "info"},
        {"name": "THREADS", "value": "16"},
        {"name": "NEW", "value": "x"},
    ]


def test_resources_are_merged_per_resource():
    version = {"runtime": {"resources": {"requests": {"memory": "8Gi"}, "limits": {"cpu": "4"}}}}
    res = effective_serving(MODEL_SERVING, version)["runtime"]["resources"]
    assert res == {"requests": {"cpu": "1", "memory": "8Gi"}, "limits": {"memory": "4Gi", "cpu": "4"}}


def test_accelerator_and_affinity_are_replaced_whole_replicas_overridden():
    version = {
        "accelerator": {"kind": "cpu"},
        "affinity": {"nodeAffinity": {"x": 1}},
        "replicas": 7,
    }
    out = effective_serving(MODEL_SERVING, version)
    assert out["accelerator"] == {"kind": "cpu"}  # no count/product leaking from the Model
    assert out["affinity"] == {"nodeAffinity": {"x": 1}}
    assert out["replicas"] == 7


def test_replicas_zero_is_an_override_not_a_default():
    assert effective_serving(MODEL_SERVING, {"replicas": 0})["replicas"] == 0


def test_node_selector_merged_version_wins_per_key():
    out = effective_serving(MODEL_SERVING, {"nodeSelector": {"tier": "silver", "disk": "ssd"}})
    assert out["nodeSelector"] == {"topology.kubernetes.io/zone": "eu-1a", "tier": "silver", "disk": "ssd"}


def test_tolerations_concatenated_without_duplicates():
    mine = {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
    other = {"key": "edge", "operator": "Exists"}
    out = effective_serving(MODEL_SERVING, {"tolerations": [dict(mine), other]})
    assert out["tolerations"] == [mine, other]


# --- pod_placement ----------------------------------------------------------------------------------------
def test_gpu_placement():
    p = pod_placement(effective_serving(MODEL_SERVING, None), cpu_node_selector=CPU_SELECTOR)
    assert p["limits"] == {"nvidia.com/gpu": "1"}
    assert p["nodeSelector"] == {
        "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
        "tier": "gold",
        "topology.kubernetes.io/zone": "eu-1a",
    }  # no CPU node class on a GPU pod
    assert GPU_TOLERATION in p["tolerations"]
    assert p["tolerations"][0]["key"] == "dedicated"  # the user's are kept
    assert p["affinity"] == MODEL_SERVING["affinity"]


def test_gpu_count_and_no_product():
    p = pod_placement({"accelerator": {"kind": "gpu", "count": 4}})
    assert p == {
        "nodeSelector": {},
        "tolerations": [GPU_TOLERATION],
        "affinity": None,
        "limits": {"nvidia.com/gpu": "4"},
    }


def test_gpu_count_defaults_to_one():
    assert pod_placement({"accelerator": {"kind": "gpu"}})["limits"] == {"nvidia.com/gpu": "1"}


def test_accelerator_product_wins_over_user_selector():
    serving = {
        "accelerator": {"kind": "gpu", "count": 1, "product": "NVIDIA-H100"},
        "nodeSelector": {"nvidia.com/gpu.product": "Tesla-T4"},
    }
    assert pod_placement(serving)["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100"}


def test_gpu_toleration_not_duplicated_when_user_already_has_it():
    serving = {"accelerator": {"kind": "gpu", "count": 1}, "tolerations": [dict(GPU_TOLERATION)]}
    assert pod_placement(serving)["tolerations"] == [GPU_TOLERATION]


def test_cpu_placement_uses_the_operator_selector():
    p = pod_placement({"accelerator": {"kind": "cpu"}}, cpu_node_selector=CPU_SELECTOR)
    assert p == {"nodeSelector": CPU_SELECTOR, "tolerations": [], "affinity": None, "limits": {}}


def test_no_accelerator_means_cpu():
    p = pod_placement({"runtime": {"image": "x"}}, cpu_node_selector=CPU_SELECTOR)
    assert p["nodeSelector"] == CPU_SELECTOR and p["limits"] == {}


def test_cpu_without_configured_selector_has_none():
    assert pod_placement({"accelerator": {"kind": "cpu"}})["nodeSelector"] == {}


def test_edge_selector_of_the_user_is_honoured():
    serving = {
        "accelerator": {"kind": "cpu"},
        "nodeSelector": {"node-role.kubernetes.io/edge": "true"},
        "tolerations": [{"key": "edge", "operator": "Exists", "effect": "NoExecute"}],
    }
    p = pod_placement(serving, cpu_node_selector=CPU_SELECTOR)
    assert p["nodeSelector"] == {"node-role.kubernetes.io/edge": "true"}  # no node-class: cpu added
    assert p["tolerations"] == serving["tolerations"]


def test_user_node_class_is_honoured():
    serving = {"nodeSelector": {"modelhub.dev/node-class": "highmem"}}
    assert pod_placement(serving, cpu_node_selector=CPU_SELECTOR)["nodeSelector"] == {
        "modelhub.dev/node-class": "highmem"
    }


def test_placement_does_not_modify_its_input():
    serving = effective_serving(MODEL_SERVING, None)
    before = copy.deepcopy(serving)
    p = pod_placement(serving, cpu_node_selector=CPU_SELECTOR)
    p["nodeSelector"]["x"] = "y"
    p["tolerations"].append({"key": "z"})
    assert serving == before


@pytest.mark.parametrize(
    "accelerator, needle",
    [
        ({"kind": "gpu", "count": 0}, "count >= 1"),
        ({"kind": "gpu", "count": -2}, "count >= 1"),
        ({"kind": "gpu", "count": "2"}, "whole number"),
        ({"kind": "gpu", "count": True}, "whole number"),
        ({"kind": "tpu", "count": 1}, "unknown accelerator kind 'tpu'"),
        ({"kind": "cpu", "product": "NVIDIA-H100"}, "names GPU product"),
    ],
)
def test_contradictions_are_placement_errors(accelerator, needle):
    with pytest.raises(PlacementError) as err:
        pod_placement({"accelerator": accelerator})
    assert needle in err.value.message


def test_cpu_kind_asking_for_gpu_resources_is_an_error():
    serving = {
        "accelerator": {"kind": "cpu"},
        "runtime": {"resources": {"limits": {"nvidia.com/gpu": "1"}}},
    }
    with pytest.raises(PlacementError, match="asks for nvidia.com/gpu"):
        pod_placement(serving)


def test_null_in_the_version_overrides_nothing():
    out = effective_serving(MODEL_SERVING, {"accelerator": None, "replicas": None, "runtime": None})
    assert out == MODEL_SERVING


@pytest.mark.parametrize(
    ("model_selector", "version_selector", "default", "expected"),
    [
        # The Model names the real node's class: it wins over the operator's CPU default for the same key.
        ({NODE_CLASS_LABEL: "real"}, None, {NODE_CLASS_LABEL: "cpu"}, {NODE_CLASS_LABEL: "real"}),
        # The version overrides the Model per key, and still wins over the default.
        ({NODE_CLASS_LABEL: "cpu"}, {NODE_CLASS_LABEL: "real"}, {NODE_CLASS_LABEL: "cpu"}, {NODE_CLASS_LABEL: "real"}),
        # Keys of the Model and of the version add up; the default is not mixed in.
        ({NODE_CLASS_LABEL: "real"}, {"zone": "a"}, {NODE_CLASS_LABEL: "cpu", "pool": "x"},
         {NODE_CLASS_LABEL: "real", "zone": "a"}),
        # Nothing set anywhere: the operator's default.
        (None, None, {NODE_CLASS_LABEL: "cpu"}, {NODE_CLASS_LABEL: "cpu"}),
        ({}, {}, {NODE_CLASS_LABEL: "cpu"}, {NODE_CLASS_LABEL: "cpu"}),
        # No default configured and none set: no selector at all.
        (None, None, None, {}),
    ],
)
def test_selector_set_by_the_model_wins_over_the_cpu_default(model_selector, version_selector, default, expected):
    model = {"runtime": {"image": "srv:1"}, **({"nodeSelector": model_selector} if model_selector is not None else {})}
    version = {"nodeSelector": version_selector} if version_selector is not None else {}
    before = copy.deepcopy(default)
    placement = pod_placement(effective_serving(model, version), cpu_node_selector=default)
    assert placement["nodeSelector"] == expected
    assert default == before  # the operator's setting is not modified
