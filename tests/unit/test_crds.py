"""The generated CRDs: no drift from the API types, structural schemas, and the samples fit them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelhub.api import crdgen
from modelhub.api import types as api
from modelhub.api.common import SpecModel

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
SAMPLES = ROOT / "config" / "samples"
INVALID = ROOT / "tests" / "e2e" / "invalid"

EXPECTED_FILES = {
    "models.modelhub.dev.yaml",
    "modelversions.modelhub.dev.yaml",
    "revocations.modelhub.dev.yaml",
}
# Keys a structural schema node may carry (apiextensions.k8s.io/v1 JSONSchemaProps, as we use it).
ALLOWED_KEYS = {
    "description",
    "type",
    "format",
    "enum",
    "default",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "nullable",
}


def load_crds() -> dict[str, dict[str, Any]]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(CRDS.glob("*.yaml"))}


def schema_of(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in (node.get("properties") or {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}.*")


ALL_NODES = [
    (f"{crd['spec']['names']['kind']}{path}", node)
    for crd in load_crds().values()
    for path, node in walk(schema_of(crd))
]


# --- drift ------------------------------------------------------------------------------------------------
def test_checked_in_crds_are_exactly_what_the_types_generate():
    generated = crdgen.generate()
    assert set(generated) == EXPECTED_FILES
    assert {p.name for p in CRDS.glob("*.yaml")} == EXPECTED_FILES
    for name, text in generated.items():
        assert (CRDS / name).read_text() == text, (
            f"crds/{name} is stale: run `python -m modelhub.api.crdgen` and commit the result"
        )


def test_generation_is_deterministic():
    assert crdgen.generate() == crdgen.generate()


def test_check_mode(tmp_path, capsys):
    assert crdgen.main(["--out", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} == EXPECTED_FILES
    assert crdgen.main(["--out", str(tmp_path), "--check"]) == 0
    target = tmp_path / "revocations.modelhub.dev.yaml"
    target.write_text(target.read_text().replace("shortNames:\n    - rvk", "shortNames:\n    - rv"))
    capsys.readouterr()
    assert crdgen.main(["--out", str(tmp_path), "--check"]) == 1
    out = capsys.readouterr().out
    assert "-    - rv\n" in out and "+    - rvk\n" in out
    target.unlink()
    assert crdgen.main(["--out", str(tmp_path), "--check"]) == 1


def test_check_mode_against_the_repository():
    assert crdgen.main(["--out", str(CRDS), "--check"]) == 0


# --- structural schema ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "node"), ALL_NODES, ids=[p for p, _ in ALL_NODES])
def test_every_node_is_structural(path, node):
    assert set(node) <= ALLOWED_KEYS, f"{path}: unexpected keys {set(node) - ALLOWED_KEYS}"
    has_type = isinstance(node.get("type"), str)
    assert (
        has_type or node.get("x-kubernetes-preserve-unknown-fields") or node.get("x-kubernetes-int-or-string")
    ), f"{path}: no type"
    if node.get("x-kubernetes-int-or-string"):
        assert "type" not in node
    assert not ("properties" in node and "additionalProperties" in node), (
        f"{path}: properties and additionalProperties"
    )
    if "properties" in node or "additionalProperties" in node:
        assert node["type"] == "object"
    if node.get("type") == "array":
        assert isinstance(node.get("items"), dict), f"{path}: array without items"
    for name in node.get("required", []):
        assert name in node.get("properties", {}), f"{path}: required {name} is not a property"
    if "default" in node:
        assert node["default"] is not None
    if "enum" in node:
        assert node["type"] == "string" and all(isinstance(v, str) for v in node["enum"])


def test_no_json_schema_leftovers():
    text = "\n".join(p.read_text() for p in CRDS.glob("*.yaml"))
    for leftover in (
        "$ref",
        "$defs",
        "anyOf",
        "allOf",
        "oneOf",
        "title:",
        "const:",
        "exclusiveM",
        "nullable",
    ):
        assert leftover not in text


def test_every_field_has_a_description():
    for crd in load_crds().values():
        for path, node in walk(schema_of(crd)):
            for name, sub in (node.get("properties") or {}).items():
                if path == "" and name == "metadata":
                    continue
                assert sub.get("description", "").strip(), f"{crd['metadata']['name']}{path}.{name}"


def test_metadata_is_left_to_the_api_server():
    for crd in load_crds().values():
        assert schema_of(crd)["properties"]["metadata"] == {"type": "object"}


def test_a_missing_description_fails_generation():
    from pydantic import Field

    class Spec(SpecModel):
        documented: int = Field(description="yes")
        undocumented: int = 0

    class Thing(api.Resource):
        info = api.ResourceInfo(kind="Thing", plural="things", singular="thing", scope="Namespaced")
        spec: Spec = Field(description="spec")

    with pytest.raises(crdgen.SchemaError, match=r"Thing\.spec\.undocumented"):
        crdgen.openapi_schema(Thing)


def test_numeric_exclusive_bounds_are_refused():
    from pydantic import Field

    class Thing(api.Resource):
        info = api.ResourceInfo(kind="Thing", plural="things", singular="thing", scope="Namespaced")
        spec: int = Field(gt=0, description="spec")

    with pytest.raises(crdgen.SchemaError, match="ge/le"):
        crdgen.openapi_schema(Thing)


# --- CEL and list markers ---------------------------------------------------------------------------------
def _descendants(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for _, sub in walk(node):
        yield sub


def test_cel_rules_only_see_bounded_values():
    """The API server rejects rules whose estimated cost is unbounded: every string and list a rule can
    reach must carry maxLength / maxItems (enums and formats are bounded by themselves)."""
    found = 0
    for path, node in ALL_NODES:
        if not node.get("x-kubernetes-validations") or path.count(".") == 0:
            continue  # root rules read metadata.name only, which the API server bounds
        found += 1
        for sub in _descendants(node):
            if sub.get("type") == "string" and "enum" not in sub:
                assert "maxLength" in sub, f"{path}: unbounded string under a CEL rule"
            if sub.get("type") == "array":
                assert "maxItems" in sub, f"{path}: unbounded list under a CEL rule"
    assert found >= 8


def test_transition_rules_are_on_correlatable_fields():
    for path, node in ALL_NODES:
        for rule in node.get("x-kubernetes-validations", []):
            if "oldSelf" in rule["rule"]:
                assert "[]" not in path, f"{path}: transition rule inside an atomic list"
                assert rule["message"].endswith("is immutable") or "is immutable:" in rule["message"]


def test_immutable_fields():
    immutables = {
        path
        for path, node in ALL_NODES
        for rule in node.get("x-kubernetes-validations", [])
        if rule["rule"] == "self == oldSelf"
    }
    assert immutables == {
        "ModelVersion.spec.model",
        "ModelVersion.spec.version",
        "ModelVersion.spec.artifact",
        "Revocation.spec.match",
    }


def test_conditions_are_a_map_keyed_by_type():
    for crd in load_crds().values():
        conds = schema_of(crd)["properties"]["status"]["properties"]["conditions"]
        assert conds["x-kubernetes-list-type"] == "map"
        assert conds["x-kubernetes-list-map-keys"] == ["type"]
        item = conds["items"]
        assert {"type", "status"} <= set(item["required"])
        assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
        assert item["properties"]["lastTransitionTime"]["format"] == "date-time"


def test_free_form_objects_preserve_unknown_fields():
    model = schema_of(load_crds()["models.modelhub.dev.yaml"])
    affinity = model["properties"]["spec"]["properties"]["serving"]["properties"]["affinity"]
    assert affinity == {
        "description": affinity["description"],
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    limits = model["properties"]["spec"]["properties"]["serving"]["properties"]["runtime"]["properties"][
        "resources"
    ]["properties"]["limits"]
    assert limits["additionalProperties"]["x-kubernetes-int-or-string"] is True


# --- names, scope, columns --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("file", "kind", "scope", "short", "columns"),
    [
        ("models.modelhub.dev.yaml", "Model", "Namespaced", "mdl",
         ["Stable", "Canary", "Weight", "Traffic", "Ready", "Age"]),
        (
            "modelversions.modelhub.dev.yaml",
            "ModelVersion",
            "Namespaced",
            "mv",
            ["Model", "Version", "Verified", "Approved", "Ready", "Replicas", "Age"],
        ),
        (
            "revocations.modelhub.dev.yaml",
            "Revocation",
            "Cluster",
            "rvk",
            ["Reason", "Matched", "Enforced", "Seconds", "Age"],
        ),
    ],
)
def test_names_scope_and_columns(file, kind, scope, short, columns):
    crd = load_crds()[file]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == file.removesuffix(".yaml")
    spec = crd["spec"]
    assert spec["group"] == "modelhub.dev" and spec["scope"] == scope
    assert spec["names"]["kind"] == kind and spec["names"]["listKind"] == f"{kind}List"
    assert spec["names"]["shortNames"] == [short] and spec["names"]["categories"] == ["modelhub"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    cols = version["additionalPrinterColumns"]
    assert [c["name"] for c in cols] == columns
    for col in cols:
        assert col["jsonPath"].startswith(".") and col["type"] in {"string", "integer", "number", "date"}
    assert [c["jsonPath"] for c in cols if c["name"] == "Ready" or c["name"] == "Enforced"] in (
        [],
        ['.status.conditions[?(@.type=="Ready")].status'],
        ['.status.conditions[?(@.type=="Enforced")].status'],
    )


# --- samples against the generated schema (a small OpenAPI validator: types, required, enum, patterns, bounds,
# unknown fields) -------------------------------------------------------------------------------------------
def validate(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    errors: list[str] = []
    if schema.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))):
            return [f"{path}: not int-or-string"]
        if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: pattern")
        return errors
    kind = schema.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
    }
    if kind and not checks[kind](value):
        return [f"{path}: expected {kind}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: not in enum")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: does not match pattern")
        if len(value) > schema.get("maxLength", 1 << 30) or len(value) < schema.get("minLength", 0):
            errors.append(f"{path}: length")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < schema.get("minimum", float("-inf")) or value > schema.get("maximum", float("inf")):
            errors.append(f"{path}: out of range")
    if isinstance(value, list):
        if len(value) > schema.get("maxItems", 1 << 30):
            errors.append(f"{path}: too many items")
        for i, item in enumerate(value):
            errors += validate(item, schema["items"], f"{path}[{i}]")
    opaque = "properties" not in schema and "additionalProperties" not in schema  # metadata
    if isinstance(value, dict) and not schema.get("x-kubernetes-preserve-unknown-fields") and not opaque:
        props = schema.get("properties")
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path}.{name}: required")
        for name, sub in value.items():
            if props is not None and name in props:
                errors += validate(sub, props[name], f"{path}.{name}")
            elif "additionalProperties" in schema:
                errors += validate(sub, schema["additionalProperties"], f"{path}.{name}")
            elif not (path == "" and name in ("apiVersion", "kind", "metadata")):
                errors.append(f"{path}.{name}: unknown field")
    return errors


SCHEMAS = {crd["spec"]["names"]["kind"]: schema_of(crd) for crd in load_crds().values()}
SAMPLE_OBJECTS = [
    d
    for p in sorted(SAMPLES.glob("*.yaml"))
    for d in yaml.safe_load_all(p.read_text())
    if d and d["apiVersion"].startswith("modelhub.dev/")
]


@pytest.mark.parametrize("obj", SAMPLE_OBJECTS, ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_samples_fit_the_schema_and_the_types(obj):
    assert validate(obj, SCHEMAS[obj["kind"]]) == []
    api.parse_resource(obj)


def test_the_schema_validator_sees_invalid_fixtures():
    """Sanity check of the validator above: the single-document invalid fixtures that break a schema keyword
    (rather than a CEL rule) are refused by it too."""
    refused = 0
    for path in sorted(INVALID.glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        if len(docs) == 1 and validate(docs[0], SCHEMAS[docs[0]["kind"]]):
            refused += 1
    assert refused >= 25


# --- selectable fields (kubectl get --field-selector) ---------------------------------------------------
@pytest.mark.parametrize(
    ("file", "paths"),
    [
        ("models.modelhub.dev.yaml", [".spec.card.task", ".spec.card.license", ".spec.card.owner"]),
        ("modelversions.modelhub.dev.yaml", [".spec.model"]),
    ],
)
def test_selectable_fields_are_scalar_schema_fields(file, paths):
    crd = load_crds()[file]
    (version,) = crd["spec"]["versions"]
    assert [f["jsonPath"] for f in version["selectableFields"]] == paths
    for path in paths:
        node = schema_of(crd)
        for part in path.lstrip(".").split("."):
            node = node["properties"][part]
        assert node["type"] == "string"


def test_revocations_have_no_selectable_fields():
    (version,) = load_crds()["revocations.modelhub.dev.yaml"]["spec"]["versions"]
    assert "selectableFields" not in version


def test_a_selectable_field_outside_the_schema_or_not_scalar_fails_generation():
    schema = crdgen.openapi_schema(api.Model)
    with pytest.raises(crdgen.SchemaError, match="not in the schema"):
        crdgen._check_selectable(schema, ".spec.card.nope", "Model")
    with pytest.raises(crdgen.SchemaError, match="not a scalar"):
        crdgen._check_selectable(schema, ".spec.card", "Model")
