"""The operator reconciles a Model to Ready with observedGeneration, and reports a bad spec instead of crashing."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.kubehelp import apply, condition, get, kubectl, wait_condition, wait_for


def model(name: str, image: str = "ghcr.io/example/serve:1.0") -> dict:
    return {
        "apiVersion": "modelhub.dev/v1alpha1", "kind": "Model", "metadata": {"name": name},
        "spec": {
            "card": {"description": "sentiment classifier", "owner": "ml-platform", "task": "text-classification"},
            "serving": {"runtime": {"image": image, "port": 8080}, "accelerator": {"kind": "cpu"}, "replicas": 1},
        },
    }


def test_model_becomes_ready_with_observed_generation(operator: Path, namespace: str) -> None:
    apply(model("sentiment"), namespace)
    obj = wait_condition("model", "sentiment", namespace, "Ready", "True", timeout=60)
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert condition(obj, "Ready")["observedGeneration"] == obj["metadata"]["generation"]
    first_transition = condition(obj, "Ready")["lastTransitionTime"]

    # A spec change bumps the generation; the operator catches up and the condition does not flip.
    kubectl("patch", "model", "sentiment", "-n", namespace, "--type=merge",
            "-p", '{"spec":{"card":{"owner":"search-team"}}}')

    def caught_up() -> dict | None:
        o = get("model", "sentiment", namespace)
        return o if o and o["status"].get("observedGeneration") == o["metadata"]["generation"] == 2 else None

    obj = wait_for(caught_up, 60, what="observedGeneration 2")
    assert condition(obj, "Ready")["status"] == "True"
    assert condition(obj, "Ready")["lastTransitionTime"] == first_transition
    out = kubectl("get", "modelhub", "-n", namespace).stdout
    assert "sentiment" in out
