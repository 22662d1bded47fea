"""The pydantic API types: they accept the samples, refuse what the CRD refuses, and say which field is wrong."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from modelhub.api import types as api
from modelhub.api.revocation import MATCH_IMMUTABLE_MESSAGE

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "config" / "samples"
INVALID = ROOT / "tests" / "e2e" / "invalid"
DIGEST = "sha256:" + "a" * 64


def load_all(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def expectations(path: Path) -> list[str]:
    return re.findall(r"^# expect: (.+?)\s*$", path.read_text(), re.M)


def mv_spec(**over) -> dict:
    spec = {
        "model": "demo",
        "version": "1.0.0",
        "artifact": {"uri": "pvc://models/demo/1.0.0", "digest": DIGEST},
    }
    spec.update(over)
    return spec


# --- samples ----------------------------------------------------------------------------------------------
def sample_objects() -> list[dict]:
    return [
        d
        for p in sorted(SAMPLES.glob("*.yaml"))
        for d in load_all(p)
        if d["apiVersion"].startswith("modelhub")
    ]


def test_samples_cover_every_kind():
    assert {d["kind"] for d in sample_objects()} == {"Model", "ModelVersion", "Revocation"}


@pytest.mark.parametrize("obj", sample_objects(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_samples_parse_and_round_trip(obj):
    res = api.parse_resource(obj)
    assert type(res).info.kind == obj["kind"]
    # to_dict adds only the schema defaults; re-parsing it gives the same object.
    again = type(res).model_validate(res.to_dict())
    assert again == res


def test_sample_model_has_a_gpu_and_a_keyring():
    model = next(api.parse_resource(d) for d in sample_objects() if d["kind"] == "Model")
    assert isinstance(model, api.Model)
    assert model.spec.serving.accelerator.kind == "gpu" and model.spec.serving.accelerator.gpus >= 1
    assert model.spec.trust.keys and model.spec.trust.keys[0].key is None
    keyring = load_all(SAMPLES / "keyring.yaml")[0]
    assert keyring["kind"] == "ConfigMap" and keyring["metadata"]["name"] == model.spec.trust.keys[0].name
    assert all("BEGIN PUBLIC KEY" in v for v in keyring["data"].values())


# --- invalid manifests (the same fixtures the e2e test applies to a real API server) -----------------------
INVALID_FILES = sorted(INVALID.glob("*.yaml"))


def test_there_are_enough_invalid_fixtures():
    assert len(INVALID_FILES) >= 22
    for path in INVALID_FILES:
        assert expectations(path), f"{path.name} has no '# expect:' header"


@pytest.mark.parametrize("path", INVALID_FILES, ids=lambda p: p.stem)
def test_pydantic_refuses_what_the_api_server_refuses(path):
    docs = load_all(path)
    if len(docs) > 1:
        # A transition: the earlier documents are valid; the last one changes an immutable field.
        olds = [api.parse_resource(d) for d in docs[:-1]]
        new = api.parse_resource(docs[-1])
        message = "; ".join(new.spec.immutable_violations(olds[-1].spec))
    else:
        with pytest.raises(api.InvalidResource) as info:
            api.parse_resource(docs[0])
        message = str(info.value)
    for expected in expectations(path):
        assert expected in message, f"{path.name}: {expected!r} not in {message!r}"


# --- model validators -------------------------------------------------------------------------------------
def test_validation_error_paths_use_camel_case_and_indices():
    with pytest.raises(ValidationError) as info:
        api.ModelSpec.model_validate({"serving": {"runtime": {"image": "x", "env": [{"value": "1"}]}}})
    assert (
        api.format_validation_error(info.value, "spec") == "spec.serving.runtime.env[0].name: Required value"
    )


def test_parse_spec_reports_every_problem_with_a_prefix():
    with pytest.raises(api.InvalidResource) as info:
        api.parse_spec(
            api.ModelVersionSpec, {"model": "demo", "version": "1.0", "artifact": {"uri": "ftp://x"}}
        )
    errors = info.value.errors
    assert any(e.startswith("spec.version: invalid value '1.0'") for e in errors)
    assert any(e.startswith("spec.artifact.uri: ") for e in errors)
    assert "spec.artifact.digest: Required value" in errors


def test_parse_resource_unknown_kind():
    with pytest.raises(api.InvalidResource, match="kind: must be one of Model, ModelVersion, Revocation"):
        api.parse_resource({"kind": "Dataset"})


def test_parse_resource_checks_api_version():
    obj = {"apiVersion": "modelhub.dev/v1", "kind": "Model", "metadata": {"name": "m"}}
    with pytest.raises(api.InvalidResource, match="apiVersion must be modelhub.dev/v1alpha1"):
        api.parse_resource(obj)


def test_whole_object_validation_with_status():
    obj = {
        "apiVersion": "modelhub.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": "demo-1-0-0", "namespace": "team", "generation": 2},
        "spec": mv_spec(),
        "status": {
            "observedGeneration": 2,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Serving",
                    "message": "ok",
                    "lastTransitionTime": "2025-01-01T00:00:00Z",
                    "observedGeneration": 2,
                }
            ],
            "verified": {
                "digest": DIGEST,
                "keyName": "signers/k.pem",
                "keyFingerprint": "b" * 64,
                "files": 3,
            },
            "workload": {
                "deployment": "demo-1-0-0",
                "replicas": 1,
                "readyReplicas": 1,
                "servedDigest": DIGEST,
            },
        },
    }
    mv = api.ModelVersion.model_validate(obj)
    assert mv.name == "demo-1-0-0" and mv.namespace == "team"
    assert mv.status.verified.key_fingerprint == "b" * 64
    assert mv.status.workload.ready_replicas == 1
    assert mv.to_dict()["status"]["conditions"][0]["lastTransitionTime"] == "2025-01-01T00:00:00Z"


def test_populate_by_name_and_defaults():
    art = api.Artifact(uri="file:///models/demo", digest=DIGEST, allow_symlinks=True)
    assert art.to_dict() == {"uri": "file:///models/demo", "digest": DIGEST, "allowSymlinks": True}
    promo = api.Promotion.model_validate({"stable": "1.0.0"})
    assert promo.on_revocation == "rollback"
    serving = api.Serving.model_validate({"runtime": {"image": "img"}})
    assert serving.replicas == 1 and serving.runtime.port == 8080
    assert serving.effective_accelerator().kind == "cpu"
    assert api.Trust().require_approval is False


def test_strict_types_like_the_api_server():
    with pytest.raises(ValidationError):
        api.Runtime.model_validate({"image": "img", "port": "8080"})
    with pytest.raises(ValidationError):
        api.Trust.model_validate({"requireApproval": "yes"})
    with pytest.raises(ValidationError):
        api.Metric.model_validate({"name": "acc", "value": "0.9"})
    assert api.Metric.model_validate({"name": "acc", "value": 1}).value == 1.0


@pytest.mark.parametrize(
    "accel",
    [
        {"kind": "cpu"},
        {"kind": "gpu", "count": 1},
        {"kind": "gpu", "count": 8, "product": "NVIDIA-H100-80GB-HBM3"},
    ],
)
def test_valid_accelerators(accel):
    api.Accelerator.model_validate(accel)


@pytest.mark.parametrize(
    ("accel", "message"),
    [
        ({"kind": "cpu", "count": 1}, "count is only valid with kind gpu"),
        ({"kind": "cpu", "product": "A100"}, "product is only valid with kind gpu"),
        ({"kind": "gpu"}, "a gpu accelerator needs count"),
        ({"kind": "gpu", "count": 0}, "greater than or equal to 1"),
        ({"kind": "tpu"}, "'cpu' or 'gpu'"),
    ],
)
def test_invalid_accelerators(accel, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        api.Accelerator.model_validate(accel)


def test_gpus_property():
    assert api.Accelerator(kind="cpu").gpus == 0
    assert api.Accelerator(kind="gpu", count=4).gpus == 4


@pytest.mark.parametrize(
    "quantity",
    [1, "1", "500m", "2Gi", "1.5", "0.5", "1e3", "100M", "+1", ".5"],
)
def test_quantities(quantity):
    res = api.ResourceRequirements.model_validate({"limits": {"cpu": quantity}})
    assert res.limits["cpu"] == str(quantity)


@pytest.mark.parametrize("quantity", ["lots", "1 Gi", "", "2GB", 1.5, True, "1Gii"])
def test_bad_quantities(quantity):
    with pytest.raises(ValidationError):
        api.ResourceRequirements.model_validate({"limits": {"cpu": quantity}})


@pytest.mark.parametrize(
    "uri",
    [
        "file:///models/demo",
        "file:///models/demo/model.safetensors",
        "pvc://model-store/sentiment/1.4.2",
        "pvc://model-store/",
        "https://models.example.com/demo/1.0.0.tar",
        "https://models.example.com:8443/demo?token=1",
        "s3://example-models/sentiment/1.5.0/",
        "s3://a.b-c/key",
    ],
)
def test_valid_artifact_uris(uri):
    assert api.Artifact(uri=uri, digest=DIGEST).uri == uri


@pytest.mark.parametrize(
    "uri",
    [
        "ftp://example.com/x",
        "http://example.com/x",
        "file://relative/path",
        "file:///",
        "pvc://Claim/x",
        "pvc://claim",
        "s3://bucket",
        "s3://b/x",
        "https://",
        "https:///path",
        "oci://registry",  # oci:// needs a repository (a valid one is accepted: tests/unit/test_oci.py)
        "oci://registry/Model:1",
        "/models/demo",
        "pvc://claim/a/../b",
        "file:///models/..",
        "s3://bucket/../key",
        "file:///models /x",
    ],
)
def test_invalid_artifact_uris(uri):
    with pytest.raises(ValidationError) as info:
        api.Artifact(uri=uri, digest=DIGEST)
    assert "uri" in api.format_validation_error(info.value)


def test_dotdot_inside_a_name_is_fine():
    assert api.Artifact(uri="pvc://claim/models/v1..2/x", digest=DIGEST)


def test_signature_sources():
    assert api.SignatureSource.model_validate({"uri": "https://example.com/demo.sig"}).uri
    ref = api.SignatureSource.model_validate({"configMapRef": {"name": "sigs", "key": "demo.sig"}})
    assert ref.config_map_ref.key == "demo.sig"
    with pytest.raises(ValidationError, match="exactly one of configMapRef or uri"):
        api.SignatureSource.model_validate({})
    with pytest.raises(ValidationError, match="configMapRef.key"):
        api.SignatureSource.model_validate({"configMapRef": {"name": "sigs"}})


def test_model_version_immutability_helper():
    old = api.ModelVersionSpec.model_validate(mv_spec())
    assert old.immutable_violations(old) == []
    changed = mv_spec(lineage={"parent": "0.9.0"}, serving={"replicas": 3})
    assert api.ModelVersionSpec.model_validate(changed).immutable_violations(old) == []
    art = copy.deepcopy(mv_spec()["artifact"]) | {"allowSymlinks": True}
    new = api.ModelVersionSpec.model_validate(mv_spec(model="other", version="1.0.1", artifact=art))
    assert new.immutable_violations(old) == [
        "spec.model is immutable",
        "spec.version is immutable",
        "spec.artifact is immutable",
    ]


def test_revocation_match_and_immutability():
    spec = api.RevocationSpec.model_validate(
        {"reason": "bad", "match": {"models": [{"name": "demo", "versions": ">=1.2.0,<1.3.1"}]}}
    )
    sel = spec.match.models[0]
    assert sel.matches("any-namespace", "demo", "1.2.5")
    assert not sel.matches("any-namespace", "demo", "1.3.1")
    assert not sel.matches("ns", "other", "1.2.5")
    scoped = api.ModelSelector(namespace="team-a", name="demo")
    assert scoped.matches("team-a", "demo", "9.9.9") and not scoped.matches("team-b", "demo", "9.9.9")
    same = api.RevocationSpec.model_validate({"reason": "other reason", "match": spec.match.to_dict()})
    assert same.immutable_violations(spec) == []
    wider = api.RevocationSpec.model_validate({"reason": "bad", "match": {"digests": [DIGEST]}})
    assert wider.immutable_violations(spec) == [MATCH_IMMUTABLE_MESSAGE]


def test_revocation_needs_something_to_match():
    for match in ({}, {"digests": [], "models": []}):
        with pytest.raises(ValidationError, match="must name at least one of"):
            api.RevocationMatch.model_validate(match)
    for match in (
        {"digests": [DIGEST]},
        {"keyFingerprints": ["a" * 64]},
        {"models": [{"name": "m"}]},
        {"datasetDigests": [DIGEST]},
    ):
        api.RevocationMatch.model_validate(match)


def test_model_name_must_be_a_label():
    api.Model.model_validate({"metadata": {"name": "sentiment-v2"}})
    with pytest.raises(ValidationError, match="DNS-1123 label"):
        api.Model.model_validate({"metadata": {"name": "sentiment.v2"}})
    with pytest.raises(ValidationError, match="DNS-1123 label"):
        api.Model.model_validate({"metadata": {"name": "m" * 64}})


def test_status_history_is_capped():
    record = {"at": "2025-01-01T00:00:00Z", "stable": "1.0.0"}
    api.ModelStatus.model_validate({"history": [record] * 20})
    with pytest.raises(ValidationError, match="at most 20"):
        api.ModelStatus.model_validate({"history": [record] * 21})


def test_revocation_affected_is_capped():
    item = {"namespace": "ns", "name": "v"}
    api.RevocationStatus.model_validate({"affected": [item] * 100, "affectedTotal": 250})
    with pytest.raises(ValidationError):
        api.RevocationStatus.model_validate({"affected": [item] * 101})


# --- serving merge ----------------------------------------------------------------------------------------
def test_mappings_that_are_not_dicts_are_accepted():
    """kopf passes Body/Spec views (Mappings); strict mode must not refuse them."""

    class View(Mapping):
        def __init__(self, data):
            self._data = data

        def __getitem__(self, key):
            return self._data[key]

        def __iter__(self):
            return iter(self._data)

        def __len__(self):
            return len(self._data)

    spec = api.ModelSpec.model_validate(View({"trust": View({"keys": [View({"name": "signers"})]})}))
    assert spec.trust.keys[0].name == "signers"
    body = View({"apiVersion": "modelhub.dev/v1alpha1", "kind": "ModelVersion", "metadata": {"name": "v"},
                 "spec": View(mv_spec())})
    assert api.ModelVersion.model_validate(body).spec.version == "1.0.0"


def test_spec_errors_are_remembered_per_uid_and_generation() -> None:
    from modelhub.api.model import ModelSpec
    from modelhub.api.types import SpecErrors

    errors = SpecErrors(ModelSpec, limit=2)
    bad = {"metadata": {"uid": "u1", "generation": 1}, "spec": {"trust": "not an object"}}
    first = errors.of(bad)
    assert first is not None and "trust" in first
    # the same generation is not validated again (its spec cannot have changed) ...
    assert errors.of({**bad, "spec": {}}) == first
    # ... a new generation, or an object without uid, is
    assert errors.of({"metadata": {"uid": "u1", "generation": 2}, "spec": {}}) != first
    assert errors.of({"metadata": {}, "spec": {"trust": "not an object"}}) is not None
    assert errors.of({"metadata": {}, "spec": {}}) != first
