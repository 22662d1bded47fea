"""The ``Model`` resource: the identity of a model, who may sign it, how it is served, which version runs."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from modelhub.api.common import (
    AGE_COLUMN,
    CONFIGMAP_KEY_PATTERN,
    DNS1123_LABEL_PATTERN,
    DNS1123_SUBDOMAIN_PATTERN,
    Condition,
    PrinterColumn,
    Resource,
    ResourceInfo,
    SpecModel,
    StatusModel,
    cel,
    condition_column,
    conditions_field,
)
from modelhub.api.semver import SEMVER_PATTERN
from modelhub.api.serving import Serving
from modelhub.vocab import conditions as C

SEMVER_MAX = 128
HISTORY_MAX = 20


class ModelCard(SpecModel):
    """A short model card: what the model is, who owns it, and how it may and may not be used."""

    description: str | None = Field(default=None, max_length=8192, description="What the model does.")
    owner: str | None = Field(default=None, max_length=256, description="Team or person accountable for it.")
    task: str | None = Field(
        default=None, max_length=128, description="The ML task, for example text-classification."
    )
    license: str | None = Field(default=None, max_length=128, description="License, ideally an SPDX identifier.")
    tags: list[str] = Field(
        default_factory=list, max_length=64, description="Free-form labels for search and dashboards."
    )
    intended_use: str | None = Field(default=None, max_length=8192, description="Uses the model is meant for.")
    out_of_scope_use: str | None = Field(
        default=None, max_length=8192, description="Uses the model must not be put to."
    )
    limitations: str | None = Field(
        default=None, max_length=8192, description="Known limitations, biases and failure modes."
    )
    contact: str | None = Field(default=None, max_length=256, description="Where to ask questions or report issues.")


class TrustedKey(SpecModel):
    """A ConfigMap in the Model's namespace holding PEM public keys allowed to sign versions."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS1123_SUBDOMAIN_PATTERN,
        description="Name of the ConfigMap, in the same namespace as the Model.",
    )
    key: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=CONFIGMAP_KEY_PATTERN,
        description="The data key holding one PEM public key. When omitted, every data entry of the "
        "ConfigMap is a trusted PEM public key.",
    )


class TrustedCertificateAuthority(SpecModel):
    """A ConfigMap in the Model's namespace holding PEM CA certificates: a version signed with a certificate
    (the OpenSSF Model Signing certificate method) whose chain leads to one of them is trusted."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS1123_SUBDOMAIN_PATTERN,
        description="Name of the ConfigMap, in the same namespace as the Model.",
    )
    key: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=CONFIGMAP_KEY_PATTERN,
        description="The data key holding PEM CA certificates (one or several, concatenated). When omitted, "
        "every data entry of the ConfigMap holds trusted PEM CA certificates.",
    )


class Trust(SpecModel):
    """Who may sign this Model's versions. A version is verified only if its signature bundle was made by
    one of these keys, or with a certificate chaining to one of these certificate authorities, and its signed
    digest equals spec.artifact.digest."""

    keys: list[TrustedKey] = Field(
        default_factory=list,
        max_length=32,
        description="ConfigMaps with trusted PEM public keys (ECDSA P-256/P-384/P-521). With neither keys nor "
        "certificateAuthorities, no version of this Model can be verified, so none is served.",
    )
    certificate_authorities: list[TrustedCertificateAuthority] = Field(
        default_factory=list,
        max_length=32,
        description="ConfigMaps with trusted PEM CA certificates (roots, or intermediates used as trust "
        "anchors): a bundle signed with a certificate (verificationMaterial.x509CertificateChain) verifies when "
        "its chain leads to one of them. Instead of, or beside, keys.",
    )
    require_approval: bool = Field(
        default=False,
        description="When true, a verified version is served only after it was approved (status.approval); "
        "when false, verified versions count as approved.",
    )


class Canary(SpecModel):
    """A second version that receives a share of the serving replicas."""

    version: str = Field(
        pattern=SEMVER_PATTERN,
        max_length=SEMVER_MAX,
        description="The canary version (spec.version of a ModelVersion of this Model); must differ from stable.",
    )
    weight: int = Field(
        ge=0,
        le=100,
        description="Percentage (0-100) of requests for the canary. With spec.promotion.trafficRouting (and "
        "its API served), the HTTPRoute's backend weights are 100-weight (stable) and weight (canary); otherwise "
        "it is the share of spec.serving.replicas that run the canary behind the one Service.",
    )


HOSTNAME_PATTERN = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
PATH_PREFIX_PATTERN = r"^/[^\s?#]*$"


class ParentRef(SpecModel):
    """A Gateway (or a listener of one: sectionName) the HTTPRoute attaches to, as a Gateway API parentRef."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Gateway.")
    namespace: str | None = Field(
        default=None, min_length=1, max_length=63, pattern=DNS1123_LABEL_PATTERN,
        description="Namespace of the Gateway; the Model's namespace when omitted (another namespace's Gateway "
        "must allow routes from this one).",
    )
    section_name: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN_PATTERN,
        description="The listener of the Gateway to attach to; every listener that allows it when omitted.",
    )
    port: int | None = Field(default=None, ge=1, le=65535, description="The listener port to attach to.")


class HTTPRouteRouting(SpecModel):
    """Split requests by weight through one Gateway API HTTPRoute (gateway.networking.k8s.io/v1) named after
    the Model, whose backends are one Service per served version."""

    parent_refs: list[ParentRef] = Field(
        min_length=1, max_length=32, description="The Gateways the HTTPRoute attaches to."
    )
    hostnames: list[Annotated[str, Field(min_length=1, max_length=253, pattern=HOSTNAME_PATTERN)]] = Field(
        default_factory=list, max_length=16,
        description="Host names the route matches (Gateway API hostnames; a leading '*.' is a wildcard); "
        "every host the Gateway serves when empty.",
    )
    path_prefix: str = Field(
        default="/", min_length=1, max_length=1024, pattern=PATH_PREFIX_PATTERN,
        description="The path prefix the route matches (PathPrefix).",
    )


class TrafficRouting(SpecModel):
    """How requests are split between the stable and the canary version. Without it (or while the router's
    API is not served by the cluster) the canary weight is a share of replicas behind the one Service."""

    http_route: HTTPRouteRouting | None = Field(
        default=None, description="Weighted split through a Gateway API HTTPRoute."
    )


class Promotion(SpecModel):
    """Which versions run. Only verified, approved and unrevoked versions are ever served."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.canary) || !has(self.stable) || self.canary.version != self.stable",
                    "spec.promotion.canary.version must differ from spec.promotion.stable",
                    ".canary.version",
                )
            ]
        }
    )

    stable: str | None = Field(
        default=None,
        pattern=SEMVER_PATTERN,
        max_length=SEMVER_MAX,
        description="The version that serves traffic (spec.version of a ModelVersion of this Model), for "
        "example 1.4.2.",
    )
    canary: Canary | None = Field(
        default=None, description="Optional canary: another version that receives a share of the replicas."
    )
    traffic_routing: TrafficRouting | None = Field(
        default=None,
        description="Optional traffic router: split requests by canary weight through a Gateway API HTTPRoute "
        "instead of by replicas.",
    )
    on_revocation: Literal["rollback", "none"] = Field(
        default="rollback",
        description="What to do when the stable version is revoked. rollback: serve the newest verified, "
        "approved, unrevoked version instead. none: serve nothing until spec.promotion.stable is changed.",
    )

    @model_validator(mode="after")
    def _canary_differs(self) -> Promotion:
        if self.canary is not None and self.stable is not None and self.canary.version == self.stable:
            raise ValueError("spec.promotion.canary.version must differ from spec.promotion.stable")
        return self


class ModelSpec(SpecModel):
    """The desired state of a Model: its card, its trusted signing keys, serving defaults and promotion."""

    card: ModelCard | None = Field(default=None, description="The model card: description, owner, intended use.")
    trust: Trust | None = Field(
        default=None,
        description="Public keys and certificate authorities allowed to sign this Model's versions, and whether "
        "approval is needed.",
    )
    serving: Serving | None = Field(
        default=None,
        description="Serving defaults for every version of this Model; a ModelVersion may override them.",
    )
    promotion: Promotion | None = Field(
        default=None, description="Which version is stable, which is canary, and what happens on revocation."
    )


# --- status -----------------------------------------------------------------------------------------------
class ServedVersion(StatusModel):
    """A version that currently has a workload."""

    version: str = Field(max_length=SEMVER_MAX, description="The served version.")
    role: Literal["stable", "canary"] = Field(description="stable or canary.")
    replicas: int = Field(default=0, ge=0, description="Desired replicas of this version.")
    ready_replicas: int = Field(default=0, ge=0, description="Replicas that are ready to serve.")


class VersionCounts(StatusModel):
    """How many ModelVersions of this Model exist, by state."""

    total: int = Field(default=0, ge=0, description="All versions of this Model.")
    verified: int = Field(default=0, ge=0, description="Versions whose signature was verified.")
    approved: int = Field(default=0, ge=0, description="Versions that are approved.")
    revoked: int = Field(default=0, ge=0, description="Versions revoked by a Revocation.")


class PromotionRecord(StatusModel):
    """One change of the served versions."""

    at: str = Field(json_schema_extra={"format": "date-time"}, description="When the change took effect.")
    stable: str | None = Field(default=None, max_length=SEMVER_MAX, description="The stable version after it.")
    canary: str | None = Field(default=None, max_length=SEMVER_MAX, description="The canary version after it.")
    canary_weight: int | None = Field(default=None, ge=0, le=100, description="The canary weight after it.")
    reason: str | None = Field(
        default=None, max_length=1024, description="Why: Promoted, Rollback, Revoked, and a detail."
    )


class TrafficBackend(StatusModel):
    """One backend of the traffic split as applied."""

    service: str = Field(max_length=253, description="The Service of this version (a backendRef of the route).")
    version: str = Field(max_length=SEMVER_MAX, description="The version its pods serve.")
    role: Literal["stable", "canary", "previous"] = Field(
        description="stable, canary, or previous: a version handing over to its successor until that is ready."
    )
    weight: int = Field(ge=0, le=100, description="The backend weight applied (percent of requests).")


class TrafficStatus(StatusModel):
    """Which traffic mode is in force and the weights actually applied."""

    mode: Literal["HTTPRoute", "Replicas"] = Field(
        description="HTTPRoute: requests are split by the backend weights of the HTTPRoute. Replicas: the "
        "canary weight is a share of replicas behind the Model's Service (no router requested, or its API is "
        "not served)."
    )
    backends: list[TrafficBackend] = Field(
        default_factory=list, max_length=8, description="The route's backends and their weights (HTTPRoute mode)."
    )


class ModelStatus(StatusModel):
    """The observed state of a Model, written by the operator."""

    conditions: list[Condition] = conditions_field("Ready, Progressing, TrafficRouted")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation this status was computed from."
    )
    stable_version: str | None = Field(
        default=None, max_length=SEMVER_MAX, description="The stable version actually served."
    )
    canary_version: str | None = Field(
        default=None, max_length=SEMVER_MAX, description="The canary version actually served."
    )
    canary_weight: int | None = Field(
        default=None, ge=0, le=100, description="The canary weight actually applied (0 without a canary)."
    )
    serving: list[ServedVersion] = Field(
        default_factory=list, max_length=16, description="Versions with a workload, and their replicas."
    )
    traffic: TrafficStatus | None = Field(
        default=None, description="The traffic mode in force (HTTPRoute or Replicas) and the applied weights."
    )
    versions: VersionCounts | None = Field(default=None, description="Counts of this Model's versions by state.")
    history: list[PromotionRecord] = Field(
        default_factory=list,
        max_length=HISTORY_MAX,
        description=f"The last {HISTORY_MAX} changes of the served versions, oldest first.",
    )


_NAME_RE = re.compile(DNS1123_LABEL_PATTERN)


class Model(Resource):
    """A Model is the identity of an ML model in a namespace and its governance: the model card, the public
    keys allowed to sign its versions (ModelVersions), the serving defaults, and which version is promoted
    to stable or canary. The operator serves only versions whose signature verifies against these keys."""

    info: ClassVar[ResourceInfo] = ResourceInfo(
        kind="Model",
        plural="models",
        singular="model",
        scope="Namespaced",
        short_names=("mdl",),
        printer_columns=(
            PrinterColumn("Stable", ".status.stableVersion", description="The stable version being served."),
            PrinterColumn("Canary", ".status.canaryVersion", description="The canary version being served."),
            PrinterColumn("Weight", ".status.canaryWeight", type="integer",
                          description="The canary weight applied (percent)."),
            PrinterColumn("Traffic", ".status.traffic.mode",
                          description="How the canary weight is split: HTTPRoute (requests) or Replicas."),
            condition_column("Ready", C.READY),
            AGE_COLUMN,
        ),
        # kubectl get models --field-selector spec.card.task=text-classification (a hub search)
        selectable_fields=(".spec.card.task", ".spec.card.license", ".spec.card.owner"),
    )
    #: Root-level CEL: the name feeds a Service name and label values, which are DNS-1123 labels.
    root_validations: ClassVar[list[dict[str, Any]]] = [
        cel(
            "size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
            "metadata.name of a Model must be a DNS-1123 label (at most 63 lowercase letters, digits or '-'), "
            "because it names the model's Service and pod labels",
        )
    ]

    spec: ModelSpec = Field(default_factory=ModelSpec, description="The desired state of the Model.")
    status: ModelStatus | None = Field(default=None, description="The observed state, written by the operator.")

    @model_validator(mode="after")
    def _check_name(self) -> Model:
        name: Any = self.metadata.get("name")
        if name is not None and (not isinstance(name, str) or len(name) > 63 or not _NAME_RE.fullmatch(name)):
            raise ValueError(
                "metadata.name of a Model must be a DNS-1123 label (at most 63 lowercase letters, digits or "
                "'-'), because it names the model's Service and pod labels"
            )
        return self


__all__ = [
    "Canary",
    "HTTPRouteRouting",
    "Model",
    "ModelCard",
    "ModelSpec",
    "ModelStatus",
    "ParentRef",
    "Promotion",
    "PromotionRecord",
    "ServedVersion",
    "TrafficBackend",
    "TrafficRouting",
    "TrafficStatus",
    "Trust",
    "TrustedCertificateAuthority",
    "TrustedKey",
    "VersionCounts",
]
