"""The ``ModelVersion`` resource: one immutable, signed artifact of a Model, its lineage and evaluation."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar

from pydantic import ConfigDict, Field, field_validator, model_validator

from modelhub.api.common import (
    AGE_COLUMN,
    ARTIFACT_URI_PATTERN,
    COMMIT_PATTERN,
    CONFIGMAP_KEY_PATTERN,
    DIGEST_MAX,
    DIGEST_PATTERN,
    DNS1123_LABEL_PATTERN,
    DNS1123_SUBDOMAIN_PATTERN,
    DOTDOT_SEGMENT_PATTERN,
    FINGERPRINT_PATTERN,
    GENERIC_URI_PATTERN,
    Condition,
    PrinterColumn,
    Resource,
    ResourceInfo,
    SpecModel,
    StatusModel,
    cel,
    condition_column,
    conditions_field,
    immutable,
)
from modelhub.api.semver import SEMVER_PATTERN
from modelhub.api.serving import ServingOverrides
from modelhub.vocab import conditions as C

SEMVER_MAX = 128
URI_MAX = 4096
SIGNATURE_FILE = "model.sig"
SANS_MAX = 32
CHAIN_MAX = 8

#: An OCI artifact or image: oci://<registry host[:port]>/<repository>[:<tag>][@sha256:<manifest digest>][#<path>]
#: (a tag is resolved by the operator and the version recorded by digest; see modelhub.adapters.oci).
OCI_URI_PATTERN = (
    r"oci://[A-Za-z0-9\[][^\s/@#]*/[a-z0-9][^\s@#:]*(?::[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?"
    r"(?:@sha256:[0-9a-f]{64})?(?:#\S*)?"
)
#: Where an artifact or a bundle can be: the stores of ARTIFACT_URI_PATTERN, or an OCI registry.
STORE_URI_PATTERN = ARTIFACT_URI_PATTERN[:-2] + "|" + OCI_URI_PATTERN + ")$"

_DOTDOT_RE = re.compile(DOTDOT_SEGMENT_PATTERN)
_NO_DOTDOT = cel(
    "!self.matches('(^|/)[.][.](/|$)')",
    "must not contain '..' path segments",
)
_DOTDOT_MESSAGE = "must not contain '..' path segments"


def _uri_without_dotdot(value: str | None) -> str | None:
    if value is not None and _DOTDOT_RE.search(value):
        raise ValueError(_DOTDOT_MESSAGE)
    return value


class ConfigMapKeyRef(SpecModel):
    """A key of a ConfigMap in the same namespace."""

    name: str = Field(
        min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN_PATTERN, description="Name of the ConfigMap."
    )
    key: str = Field(
        min_length=1,
        max_length=253,
        pattern=CONFIGMAP_KEY_PATTERN,
        description="The data key whose value is the signature bundle (Sigstore bundle JSON).",
    )


class SecretRef(SpecModel):
    """A Secret in the same namespace."""

    name: str = Field(
        min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN_PATTERN, description="Name of the Secret."
    )


STORE_CA_KEY = "ca.crt"


class CAConfigMapRef(SpecModel):
    """A ConfigMap in the same namespace holding PEM CA certificates (one or more) under `key`."""

    name: str = Field(
        min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN_PATTERN, description="Name of the ConfigMap."
    )
    key: str = Field(
        default=STORE_CA_KEY,
        min_length=1,
        max_length=253,
        pattern=CONFIGMAP_KEY_PATTERN,
        description=f"The data key whose value is the PEM CA certificate(s) (default {STORE_CA_KEY}).",
    )


class SignatureSource(SpecModel):
    """Where the OpenSSF Model Signing (OMS) signature bundle of the artifact is. Set exactly one of
    configMapRef or uri."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.configMapRef) != has(self.uri)",
                    "spec.artifact.signature must set exactly one of configMapRef or uri (omit signature to use "
                    f"{SIGNATURE_FILE} beside the artifact)",
                )
            ]
        }
    )

    config_map_ref: ConfigMapKeyRef | None = Field(
        default=None, description="The bundle is stored in a ConfigMap key in the same namespace."
    )
    uri: str | None = Field(
        default=None,
        max_length=URI_MAX,
        pattern=STORE_URI_PATTERN,
        description="The bundle is fetched from this URI (file:///, pvc://<claim>/, https://, s3://, or "
        "oci://<registry>/<repo>@sha256:<manifest digest>#<path of the bundle file in that artifact>).",
        json_schema_extra={"x-kubernetes-validations": [_NO_DOTDOT]},
    )

    @field_validator("uri")
    @classmethod
    def _check_uri(cls, value: str | None) -> str | None:
        return _uri_without_dotdot(value)

    @model_validator(mode="after")
    def _exactly_one(self) -> SignatureSource:
        if (self.config_map_ref is None) == (self.uri is None):
            raise ValueError(
                "spec.artifact.signature must set exactly one of configMapRef or uri (omit signature to use "
                f"{SIGNATURE_FILE} beside the artifact)"
            )
        return self


class Artifact(SpecModel):
    """The model files and their signature. The digest is the OpenSSF Model Signing subject digest; the
    operator serves the version only if a trusted key signed exactly this digest, and the loader checks every
    file against the signed manifest before the inference server starts. Immutable: publish a new
    ModelVersion for new files."""

    uri: str = Field(
        max_length=URI_MAX,
        pattern=STORE_URI_PATTERN,
        description="Where the model files are: file:///<path> (on the node), pvc://<claim>/<path> (a "
        "PersistentVolumeClaim in the same namespace), https://<host>/<path>, s3://<bucket>/<key>, or "
        "oci://<registry>/<repository>@sha256:<manifest digest>[#<dir>] (an OCI artifact, e.g. CNCF ModelPack, "
        "whose layers are the files, or a plain image whose filesystem holds the model directory <dir>; a "
        ":<tag> instead of the digest is resolved and recorded by digest). A directory or a single file; '..' "
        "segments are refused.",
        json_schema_extra={"x-kubernetes-validations": [_NO_DOTDOT]},
    )
    digest: str = Field(
        max_length=DIGEST_MAX,
        pattern=DIGEST_PATTERN,
        description="The signed subject digest, sha256:<64 hex>: the sha256 over the per-file digests in the "
        "order the signature manifest lists them (as `model_signing` computes it).",
    )
    signature: SignatureSource | None = Field(
        default=None,
        description=f"Where the signature bundle is. When omitted, it is the file {SIGNATURE_FILE} beside the "
        "artifact (inside it for a directory).",
    )
    allow_symlinks: bool = Field(
        default=False,
        description="Follow symbolic links inside the artifact when verifying. Off by default: a link could "
        "point outside the signed tree.",
    )
    size: int | None = Field(
        default=None,
        ge=1,
        le=2**62,
        description="Total size of the artifact's files in bytes. Bounds what the loader may download and "
        "sizes the model volume when the signed manifest does not state sizes (the operator-wide limit "
        "applies when omitted, and caps it).",
    )
    credentials_secret_ref: SecretRef | None = Field(
        default=None,
        description="A Secret in this namespace with S3 credentials (keys AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY, optional AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL) for s3:// artifacts "
        "and bundles, or for oci:// a kubernetes.io/dockerconfigjson Secret (an imagePullSecret: key "
        ".dockerconfigjson) with the registry's credentials; used by the operator to fetch the bundle and by "
        "the loader. The operator never uses its own cloud identity for a tenant's s3:// location.",
    )
    ca_config_map_ref: CAConfigMapRef | None = Field(
        default=None,
        description="A ConfigMap in this namespace whose key (default ca.crt) holds the PEM CA certificate(s) "
        "that issued the server certificate of the https:// store (or of the S3 endpoint, AWS_ENDPOINT_URL). "
        "The loader then trusts exactly those CAs, instead of the system roots, for this artifact and its "
        "bundle; without it, the system roots. The signature decides what runs; the CA only decides which "
        "server is the store. A missing ConfigMap keeps the pods from starting.",
    )

    @field_validator("uri")
    @classmethod
    def _check_uri(cls, value: str | None) -> str | None:
        return _uri_without_dotdot(value)


class Dataset(SpecModel):
    """A dataset the model was trained or fine-tuned on."""

    name: str = Field(min_length=1, max_length=253, description="Name of the dataset.")
    uri: str | None = Field(
        default=None, max_length=URI_MAX, pattern=GENERIC_URI_PATTERN, description="Where the dataset is."
    )
    digest: str | None = Field(
        default=None,
        max_length=DIGEST_MAX,
        pattern=DIGEST_PATTERN,
        description="sha256:<64 hex> of the dataset; a Revocation can match versions by it.",
    )


class CodeRef(SpecModel):
    """The source code that produced the model."""

    repository: str = Field(min_length=1, max_length=URI_MAX, description="The repository, e.g. a git URL.")
    commit: str | None = Field(
        default=None, pattern=COMMIT_PATTERN, max_length=64, description="Commit hash (7 to 64 hex characters)."
    )


class Lineage(SpecModel):
    """Where the model came from: datasets, code and the version it was derived from."""

    datasets: list[Dataset] = Field(
        default_factory=list, max_length=64, description="Datasets used for training or fine-tuning."
    )
    code: CodeRef | None = Field(default=None, description="The training code.")
    parent: str | None = Field(
        default=None,
        pattern=SEMVER_PATTERN,
        max_length=SEMVER_MAX,
        description="The version of the same Model this one was derived from.",
    )


class Metric(SpecModel):
    """One evaluation result."""

    name: str = Field(min_length=1, max_length=253, description="Metric name, for example accuracy or f1.")
    value: float = Field(description="The measured value.")
    dataset: str | None = Field(
        default=None, max_length=253, description="The evaluation dataset the value was measured on."
    )


class Evaluation(SpecModel):
    """How the version performed."""

    metrics: list[Metric] = Field(default_factory=list, max_length=256, description="Evaluation results.")


class ModelVersionSpec(SpecModel):
    """The desired state of a ModelVersion. model, version and artifact are immutable."""

    model: str = Field(
        min_length=1,
        max_length=63,
        pattern=DNS1123_LABEL_PATTERN,
        description="Name of the Model (in the same namespace) this is a version of. Immutable.",
        json_schema_extra=immutable("spec.model"),
    )
    version: str = Field(
        pattern=SEMVER_PATTERN,
        max_length=SEMVER_MAX,
        description="The SemVer 2.0 version, for example 1.4.2 or 2.0.0-rc.1 (no leading 'v'); "
        "spec.promotion of the Model refers to it. Immutable.",
        json_schema_extra=immutable("spec.version"),
    )
    artifact: Artifact = Field(
        description="The model files and their signature. The operator serves this version only if a key the "
        "Model trusts (spec.trust) signed exactly this digest, and the loader checks every file against the "
        "signed manifest before the inference server starts. Immutable: publish a new ModelVersion for new files.",
        json_schema_extra=immutable("spec.artifact"),
    )
    lineage: Lineage | None = Field(default=None, description="Datasets, code and parent version.")
    evaluation: Evaluation | None = Field(default=None, description="Evaluation metrics.")
    serving: ServingOverrides | None = Field(
        default=None,
        description="Overrides of the Model's spec.serving for this version; unset fields keep the Model's.",
    )

    def immutable_violations(self, old: ModelVersionSpec) -> list[str]:
        """Messages for each immutable field that differs from ``old`` (empty when the update is allowed);
        the same rules the API server enforces with CEL."""
        out = []
        if self.model != old.model:
            out.append("spec.model is immutable")
        if self.version != old.version:
            out.append("spec.version is immutable")
        if self.artifact != old.artifact:
            out.append("spec.artifact is immutable")
        return out


# --- status -----------------------------------------------------------------------------------------------
class Verified(StatusModel):
    """What the signature verification established."""

    digest: str | None = Field(default=None, max_length=DIGEST_MAX, description="The verified subject digest.")
    key_name: str | None = Field(
        default=None,
        max_length=512,
        description="Key signatures: the trusted key that verified, as <configmap>/<key>.",
    )
    key_fingerprint: str | None = Field(
        default=None,
        pattern=FINGERPRINT_PATTERN,
        max_length=64,
        description="sha256 hex of the signing key's PEM (the bundle's key hint); for a certificate signature, of "
        "the signing certificate's public key.",
    )
    certificate_subject: str | None = Field(
        default=None,
        max_length=1024,
        description="Certificate signatures: the signing certificate's subject (RFC 4514 string).",
    )
    certificate_sans: list[str] = Field(
        default_factory=list,
        max_length=SANS_MAX,
        description="Certificate signatures: the signing certificate's subject alternative names, each as "
        "<type>:<value> (email:, dns:, uri:, ip:), as far as they fit.",
    )
    certificate_fingerprint: str | None = Field(
        default=None,
        pattern=FINGERPRINT_PATTERN,
        max_length=64,
        description="Certificate signatures: sha256 hex of the signing certificate's DER.",
    )
    certificate_authority: str | None = Field(
        default=None,
        max_length=512,
        description="Certificate signatures: the trusted CA that anchored the chain, as <configmap>/<key>.",
    )
    certificate_authority_fingerprints: list[Annotated[str, Field(pattern=FINGERPRINT_PATTERN, max_length=64)]] = (
        Field(
            default_factory=list,
            max_length=CHAIN_MAX,
            description="Certificate signatures: sha256 hex of the DER of every CA certificate on the verified "
            "path, from the issuer of the signing certificate up to the trusted anchor (last).",
        )
    )
    files: int | None = Field(default=None, ge=0, description="Number of files in the signed manifest.")
    verified_at: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="When verification succeeded."
    )


class Approval(StatusModel):
    """Who approved this version for serving (when the Model requires approval)."""

    approved_by: str | None = Field(default=None, max_length=512, description="The approving user.")
    approved_at: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="When it was approved."
    )
    groups: list[str] = Field(
        default_factory=list, max_length=64, description="The approving user's groups at that time."
    )


class Workload(StatusModel):
    """The Deployment serving this version."""

    deployment: str | None = Field(default=None, max_length=253, description="Name of the Deployment.")
    replicas: int | None = Field(default=None, ge=0, description="Desired replicas.")
    ready_replicas: int | None = Field(default=None, ge=0, description="Ready replicas.")
    served_digest: str | None = Field(
        default=None, max_length=DIGEST_MAX, description="The artifact digest the pods were started with."
    )


class RevocationRef(StatusModel):
    """The Revocation that covers this version."""

    name: str = Field(max_length=253, description="Name of the Revocation.")
    reason: str | None = Field(default=None, max_length=4096, description="Its reason.")
    at: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="When this version was revoked."
    )


class ModelVersionStatus(StatusModel):
    """The observed state of a ModelVersion, written by the operator."""

    conditions: list[Condition] = conditions_field("SignatureVerified, Approved, Available, Revoked, Ready")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation this status was computed from."
    )
    verified: Verified | None = Field(default=None, description="Result of the signature verification.")
    resolved_uri: str | None = Field(
        default=None,
        max_length=URI_MAX,
        description="spec.artifact.uri pinned by digest, as it was resolved once (an oci:// tag: the digest of the "
        "manifest it named then); what the loader pulls. A tag moved later changes nothing for this version.",
    )
    approval: Approval | None = Field(default=None, description="Who approved this version, and when.")
    workload: Workload | None = Field(default=None, description="The Deployment serving this version.")
    revocation: RevocationRef | None = Field(default=None, description="Set when a Revocation covers this version.")


class ModelVersion(Resource):
    """A ModelVersion is one immutable, signed artifact of a Model: where the files are, their signed digest,
    the signature bundle, lineage and evaluation, and serving overrides. The operator verifies the signature
    against the Model's trusted keys and, once verified and approved, serves it when the Model promotes it."""

    info: ClassVar[ResourceInfo] = ResourceInfo(
        kind="ModelVersion",
        plural="modelversions",
        singular="modelversion",
        scope="Namespaced",
        short_names=("mv",),
        printer_columns=(
            PrinterColumn("Model", ".spec.model", description="The Model this is a version of."),
            PrinterColumn("Version", ".spec.version", description="The SemVer version."),
            condition_column("Verified", C.SIGNATURE_VERIFIED, "Whether the signature verified."),
            condition_column("Approved", C.APPROVED, "Whether the version is approved."),
            condition_column("Ready", C.READY, "Whether the version is ready to serve."),
            PrinterColumn(
                "Replicas", ".status.workload.readyReplicas", type="integer", description="Ready serving replicas."
            ),
            AGE_COLUMN,
        ),
        # kubectl get modelversions --field-selector spec.model=NAME
        selectable_fields=(".spec.model",),
    )
    spec: ModelVersionSpec = Field(description="The desired state of the ModelVersion.")
    status: ModelVersionStatus | None = Field(default=None, description="The observed state, written by the operator.")


__all__ = [
    "Approval",
    "Artifact",
    "CAConfigMapRef",
    "CodeRef",
    "ConfigMapKeyRef",
    "Dataset",
    "Evaluation",
    "Lineage",
    "Metric",
    "ModelVersion",
    "ModelVersionSpec",
    "ModelVersionStatus",
    "RevocationRef",
    "SecretRef",
    "SIGNATURE_FILE",
    "STORE_CA_KEY",
    "SignatureSource",
    "Verified",
    "Workload",
]
