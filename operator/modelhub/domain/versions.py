"""Pure decisions about a ModelVersion's status: verification, approval, revocation and the workload it serves."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelhub.api.conditions import format_time, get_condition, set_condition
from modelhub.domain import requeue
from modelhub.domain.events import Event, version_events
from modelhub.vocab import conditions as C
from modelhub.vocab import reasons as R

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
    # A bundle in a store (file, pvc, https, s3) that is missing or unreachable: no watch sees it land or the
    # server come back, so the version is looked at again (domain.requeue.bundle_retry_delay).
    retry: bool = False
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
    loader_failure: str | None = None  # the loader's one-line reason when it refused the artifact (fail closed)
    look_again: float | None = None  # fewer ready than wanted: seconds until its pods are asked why (None: soon)


def verification_of(verified: VerifiedSignature, pinned: str) -> Verification:
    """The Verification of a bundle that :func:`modelhub.domain.signing.verify_bundle` accepted, checked against
    the digest the ModelVersion pins: a DigestMismatch refusal, or Verified with who signed it."""
    mismatch = check_pinned_digest(verified.subject_digest, pinned)
    if mismatch is not None:
        return mismatch
    cert = verified.certificate
    if cert is None:
        return Verification(
            True, R.VERIFIED,
            f"signed by trusted key {verified.key_name} (sha256 {verified.key_fingerprint[:16]}…) over "
            f"{verified.file_count} files",
            digest=verified.subject_digest, key_name=verified.key_name, key_fingerprint=verified.key_fingerprint,
            files=verified.file_count,
        )
    who = cert.subject or "(empty subject)"
    if cert.sans:
        who += f" [{', '.join(cert.sans[:3])}{', …' if len(cert.sans) > 3 else ''}]"
    return Verification(
        True, R.VERIFIED,
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
        R.DIGEST_MISMATCH,
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
        conds = set_condition(conds, C.SIGNATURE_VERIFIED, C.TRUE, R.VERIFIED, verification.message, gen, now)
    else:
        conds = set_condition(conds, C.SIGNATURE_VERIFIED, C.FALSE, verification.reason, verification.message, gen, now)

    # Approved
    if not require_approval:
        conds = set_condition(conds, C.APPROVED, C.TRUE, R.NOT_REQUIRED, "the Model does not require approval", gen, now)
        if approval:
            status["approval"] = approval
    elif approval:
        status["approval"] = approval
        conds = set_condition(
            conds, C.APPROVED, C.TRUE, R.APPROVED, f"approved by {approval['approvedBy']} at {approval['approvedAt']}",
            gen, now,
        )
    else:
        name = (obj.get("metadata") or {}).get("name")
        conds = set_condition(
            conds, C.APPROVED, C.FALSE, R.AWAITING_APPROVAL,
            f"the Model requires approval: kubectl modelhub approve {name} (or annotate modelhub.dev/approve=true)",
            gen, now,
        )

    # Revoked
    if revoked:
        status["revocation"] = {"name": revoked.name, "reason": revoked.reason, "at": revoked.at}
        conds = set_condition(
            conds, C.REVOKED, C.TRUE, R.REVOKED,
            f"revoked by Revocation {revoked.name} ({revoked.why}): {revoked.reason}", gen, now,
        )
    else:
        conds = set_condition(conds, C.REVOKED, C.FALSE, R.NOT_REVOKED, "no Revocation covers this version", gen, now)

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
            c for c in (get_condition(conds, t) for t in (C.REVOKED, C.SIGNATURE_VERIFIED, C.APPROVED))
            if c and ((c["type"] == C.REVOKED) == (c["status"] == C.TRUE))
        )
        avail = (C.FALSE, blocker["reason"], blocker["message"])
        ready = avail
    elif not promoted or not workload.deployment:
        avail = (C.FALSE, R.NOT_PROMOTED, "verified and approved; the Model does not promote this version")
        ready = avail
    elif workload.loader_failure and workload.ready_replicas == 0:
        avail = (C.FALSE, R.ARTIFACT_REJECTED, f"the loader refused the artifact: {workload.loader_failure}")
        ready = avail
    elif workload.unschedulable:
        avail = (C.FALSE, R.UNSCHEDULABLE, workload.unschedulable)
        ready = avail
    elif workload.ready_replicas > 0:
        avail = (C.TRUE, R.MINIMUM_REPLICAS_AVAILABLE, f"{workload.ready_replicas}/{workload.replicas} replicas ready")
        ready = (C.TRUE, R.SERVING, f"serving {workload.served_digest} with {workload.ready_replicas} ready replicas")
        if workload.ready_replicas < workload.replicas:
            ready = (C.TRUE, R.SERVING, f"{workload.ready_replicas}/{workload.replicas} replicas ready")
    elif workload.replicas == 0:
        avail = (C.FALSE, R.SCALED_TO_ZERO, "the Model's canary weight gives this version no replicas")
        ready = avail
    else:
        avail = (C.FALSE, R.PROGRESSING, f"0/{workload.replicas} replicas ready")
        ready = avail
    conds = set_condition(conds, C.AVAILABLE, *avail, gen, now)
    conds = set_condition(conds, C.READY, *ready, gen, now)
    status["conditions"] = conds
    return status


# A Deployment that made progress (its controller's Progressing condition moved) less than this many seconds
# ago is coming up: its pods are not asked why they do not serve yet. Each ask is a pod list, and during a
# rollout of many versions every Deployment status change would otherwise ask.
PODS_ASKED_AFTER = 10.0
# A stalled Deployment's pods are asked again at most this often (their answer is kept in between): at N=1000 on
# a loaded cluster, where many Deployments wait longer than PODS_ASKED_AFTER for their pods, asking on every look
# again made four pod lists per version. A scheduler's or loader's reason shows at most this much later.
PODS_ASKED_AGAIN = 30.0


@dataclass(frozen=True)
class PodsQuestion:
    """Whether a version's reconcile asks its Deployment's pods why they do not serve."""

    ask: bool  # list them now
    reuse: bool  # not now: the last answer still holds (it is newer than the Deployment's last progress)
    again_in: float  # seconds until they would be asked (when to look again)


def pods_question(deployment: Mapping[str, Any], now: dt.datetime, asked: dt.datetime | None) -> PodsQuestion:
    """For a Deployment with fewer ready replicas than wanted, last asked at `asked` (None: never): ask once it
    has stalled for PODS_ASKED_AFTER seconds (no progress time to go by: stalled) and its status counts a pod,
    then at most every PODS_ASKED_AGAIN seconds while it makes no progress."""
    conditions = (deployment.get("status") or {}).get("conditions")
    progressing = get_condition(conditions if isinstance(conditions, list) else None, "Progressing") or {}
    moved = requeue.parse_time(progressing.get("lastUpdateTime")) or requeue.parse_time(
        (deployment.get("metadata") or {}).get("creationTimestamp"))
    due = now if moved is None else moved + dt.timedelta(seconds=PODS_ASKED_AFTER)
    answered = asked is not None and (moved is None or asked >= moved)
    if asked is not None and answered:
        due = max(due, asked + dt.timedelta(seconds=PODS_ASKED_AGAIN))
    if due <= now:
        if not _pods_reported(deployment):
            # Its controller counts no pod of it yet: there is none to ask (a quota's refusal is the Deployment's
            # own ReplicaFailure condition). On a loaded cluster the controller lags its Deployments by tens of
            # seconds, and asking then made two pod lists per version at N=1000, each answering nothing.
            return PodsQuestion(ask=False, reuse=False, again_in=PODS_ASKED_AFTER)
        return PodsQuestion(ask=True, reuse=False, again_in=PODS_ASKED_AGAIN)
    return PodsQuestion(ask=False, reuse=answered, again_in=max(1.0, (due - now).total_seconds()))


def _pods_reported(deployment: Mapping[str, Any]) -> bool:
    """Whether the Deployment's status counts at least one pod (created, not yet terminated)."""
    replicas = (deployment.get("status") or {}).get("replicas")
    return type(replicas) is int and replicas > 0


def revoked_by(obj: Mapping[str, Any], cover: tuple[Mapping[str, Any], str] | None, now: str) -> Revoked | None:
    """The revocation to record for a version a Revocation covers (`cover`: the Revocation and why). The time
    it was first recorded is kept while the same Revocation covers it."""
    if cover is None:
        return None
    rev, why = cover
    name = (rev.get("metadata") or {}).get("name") or ""
    shown = (obj.get("status") or {}).get("revocation") or {}
    at = shown.get("at") if shown.get("name") == name else None
    return Revoked(name, str((rev.get("spec") or {}).get("reason") or ""), at or now, why)


@dataclass(frozen=True)
class VersionPlan:
    """What a ModelVersion reconcile writes: its status, the Events, and when to look again."""

    status: dict[str, Any]
    events: list[Event]
    requeue: float | None
    conditions_changed: bool  # the Model's rollout reads them: reconcile the Model too
    became_available: bool = False  # Available turned True now (the rollout duration ends here)
    held: bool = False  # the first status (and its Events) is held: write nothing now (requeue.first_status_hold)


def plan_version(
    obj: dict[str, Any],
    *,
    now: dt.datetime,
    verification: Verification,
    require_approval: bool,
    approval: dict[str, Any] | None,
    revoked: Revoked | None,
    workload: WorkloadState,
    tagged: bool = False,
    decided: bool = False,
) -> VersionPlan:
    """Decide a ModelVersion's status, Events and requeue from what its reconcile gathered.

    `tagged`: its artifact URI is an oci:// tag, which its Model deploys from status.resolvedUri (so its first
    status is never held). `decided`: its Model has planned its rollout with this version's verdict (or it has
    no Model): a first status held for that decision goes out now."""
    stamp = format_time(now)
    old_conditions = (obj.get("status") or {}).get("conditions")
    servable = verification.ok and revoked is None and (approval is not None or not require_approval)
    if servable and not tagged and not decided and not old_conditions and workload.deployment is None:
        hold = requeue.first_status_hold((obj.get("metadata") or {}).get("creationTimestamp"), now)
        if hold is not None:
            return VersionPlan(status=dict(obj.get("status") or {}), events=[], requeue=hold,
                               conditions_changed=False, held=True)
    status = version_status(
        obj, now=stamp, verification=verification, require_approval=require_approval, approval=approval,
        revoked=revoked, workload=workload, promoted=workload.deployment is not None,
    )
    delay = None
    if not verification.ok and verification.retry:
        old = get_condition(old_conditions, C.SIGNATURE_VERIFIED)
        since = (old or {}).get("lastTransitionTime") if (old or {}).get("reason") == verification.reason else None
        delay = requeue.bundle_retry_delay(since, now)
    if workload.deployment and workload.ready_replicas < workload.replicas:
        # readiness changes are Deployment events; only the pods' why (no event of ours) needs a look again
        delay = requeue.soonest(delay, workload.look_again or requeue.WORKLOAD_SETTLING)
    return VersionPlan(
        status=status,
        events=version_events(old_conditions, status["conditions"]),
        requeue=delay,
        conditions_changed=old_conditions != status["conditions"],
        became_available=(get_condition(status["conditions"], C.AVAILABLE) or {}).get("status") == C.TRUE
        and (get_condition(old_conditions, C.AVAILABLE) or {}).get("status") != C.TRUE,
    )
