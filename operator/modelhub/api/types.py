"""All API types of modelhub.dev/v1alpha1 in one namespace: ``from modelhub.api import types as api``.

The resources are :class:`Model`, :class:`ModelVersion` and :class:`Revocation`; each has a ``*Spec`` and a
``*Status``. Parse a whole object with ``Model.model_validate(obj)`` or a spec with
``ModelSpec.model_validate(spec)`` (pydantic ``ValidationError`` on bad input), or use :func:`parse_resource` /
:func:`parse_spec`, which raise :class:`InvalidResource` with one ``<field path>: <problem>`` line per error.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from modelhub.api.common import (
    API_VERSION,
    GROUP,
    VERSION,
    Condition,
    InvalidResource,
    PrinterColumn,
    Resource,
    ResourceInfo,
    error_lines,
    format_validation_error,
)
from modelhub.api.model import (
    Canary,
    Model,
    ModelCard,
    ModelSpec,
    ModelStatus,
    Promotion,
    PromotionRecord,
    ServedVersion,
    Trust,
    TrustedCertificateAuthority,
    TrustedKey,
    VersionCounts,
)
from modelhub.api.modelversion import (
    SIGNATURE_FILE,
    Approval,
    Artifact,
    CodeRef,
    ConfigMapKeyRef,
    Dataset,
    Evaluation,
    Lineage,
    Metric,
    ModelVersion,
    ModelVersionSpec,
    ModelVersionStatus,
    RevocationRef,
    SignatureSource,
    Verified,
    Workload,
)
from modelhub.api.revocation import (
    AffectedVersion,
    ModelSelector,
    Revocation,
    RevocationMatch,
    RevocationSpec,
    RevocationStatus,
)
from modelhub.api.serving import (
    Accelerator,
    EnvVar,
    ResourceRequirements,
    Runtime,
    RuntimeOverrides,
    Serving,
    ServingOverrides,
    Toleration,
)

#: The three resources, in the order their CRDs are generated.
RESOURCES: tuple[type[Resource], ...] = (Model, ModelVersion, Revocation)
RESOURCES_BY_KIND: dict[str, type[Resource]] = {r.info.kind: r for r in RESOURCES}

T = TypeVar("T", bound=BaseModel)


def parse_spec(cls: type[T], spec: Any, path: str = "spec") -> T:
    """Validate ``spec`` (a dict) as ``cls``; raise :class:`InvalidResource` with field paths under ``path``."""
    try:
        return cls.model_validate(spec if spec is not None else {})
    except ValidationError as exc:
        raise InvalidResource(error_lines(exc, path)) from None


class SpecErrors:
    """Whether an object's spec is valid, remembered per (uid, generation): a spec changes only with its
    generation, and validating it again on every reconcile of a busy object is CPU for nothing. Bounded."""

    def __init__(self, cls: type[BaseModel], limit: int = 10_000) -> None:
        self._cls, self._limit = cls, limit
        self._seen: dict[tuple[Any, Any], str | None] = {}

    def of(self, obj: dict[str, Any]) -> str | None:
        """The spec's validation errors (one text), or None when it is valid."""
        m = obj.get("metadata") or {}
        key = (m.get("uid"), m.get("generation"))
        if key[0] is not None and key[1] is not None and key in self._seen:
            return self._seen[key]
        try:
            parse_spec(self._cls, obj.get("spec"))
            found = None
        except InvalidResource as exc:
            found = str(exc)
        if key[0] is not None and key[1] is not None:
            if len(self._seen) >= self._limit:
                self._seen.clear()
            self._seen[key] = found
        return found


def parse_resource(obj: dict[str, Any]) -> Resource:
    """Validate a whole object (apiVersion, kind, metadata, spec, status) as the resource its ``kind`` names."""
    kind = obj.get("kind") if isinstance(obj, dict) else None
    cls = RESOURCES_BY_KIND.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InvalidResource([f"kind: must be one of {', '.join(RESOURCES_BY_KIND)}, not {kind!r}"])
    try:
        return cls.model_validate(obj)
    except ValidationError as exc:
        raise InvalidResource(error_lines(exc)) from None


__all__ = [
    "API_VERSION",
    "GROUP",
    "RESOURCES",
    "RESOURCES_BY_KIND",
    "SIGNATURE_FILE",
    "VERSION",
    "Accelerator",
    "AffectedVersion",
    "Approval",
    "Artifact",
    "Canary",
    "CodeRef",
    "Condition",
    "ConfigMapKeyRef",
    "Dataset",
    "EnvVar",
    "Evaluation",
    "InvalidResource",
    "Lineage",
    "Metric",
    "Model",
    "ModelCard",
    "ModelSelector",
    "ModelSpec",
    "ModelStatus",
    "ModelVersion",
    "ModelVersionSpec",
    "ModelVersionStatus",
    "PrinterColumn",
    "Promotion",
    "PromotionRecord",
    "Resource",
    "ResourceInfo",
    "ResourceRequirements",
    "Revocation",
    "RevocationMatch",
    "RevocationRef",
    "RevocationSpec",
    "RevocationStatus",
    "Runtime",
    "RuntimeOverrides",
    "ServedVersion",
    "Serving",
    "ServingOverrides",
    "SignatureSource",
    "Toleration",
    "Trust",
    "TrustedCertificateAuthority",
    "TrustedKey",
    "Verified",
    "VersionCounts",
    "Workload",
    "error_lines",
    "format_validation_error",
    "parse_resource",
    "parse_spec",
]
