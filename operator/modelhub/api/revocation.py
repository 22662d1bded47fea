"""The ``Revocation`` resource (cluster-scoped): artifacts that must not run anywhere in the cluster."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import ConfigDict, Field, model_validator

from modelhub.api.common import (
    AGE_COLUMN,
    DIGEST_MAX,
    DIGEST_PATTERN,
    DNS1123_LABEL_PATTERN,
    FINGERPRINT_PATTERN,
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
from modelhub.api.semver import RANGE_PATTERN, matches_range
from modelhub.vocab import conditions as C

AFFECTED_MAX = 100
EMPTY_MATCH_MESSAGE = (
    "spec.match must name at least one of digests, keyFingerprints, models, datasetDigests, "
    "certificateFingerprints, certificateAuthorities"
)
MATCH_IMMUTABLE_MESSAGE = "spec.match is immutable: create a new Revocation to change what is revoked"

Digest = Annotated[str, Field(pattern=DIGEST_PATTERN, max_length=DIGEST_MAX)]
Fingerprint = Annotated[str, Field(pattern=FINGERPRINT_PATTERN, max_length=64)]


class ModelSelector(SpecModel):
    """Versions of a Model, by name, namespace and version range."""

    namespace: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        pattern=DNS1123_LABEL_PATTERN,
        description="Namespace of the Model; omitted means the Model of this name in every namespace.",
    )
    name: str = Field(
        min_length=1, max_length=63, pattern=DNS1123_LABEL_PATTERN, description="Name of the Model."
    )
    versions: str | None = Field(
        default=None,
        max_length=512,
        pattern=RANGE_PATTERN,
        description="Which versions: comma-separated comparators that must all hold, such as "
        "'>=1.2.0,<1.3.1' (operators >=, <=, >, <, =, ==, !=; none means =). Plain SemVer precedence: "
        "pre-releases are included. Omitted means every version.",
    )

    def matches(self, namespace: str, name: str, version: str) -> bool:
        """True when a ModelVersion of Model ``namespace/name`` at ``version`` is selected."""
        if self.name != name or (self.namespace is not None and self.namespace != namespace):
            return False
        return self.versions is None or matches_range(version, self.versions)


class RevocationMatch(SpecModel):
    """What is revoked: every ModelVersion matching ANY of the lists (at least one must be non-empty)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "(has(self.digests) && size(self.digests) > 0)"
                    " || (has(self.keyFingerprints) && size(self.keyFingerprints) > 0)"
                    " || (has(self.certificateFingerprints) && size(self.certificateFingerprints) > 0)"
                    " || (has(self.certificateAuthorities) && size(self.certificateAuthorities) > 0)"
                    " || (has(self.models) && size(self.models) > 0)"
                    " || (has(self.datasetDigests) && size(self.datasetDigests) > 0)",
                    EMPTY_MATCH_MESSAGE,
                )
            ]
        }
    )

    digests: list[Digest] = Field(
        default_factory=list,
        max_length=1000,
        description="Artifact digests (spec.artifact.digest, sha256:<64 hex>) of the versions to revoke.",
    )
    key_fingerprints: list[Fingerprint] = Field(
        default_factory=list,
        max_length=100,
        description="Signing keys (sha256 hex of the public key PEM, as in status.verified.keyFingerprint): "
        "every version signed by one of them is revoked.",
    )
    certificate_fingerprints: list[Fingerprint] = Field(
        default_factory=list,
        max_length=100,
        description="Signing certificates (sha256 hex of the certificate's DER, as in "
        "status.verified.certificateFingerprint): every version signed with one of them is revoked.",
    )
    certificate_authorities: list[Fingerprint] = Field(
        default_factory=list,
        max_length=100,
        description="CA certificates (sha256 hex of the DER, as in status.verified.certificateAuthorityFingerprints): "
        "every version whose signing certificate chains through one of them (an intermediate or the trusted "
        "anchor) is revoked.",
    )
    models: list[ModelSelector] = Field(
        default_factory=list, max_length=256, description="Models and version ranges to revoke."
    )
    dataset_digests: list[Digest] = Field(
        default_factory=list,
        max_length=1000,
        description="Dataset digests (spec.lineage.datasets[].digest): every version trained on one of them "
        "is revoked.",
    )

    @model_validator(mode="after")
    def _not_empty(self) -> RevocationMatch:
        if not (
            self.digests
            or self.key_fingerprints
            or self.certificate_fingerprints
            or self.certificate_authorities
            or self.models
            or self.dataset_digests
        ):
            raise ValueError(EMPTY_MATCH_MESSAGE)
        return self


class RevocationSpec(SpecModel):
    """The desired state of a Revocation: why, and what it covers. match is immutable."""

    reason: str = Field(
        min_length=1,
        max_length=4096,
        description="Why these artifacts must not run (shown on every revoked ModelVersion), for example "
        "'CVE-2025-1234: pickle payload in tokenizer'.",
    )
    match: RevocationMatch = Field(
        description="What is revoked: versions matching any of the lists. Immutable: to change the scope, "
        "create a new Revocation (and delete this one to lift it).",
        json_schema_extra={"x-kubernetes-validations": [cel("self == oldSelf", MATCH_IMMUTABLE_MESSAGE)]},
    )

    def immutable_violations(self, old: RevocationSpec) -> list[str]:
        """Messages for each immutable field that differs from ``old``; empty when the update is allowed."""
        return [MATCH_IMMUTABLE_MESSAGE] if self.match != old.match else []


# --- status -----------------------------------------------------------------------------------------------
class AffectedVersion(StatusModel):
    """A ModelVersion this Revocation covers."""

    namespace: str = Field(max_length=63, description="Namespace of the ModelVersion.")
    name: str = Field(max_length=253, description="Name of the ModelVersion.")
    model: str | None = Field(default=None, max_length=63, description="Its Model.")
    version: str | None = Field(default=None, max_length=128, description="Its version.")


class RevocationStatus(StatusModel):
    """The observed state of a Revocation, written by the operator."""

    conditions: list[Condition] = conditions_field(C.ENFORCED)
    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation this status was computed from."
    )
    matched_versions: int | None = Field(default=None, ge=0, description="Number of ModelVersions it covers.")
    workloads_torn_down: int | None = Field(
        default=None, ge=0, description="Number of serving Deployments deleted because of it."
    )
    enforced_at: str | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description="When the last covered workload was gone.",
    )
    enforcement_seconds: float | None = Field(
        default=None,
        ge=0,
        description="Seconds from the Revocation's creation to the last covered workload gone (measured).",
    )
    affected: list[AffectedVersion] = Field(
        default_factory=list,
        max_length=AFFECTED_MAX,
        description=f"The covered ModelVersions (at most {AFFECTED_MAX}; see affectedTotal).",
    )
    affected_total: int | None = Field(
        default=None, ge=0, description="Number of covered ModelVersions, including those not listed."
    )
    revoked_digests: list[Annotated[str, Field(max_length=80)]] = Field(
        default_factory=list,
        max_length=10_000,
        description="Every artifact digest it has matched, through any match kind (kept when the version that "
        "linked it is deleted): a new ModelVersion with one of them is refused under any name.",
    )


class Revocation(Resource):
    """A Revocation is a cluster-wide decision that some model artifacts must not run anywhere: the operator
    tears down every matching ModelVersion's workload in every namespace, marks the versions Revoked, and
    refuses new ones it covers. Match by artifact digest, signing-key fingerprint, signing-certificate or CA
    fingerprint, model and version range, or training dataset digest. Delete the Revocation to lift it."""

    info: ClassVar[ResourceInfo] = ResourceInfo(
        kind="Revocation",
        plural="revocations",
        singular="revocation",
        scope="Cluster",
        short_names=("rvk",),
        printer_columns=(
            PrinterColumn("Reason", ".spec.reason", description="Why the artifacts are revoked."),
            PrinterColumn(
                "Matched", ".status.matchedVersions", type="integer", description="ModelVersions covered."
            ),
            condition_column("Enforced", C.ENFORCED, "Whether every covered workload is gone."),
            PrinterColumn(
                "Seconds",
                ".status.enforcementSeconds",
                type="number",
                description="Seconds from creation to enforcement.",
            ),
            AGE_COLUMN,
        ),
    )

    spec: RevocationSpec = Field(description="The desired state of the Revocation.")
    status: RevocationStatus | None = Field(default=None, description="The observed state, written by the operator.")


__all__ = [
    "AffectedVersion",
    "ModelSelector",
    "Revocation",
    "RevocationMatch",
    "RevocationSpec",
    "RevocationStatus",
]
