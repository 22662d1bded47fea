"""`kubectl get --field-selector` on the model card and on a version's model (the CRDs' selectableFields), on the
real API server: like a model hub's search, only the matching objects come back. No operator needed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.kubehelp import apply, kubectl

DIGEST = "sha256:" + "ab" * 32


def model(name: str, task: str, license_: str, owner: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelhub.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {"card": {"task": task, "license": license_, "owner": owner}},
    }


def version(name: str, model_name: str, semver: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelhub.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": name},
        "spec": {"model": model_name, "version": semver, "artifact": {"uri": "file:///models/x", "digest": DIGEST}},
    }


def names(kind: str, ns: str, *selector: str) -> list[str]:
    out = kubectl("get", kind, "-n", ns, "-o", "json", *selector).stdout
    return sorted(item["metadata"]["name"] for item in json.loads(out)["items"])


@pytest.fixture
def catalogue(crds: None, namespace: str) -> str:
    apply(
        [
            model("sentiment", "text-classification", "Apache-2.0", "nlp-team"),
            model("toxicity", "text-classification", "MIT", "trust-safety"),
            model("whisper-small", "automatic-speech-recognition", "Apache-2.0", "speech-team"),
            version("sentiment-1-0-0", "sentiment", "1.0.0"),
            version("sentiment-1-1-0", "sentiment", "1.1.0"),
            version("toxicity-2-0-0", "toxicity", "2.0.0"),
        ],
        namespace=namespace,
    )
    return namespace


def test_models_by_card_fields(catalogue: str) -> None:
    ns = catalogue
    assert names("models", ns) == ["sentiment", "toxicity", "whisper-small"]
    assert names("models", ns, "--field-selector", "spec.card.task=text-classification") == ["sentiment", "toxicity"]
    assert names("models", ns, "--field-selector", "spec.card.license=Apache-2.0") == ["sentiment", "whisper-small"]
    assert names("models", ns, "--field-selector", "spec.card.owner=speech-team") == ["whisper-small"]
    # several requirements are ANDed, and != works as for built-in fields
    assert names(
        "models", ns, "--field-selector", "spec.card.task=text-classification,spec.card.license!=MIT"
    ) == ["sentiment"]
    assert names("models", ns, "--field-selector", "spec.card.task=image-segmentation") == []


def test_versions_by_model(catalogue: str) -> None:
    ns = catalogue
    assert names("modelversions", ns, "--field-selector", "spec.model=sentiment") == [
        "sentiment-1-0-0",
        "sentiment-1-1-0",
    ]
    assert names("mv", ns, "--field-selector", "spec.model=toxicity") == ["toxicity-2-0-0"]


def test_a_field_that_is_not_selectable_is_refused(catalogue: str) -> None:
    proc = kubectl("get", "models", "-n", catalogue, "--field-selector", "spec.card.description=x", check=False)
    assert proc.returncode != 0
    assert "field label not supported" in proc.stderr
