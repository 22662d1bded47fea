"""Pure decisions about a ModelVersion's status: verification, approval, revocation and the workload it serves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelhub.api.conditions import get_condition, set_condition

if TYPE_CHECKING:
    from modelhub.domain.signing import VerifiedSignature


@dataclass(frozen=True)
class Verification:
    """The outcome of checking a version's bundle against its Model's keyring and pinned digest."""

    ok: bool
    reason: str
    message: str
    digest: str | None = None
    key_name: str | None = None
    key_fingerprint: str | None = None
    files: int | None = None
    # Certificate signatures (OMS certificate method): who the signing certificate names, and how it chained.
    certificate_subject: str | None = None
    certificate_sans: tuple[str, ...] = ()
    certificate_fingerprint: str | None = None
    certificate_authority: str | None = None  # the trusted CA entry that anchored the chain
    certificate_authority_fingerprints: tuple[str, ...] = ()  # the path's CA certificates, anchor last

    def verified_fields(self) -> dict[str, Any]:
        """status.verified without verifiedAt (unset fields left out): what the revocation index reads."""
        fields: dict[str, Any] = {
            "digest": self.digest,
            "keyName": self.key_name,
            "keyFingerprint": self.key_fingerprint,
            "certificateSubject": self.certificate_subject,
            "certificateSans": list(self.certificate_sans) or None,
            "certificateFingerprint": self.certificate_fingerprint,
            "certificateAuthority": self.certificate_authority,
            "certificateAuthorityFingerprints": list(self.certificate_authority_fingerprints) or None,
            "files": self.files,
        }
        return {k: v for k, v in fields.items() if v is not None}


@dataclass(frozen=True)
class Revoked:
    name: str
    reason: str
    at: str
    why: str


@dataclass(frozen=True)
class WorkloadState:
    """What the version's Deployment looks like now (None fields: no Deployment)."""

    deployment: str | None = None
    replicas: int = 0
    ready_replicas: int = 0
    served_digest: str | None = None
    unschedulable: str | None = None  # the scheduler's message when a pod cannot be placed


def verification_of(verified: VerifiedSignature, pinned: str) -> Verification:
    """The Verification of a bundle that :func:`modelhub.domain.signing.verify_bundle` accepted, checked against
    the digest the ModelVersion pins: a DigestMismatch refusal, or Verified with who signed it."""
    mismatch = check_pinned_digest(verified.subject_digest, pinned)
    if mismatch is not None:
        return mismatch
    cert = verified.certificate
    if cert is None:
        return Verification(
            True, "Verified",
            f"signed by trusted key {verified.key_name} (sha256 {verified.key_fingerprint[:16]}…) over "
            f"{verified.file_count} files",
            digest=verified.subject_digest, key_name=verified.key_name, key_fingerprint=verified.key_fingerprint,
            files=verified.file_count,
        )
    who = cert.subject or "(empty subject)"
    if cert.sans:
        who += f" [{', '.join(cert.sans[:3])}{', …' if len(cert.sans) > 3 else ''}]"
    return Verification(
        True, "Verified",
        f"signed with certificate {who} (sha256 {cert.fingerprint[:16]}…) issued under trusted CA "
        f"{cert.authority_name} over {verified.file_count} files",
        digest=verified.subject_digest, key_fingerprint=verified.key_fingerprint, files=verified.file_count,
        certificate_subject=cert.subject[:1024], certificate_sans=_fitting_sans(cert.sans),
        certificate_fingerprint=cert.fingerprint, certificate_authority=cert.authority_name[:512],
        certificate_authority_fingerprints=cert.ca_fingerprints,
    )


_SANS_MAX = 32
_SAN_MAX = 512


def _fitting_sans(sans: tuple[str, ...]) -> tuple[str, ...]:
    """The SANs as status can hold them (the API bounds the list and each entry)."""
    return tuple(s for s in sans if len(s) <= _SAN_MAX)[:_SANS_MAX]


def check_pinned_digest(verified_digest: str, pinned: str) -> Verification | None:
    """A refusal when the signed subject is not the digest the ModelVersion pins."""
    if verified_digest == pinned:
        return None
    return Verification(
        False,
        "DigestMismatch",
        f"the signature is valid but covers {verified_digest}, not the pinned spec.artifact.digest {pinned}; "
        "pin the digest that `modelhub digest MODEL_DIR` prints (it leaves MODEL_DIR/model.sig out, as the "
        "signer did), or sign the intended artifact",
    )


def version_status(
    obj: dict[str, Any],
    *,
    now: str,
    verification: Verification,
    require_approval: bool,
    approval: dict[str, Any] | None,
    revoked: Revoked | None,
    workload: WorkloadState,
    promoted: bool,
) -> dict[str, Any]:
    """The full status of a ModelVersion from what was found about it."""
    old = obj.get("status") or {}
    gen = (obj.get("metadata") or {}).get("generation")
    conds: list[dict[str, Any]] = list(old.get("conditions") or [])
    status: dict[str, Any] = {k: v for k, v in old.items() if k not in ("verified", "approval", "revocation")}
    status["observedGeneration"] = gen

    # SignatureVerified
    if verification.ok:
        prev = old.get("verified") or {}
        same = (
            prev.get("digest") == verification.digest
            and prev.get("keyFingerprint") == verification.key_fingerprint
            and prev.get("certificateFingerprint") == verification.certificate_fingerprint
        )
        fields = verification.verified_fields()
        status["verified"] = {
            # A merge patch keeps what it does not mention: null out what the previous signer had set.
            **{k: None for k in prev if k not in fields and k != "verifiedAt"},
            **fields,
            "verifiedAt": prev.get("verifiedAt") if same and prev.get("verifiedAt") else now,
        }
        conds = set_condition(conds, "SignatureVerified", "True", "Verified", verification.message, gen, now)
    else:
        conds = set_condition(conds, "SignatureVerified", "False", verification.reason, verification.message, gen, now)

    # Approved
    if not require_approval:
        conds = set_condition(conds, "Approved", "True", "NotRequired", "the Model does not require approval", gen, now)
        if approval:
            status["approval"] = approval
    elif approval:
        status["approval"] = approval
        conds = set_condition(
            conds, "Approved", "True", "Approved", f"approved by {approval['approvedBy']} at {approval['approvedAt']}",
            gen, now,
        )
    else:
        name = (obj.get("metadata") or {}).get("name")
        conds = set_condition(
            conds, "Approved", "False", "AwaitingApproval",
            f"the Model requires approval: kubectl modelhub approve {name} (or annotate modelhub.dev/approve=true)",
            gen, now,
        )

    # Revoked
    if revoked:
        status["revocation"] = {"name": revoked.name, "reason": revoked.reason, "at": revoked.at}
        conds = set_condition(
            conds, "Revoked", "True", "Revoked",
            f"revoked by Revocation {revoked.name} ({revoked.why}): {revoked.reason}", gen, now,
        )
    else:
        conds = set_condition(conds, "Revoked", "False", "NotRevoked", "no Revocation covers this version", gen, now)

    # Available / Ready: the workload.
    if workload.deployment:
        status["workload"] = {
            "deployment": workload.deployment,
            "replicas": workload.replicas,
            "readyReplicas": workload.ready_replicas,
            "servedDigest": workload.served_digest,
        }
    else:
        status.pop("workload", None)
    servable = verification.ok and (approval is not None or not require_approval) and revoked is None
    if not servable:
        blocker = next(
            c for c in (get_condition(conds, t) for t in ("Revoked", "SignatureVerified", "Approved"))
            if c and ((c["type"] == "Revoked") == (c["status"] == "True"))
        )
        avail = ("False", blocker["reason"], blocker["message"])
        ready = avail
    elif not promoted or not workload.deployment:
        avail = ("False", "NotPromoted", "verified and approved; the Model does not promote this version")
        ready = avail
    elif workload.unschedulable:
        avail = ("False", "Unschedulable", workload.unschedulable)
        ready = avail
    elif workload.ready_replicas > 0:
        avail = ("True", "MinimumReplicasAvailable", f"{workload.ready_replicas}/{workload.replicas} replicas ready")
        ready = ("True", "Serving", f"serving {workload.served_digest} with {workload.ready_replicas} ready replicas")
        if workload.ready_replicas < workload.replicas:
            ready = ("True", "Serving", f"{workload.ready_replicas}/{workload.replicas} replicas ready")
    elif workload.replicas == 0:
        avail = ("False", "ScaledToZero", "the Model's canary weight gives this version no replicas")
        ready = avail
    else:
        avail = ("False", "Progressing", f"0/{workload.replicas} replicas ready")
        ready = avail
    conds = set_condition(conds, "Available", *avail, gen, now)
    conds = set_condition(conds, "Ready", *ready, gen, now)
    status["conditions"] = conds
    return status


def transitions(old: list[dict[str, Any]] | None, new: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(type, reason, message) of an Event for every condition whose status or reason changed."""
    out = []
    for c in new:
        prev = get_condition(old, c["type"])
        if prev is None or prev.get("status") != c["status"] or prev.get("reason") != c["reason"]:
            warn = (c["type"] == "Revoked") == (c["status"] == "True") and c["reason"] not in ("NotPromoted",)
            out.append(("Warning" if warn else "Normal", c["reason"], f"{c['type']}={c['status']}: {c['message']}"))
    return out
