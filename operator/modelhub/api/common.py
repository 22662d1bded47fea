"""Shared building blocks of the API types: base classes, patterns, conditions, resource metadata, errors.

Every pattern here is written in the common subset of Python ``re``, Rust ``regex`` (pydantic's validator)
and Go RE2 (the API server's OpenAPI validation), so pydantic and the CRD schema accept the same strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from modelhub.api.semver import RANGE_PATTERN, SEMVER_PATTERN

GROUP = "modelhub.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# --- patterns ---------------------------------------------------------------------------------------------
DIGEST_PATTERN = r"^sha256:[a-f0-9]{64}$"
DIGEST_MAX = 71
FINGERPRINT_PATTERN = r"^[a-f0-9]{64}$"
COMMIT_PATTERN = r"^[a-f0-9]{7,64}$"
DNS1123_LABEL_PATTERN = r"^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN_PATTERN = (
    r"^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$"
)
CONFIGMAP_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
_PVC_CLAIM = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*"
_S3_BUCKET = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
#: Where an artifact (or a signature bundle) can live: a local file, a path in a PersistentVolumeClaim of the
#: same namespace, an HTTPS URL, or an S3 object.
ARTIFACT_URI_PATTERN = (
    r"^(?:file:///\S+"
    rf"|pvc://{_PVC_CLAIM}/\S*"
    r"|https://[^\s/?#]+(?:[/?#]\S*)?"
    rf"|s3://{_S3_BUCKET}/\S+)$"
)
#: ``..`` as a whole path segment (for the "no path traversal" rule).
DOTDOT_SEGMENT_PATTERN = r"(?:^|/)\.\.(?:/|$)"
GENERIC_URI_PATTERN = r"^[a-zA-Z][a-zA-Z0-9+.-]*://\S+$"
QUANTITY_PATTERN = (
    r"^(?:\+|-)?(?:(?:[0-9]+(?:\.[0-9]*)?)|(?:\.[0-9]+))"
    r"(?:(?:[KMGTPE]i)|[numkMGTPE]|(?:[eE](?:\+|-)?(?:(?:[0-9]+(?:\.[0-9]*)?)|(?:\.[0-9]+))))?$"
)
NO_SPACE_PATTERN = r"^\S+$"
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
CONDITION_TYPE_PATTERN = r"^[A-Z][A-Za-z0-9]*$"
CONDITION_REASON_PATTERN = r"^[A-Za-z](?:[A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

#: Human explanations of the patterns, used in error messages instead of the raw regular expression.
PATTERN_HINTS: dict[str, str] = {
    DIGEST_PATTERN: "a sha256 digest: 'sha256:' followed by 64 lowercase hex characters",
    FINGERPRINT_PATTERN: "a key fingerprint: 64 lowercase hex characters (sha256 of the public key PEM)",
    COMMIT_PATTERN: "a git commit: 7 to 64 lowercase hex characters",
    DNS1123_LABEL_PATTERN: "a DNS-1123 label: lowercase letters, digits and '-', starting and ending "
    "with a letter or digit",
    DNS1123_SUBDOMAIN_PATTERN: "a DNS-1123 subdomain: lowercase letters, digits, '-' and '.'",
    CONFIGMAP_KEY_PATTERN: "a ConfigMap key: letters, digits, '-', '_' and '.'",
    ARTIFACT_URI_PATTERN: "a URI of the form file:///<path>, pvc://<claim>/<path>, https://<host>/<path> "
    "or s3://<bucket>/<key>",
    GENERIC_URI_PATTERN: "a URI with a scheme, such as https://host/path",
    QUANTITY_PATTERN: "a Kubernetes quantity such as 500m, 2, 4Gi",
    NO_SPACE_PATTERN: "a non-empty string without whitespace",
    ENV_NAME_PATTERN: "an environment variable name: letters, digits, '-', '_' and '.', not starting with a digit",
    CONDITION_TYPE_PATTERN: "a CamelCase condition type",
    CONDITION_REASON_PATTERN: "a CamelCase reason",
    SEMVER_PATTERN: "a SemVer 2.0 version such as 1.2.3 or 1.0.0-rc.1 (no leading 'v')",
    RANGE_PATTERN: "a version range: comma-separated comparators such as '>=1.2.0,<1.3.1' "
    "(operators >=, <=, >, <, =, ==, != followed by a SemVer version)",
}


def cel(rule: str, message: str, field_path: str | None = None, reason: str | None = None) -> dict[str, Any]:
    """One ``x-kubernetes-validations`` entry (a CEL rule evaluated by the API server)."""
    out: dict[str, Any] = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    if reason:
        out["reason"] = reason
    return out


def immutable(path: str) -> dict[str, Any]:
    """``json_schema_extra`` for a field that cannot change once set."""
    return {"x-kubernetes-validations": [cel("self == oldSelf", f"{path} is immutable")]}


# --- base classes -----------------------------------------------------------------------------------------
class SpecModel(BaseModel):
    """Base of everything a user writes: camelCase names, unknown fields are errors."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        strict=True,  # like the API server: "2" is not an integer, 1 is not a string
        validate_default=False,
        str_strip_whitespace=False,
    )

    @model_validator(mode="before")
    @classmethod
    def _accept_mappings(cls, data: Any) -> Any:
        # kopf hands out Body/Spec/Status views (Mappings, not dicts); strict mode would refuse them.
        if isinstance(data, Mapping) and not isinstance(data, dict):
            return dict(data)
        return data

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (camelCase, unset optional fields omitted), as it would appear in the cluster."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class StatusModel(SpecModel):
    """Base of status types. The operator writes status; unknown fields are errors here too (the API server
    prunes fields the schema does not know, so an unknown field means a bug in the writer)."""


# --- conditions -------------------------------------------------------------------------------------------
class Condition(StatusModel):
    """One aspect of the object's state, in the standard Kubernetes shape (like metav1.Condition)."""

    type: str = Field(
        pattern=CONDITION_TYPE_PATTERN,
        max_length=316,
        description="Which aspect this condition describes, in CamelCase (for example Ready). "
        "There is at most one condition of each type.",
    )
    status: Literal["True", "False", "Unknown"] = Field(
        description="True, False or Unknown (not yet determined)."
    )
    reason: str | None = Field(
        default=None,
        max_length=1024,
        pattern=CONDITION_REASON_PATTERN,
        description="A CamelCase, machine-readable reason for the last transition (for example "
        "SignatureMismatch).",
    )
    message: str | None = Field(
        default=None,
        max_length=32768,
        description="A human-readable explanation, with the details needed to act on it.",
    )
    last_transition_time: str | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description="When status last changed (RFC 3339). Unchanged while status stays the same.",
    )
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="The metadata.generation of the object this condition was computed from; when it is "
        "lower than the current generation the condition is stale.",
    )


def conditions_field(types: str) -> Any:
    """The ``conditions`` field of a status: a list keyed by ``type`` (server-side apply merges by type)."""
    return Field(
        default_factory=list,
        max_length=32,
        description=f"The current state of this object, one condition per type ({types}).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


# --- resource metadata ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PrinterColumn:
    """A column of ``kubectl get``."""

    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            out["description"] = self.description
        if self.priority:
            out["priority"] = self.priority
        return out


def condition_column(name: str, condition_type: str, description: str = "") -> PrinterColumn:
    """A printer column showing the status of the condition of ``condition_type``."""
    return PrinterColumn(
        name=name,
        json_path=f'.status.conditions[?(@.type=="{condition_type}")].status',
        description=description or f"Status of the {condition_type} condition.",
    )


AGE_COLUMN = PrinterColumn(name="Age", json_path=".metadata.creationTimestamp", type="date")


@dataclass(frozen=True)
class ResourceInfo:
    """How a resource is named and listed in the API (the CRD's names, scope and printer columns)."""

    kind: str
    plural: str
    singular: str
    scope: Literal["Namespaced", "Cluster"]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ("modelhub",)
    printer_columns: tuple[PrinterColumn, ...] = field(default=())
    #: JSON paths (``.spec.x``) that ``kubectl get --field-selector`` may filter on (the CRD's
    #: ``selectableFields``); each must be a string, integer or boolean field of the schema.
    selectable_fields: tuple[str, ...] = ()
    group: str = GROUP
    version: str = VERSION

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def namespaced(self) -> bool:
        return self.scope == "Namespaced"


class Resource(SpecModel):
    """Base of the three top-level resources; subclasses set ``info`` and declare ``spec`` and ``status``."""

    info: ClassVar[ResourceInfo]
    #: CEL rules on the whole object (they may read metadata.name), added to the CRD's root schema.
    root_validations: ClassVar[list[dict[str, Any]]] = []

    api_version: str = Field(
        default=API_VERSION,
        description="APIVersion defines the versioned schema of this representation of an object.",
    )
    kind: str = Field(default="", description="Kind is a string value representing the REST resource.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")

    @model_validator(mode="after")
    def _check_type_meta(self) -> Resource:
        if not self.kind:
            self.kind = self.info.kind
        if self.kind != self.info.kind:
            raise ValueError(f"kind must be {self.info.kind}, not {self.kind}")
        if self.api_version != self.info.api_version:
            raise ValueError(f"apiVersion must be {self.info.api_version}, not {self.api_version}")
        return self

    @property
    def name(self) -> str | None:
        return self.metadata.get("name")

    @property
    def namespace(self) -> str | None:
        return self.metadata.get("namespace")


# --- errors -----------------------------------------------------------------------------------------------
def _loc_to_path(loc: tuple[Any, ...], prefix: str = "") -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and part.startswith(("function-", "tagged-union")):
            continue
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def _describe(err: Any) -> str:
    etype = err.get("type")
    ctx = err.get("ctx") or {}
    if etype == "missing":
        return "Required value"
    if etype == "extra_forbidden":
        return "unknown field"
    if etype == "string_pattern_mismatch":
        pattern = ctx.get("pattern", "")
        hint = PATTERN_HINTS.get(pattern)
        return f"invalid value {err.get('input')!r}: must be {hint}" if hint else err["msg"]
    msg = str(err.get("msg", ""))
    if etype == "value_error" and msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if etype == "assertion_error" and msg.startswith("Assertion failed, "):
        msg = msg[len("Assertion failed, ") :]
    return msg


def error_lines(exc: ValidationError, prefix: str = "") -> list[str]:
    """One ``<field path>: <problem>`` line per error, paths in the JSON (camelCase) form such as
    ``spec.artifact.digest`` or ``spec.serving.env[0].name``."""
    lines = []
    for err in exc.errors():
        path = _loc_to_path(tuple(err["loc"]), prefix)
        lines.append(f"{path}: {_describe(err)}" if path else _describe(err))
    return lines


def format_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """All errors of ``exc`` as one message (``; ``-separated), for a condition message or an Event."""
    return "; ".join(error_lines(exc, prefix))


class InvalidResource(ValueError):
    """A manifest that does not satisfy the API; ``errors`` holds one line per problem."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors))
