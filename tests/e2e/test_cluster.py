"""The local control plane is a real Kubernetes: the scheduler places GPU pods by product and refuses impossible ones."""

from __future__ import annotations

from tests.e2e.kubehelp import apply, get, get_list, kubectl, wait_for


def gpu_deployment(name: str, gpus: int, product: str | None) -> dict:
    pod_spec: dict = {
        "containers": [{"name": "main", "image": "example.invalid/serve:1",
                        "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}],
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }
    if product:
        pod_spec["nodeSelector"] = {"nvidia.com/gpu.product": product}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec}},
    }


def test_nodes_are_the_fake_gpu_cpu_and_edge_nodes(cluster: str) -> None:
    nodes = {n["metadata"]["name"]: n for n in get_list("nodes")}
    products = {n["metadata"]["labels"].get("nvidia.com/gpu.product") for n in nodes.values()}
    assert {"NVIDIA-L4", "NVIDIA-H100-80GB-HBM3"} <= products
    l4 = next(n for n in nodes.values() if n["metadata"]["labels"].get("nvidia.com/gpu.product") == "NVIDIA-L4")
    assert l4["status"]["allocatable"]["nvidia.com/gpu"] == "4"
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in l4["spec"]["taints"]
    assert sum(1 for n in nodes.values() if n["metadata"]["labels"].get("modelhub.dev/node-class") == "cpu") >= 2
    assert any(n["metadata"]["labels"].get("modelhub.dev/node-class") == "edge" for n in nodes.values())


def test_gpu_deployment_lands_on_the_requested_product(namespace: str) -> None:
    apply(gpu_deployment("on-h100", 2, "NVIDIA-H100-80GB-HBM3"), namespace)
    kubectl("wait", "--for=condition=Available", "deployment/on-h100", "-n", namespace, "--timeout=60s")
    pods = get_list("pods", namespace, "app=on-h100")
    assert len(pods) == 1
    node = get("node", pods[0]["spec"]["nodeName"])
    assert node is not None
    assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert pods[0]["status"]["phase"] == "Running"


def test_more_gpus_than_any_node_stays_pending_unschedulable(namespace: str) -> None:
    apply(gpu_deployment("too-big", 16, None), namespace)

    def unschedulable() -> dict | None:
        for pod in get_list("pods", namespace, "app=too-big"):
            for c in pod.get("status", {}).get("conditions") or []:
                if c["type"] == "PodScheduled" and c["status"] == "False" and c.get("reason") == "Unschedulable":
                    return c
        return None

    cond = wait_for(unschedulable, 60, what="PodScheduled=False/Unschedulable")
    assert "Insufficient nvidia.com/gpu" in cond["message"]
    pod = get_list("pods", namespace, "app=too-big")[0]
    assert pod["status"]["phase"] == "Pending"
    assert not pod["spec"].get("nodeName")
