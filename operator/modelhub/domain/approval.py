"""Approvals as separation of duties, sealed so that they cannot be forged or replayed.

A person asks for approval of an existing ModelVersion with the annotation `modelhub.dev/approve: "true"` (or
`kubectl modelhub approve`). Our mutating admission webhook, which only the API server can call (TLS client
authentication), decides here what becomes of it:

- At CREATE it records who created the version: `modelhub.dev/created-by`, sealed (HMAC under the operator's
  approval key) and bound to the namespace, name, model, version and artifact digest. A request for approval at
  CREATE is dropped with a Warning: the author cannot create and approve in one `kubectl apply`.
- At UPDATE a request becomes `modelhub.dev/approval`, a sealed record of the *authenticated* requester bound to the
  object's uid, model, version and artifact digest, only if the requester is not the creator and the API server
  says (SubjectAccessReview) the requester may `approve` `modelversions.modelhub.dev` in that namespace. Otherwise
  the request is dropped, no record is made, and the response carries a Warning saying why (the update itself is
  allowed, so a GitOps sync never wedges on it).
- A record or creator annotation written or changed by a client is put back as it was; removing a record
  (withdrawing approval) is allowed.

The operator copies a record whose seal verifies for this very object (`unseal_object`) into `status.approval`;
anything else (an approver typed into YAML, a record copied from another version or onto a re-created object of
the same name, a record sealed for another artifact) approves nothing. Pure: no kopf, no kubernetes, time passed in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelhub import GROUP
from modelhub.vocab import annotations as A

REQUEST_ANNOTATION = A.APPROVE
RECORD_ANNOTATION = A.APPROVAL
CREATOR_ANNOTATION = A.CREATED_BY

# What the SubjectAccessReview asks (like CertificateSigningRequest approval: verb `approve` on a resource).
APPROVE_VERB = "approve"
APPROVE_RESOURCE = "modelversions"

MAX_RECORD_BYTES = 16 * 1024  # a record is a few hundred bytes; an annotation may hold 256 KiB of junk
MAX_GROUPS = 64
_TRUE = ("true", "yes", "1")
_PURPOSE_APPROVAL = "modelhub.dev/approval/v2"
_PURPOSE_CREATOR = "modelhub.dev/created-by/v1"


@dataclass(frozen=True)
class Subject:
    """What a version's seal binds: where it lives, which object it is (uid), and what artifact it names."""

    namespace: str
    name: str
    uid: str
    model: str
    version: str
    digest: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> Subject:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        artifact = spec.get("artifact") or {}
        return cls(
            namespace=str(meta.get("namespace") or ""), name=str(meta.get("name") or ""),
            uid=str(meta.get("uid") or ""), model=str(spec.get("model") or ""),
            version=str(spec.get("version") or ""),
            digest=str(artifact.get("digest") or "") if isinstance(artifact, Mapping) else "",
        )


@dataclass(frozen=True)
class Approval:
    by: str
    groups: tuple[str, ...]
    at: str
    digest: str
    uid: str = ""
    model: str = ""
    version: str = ""


@dataclass(frozen=True)
class Creator:
    by: str
    at: str


def _mac(key: bytes, payload: dict[str, Any]) -> str:
    data = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def _approval_payload(namespace: str, name: str, a: Approval) -> dict[str, Any]:
    return {"purpose": _PURPOSE_APPROVAL, "ns": namespace, "name": name, "uid": a.uid, "model": a.model,
            "version": a.version, "digest": a.digest, "by": a.by, "groups": list(a.groups), "at": a.at}


def _creator_payload(s: Subject, c: Creator) -> dict[str, Any]:
    # No uid: the API server assigns it after mutating admission of a CREATE. The version's model, version and
    # digest are immutable, so a creator record copied elsewhere names the same artifact or verifies nowhere.
    return {"purpose": _PURPOSE_CREATOR, "ns": s.namespace, "name": s.name, "model": s.model, "version": s.version,
            "digest": s.digest, "by": c.by, "at": c.at}


def seal(key: bytes, namespace: str, name: str, a: Approval) -> str:
    """The record annotation for approval `a` of the object `namespace/name` (its uid, model, version in `a`)."""
    mac = _mac(key, _approval_payload(namespace, name, a))
    return json.dumps({"by": a.by, "groups": list(a.groups), "at": a.at, "digest": a.digest, "uid": a.uid,
                       "model": a.model, "version": a.version, "mac": mac}, sort_keys=True)


def seal_for(key: bytes, subject: Subject, by: str, groups: tuple[str, ...], at: str) -> str:
    return seal(key, subject.namespace, subject.name, Approval(
        by=by, groups=groups, at=at, digest=subject.digest, uid=subject.uid, model=subject.model,
        version=subject.version))


def seal_creator(key: bytes, subject: Subject, c: Creator) -> str:
    return json.dumps({"by": c.by, "at": c.at, "mac": _mac(key, _creator_payload(subject, c))}, sort_keys=True)


def _load(record: str | None) -> dict[str, Any] | None:
    if not record or not isinstance(record, str) or len(record) > MAX_RECORD_BYTES:
        return None
    try:
        data = json.loads(record)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _str(data: Mapping[str, Any], k: str) -> str:
    v = data.get(k, "")
    if not isinstance(v, str):
        raise TypeError(k)
    return v


def _parse_approval(record: str | None) -> tuple[Approval, str] | None:
    data = _load(record)
    if data is None:
        return None
    try:
        groups = data.get("groups") or []
        if not isinstance(groups, list) or len(groups) > MAX_GROUPS or not all(isinstance(g, str) for g in groups):
            return None
        a = Approval(by=_str(data, "by"), groups=tuple(groups), at=_str(data, "at"), digest=_str(data, "digest"),
                     uid=_str(data, "uid"), model=_str(data, "model"), version=_str(data, "version"))
        return a, _str(data, "mac")
    except TypeError:
        return None


def unseal_object(key: bytes, obj: Mapping[str, Any]) -> Approval | None:
    """The approval of ModelVersion `obj` if its record's seal verifies for this very object: its namespace, name,
    uid, model, version and artifact digest. Anything else (no record, junk, another object's record, a record
    copied onto a re-created object of the same name) is None."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    record = annotations.get(RECORD_ANNOTATION) if isinstance(annotations, Mapping) else None
    s = Subject.of(obj)
    parsed = _parse_approval(record)
    if parsed is None or not s.uid or not key:
        return None
    a, mac = parsed
    if (a.uid, a.model, a.version, a.digest) != (s.uid, s.model, s.version, s.digest) or not a.by:
        return None
    return a if hmac.compare_digest(_mac(key, _approval_payload(s.namespace, s.name, a)), mac) else None


def unseal(key: bytes, namespace: str, name: str, record: str | None, digest: str) -> Approval | None:
    """Compatibility call: the approval in `record` if its seal verifies for `namespace/name` and `digest`.

    It cannot compare the record's uid, model and version with the object's (it is not given the object), so a
    record copied onto a re-created object of the same name passes here: call `unseal_object(key, obj)` instead.
    """
    parsed = _parse_approval(record)
    if parsed is None or not key:
        return None
    a, mac = parsed
    if a.digest != digest or not a.uid or not a.by:
        return None
    return a if hmac.compare_digest(_mac(key, _approval_payload(namespace, name, a)), mac) else None


def unseal_creator(key: bytes, subject: Subject, record: str | None) -> Creator | None:
    """Who created the version, if the creator record's seal verifies for it; else None."""
    data = _load(record)
    if data is None or not key:
        return None
    try:
        c = Creator(by=_str(data, "by"), at=_str(data, "at"))
        mac = _str(data, "mac")
    except TypeError:
        return None
    if not c.by:
        return None
    return c if hmac.compare_digest(_mac(key, _creator_payload(subject, c)), mac) else None


# --- the mutating webhook's decision --------------------------------------------------------------------------
@dataclass(frozen=True)
class Requester:
    """The authenticated user of an admission request (its userInfo), as the API server sent it."""

    username: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, userinfo: Mapping[str, Any] | None) -> Requester:
        u = userinfo or {}
        extra = u.get("extra") or {}
        return cls(
            username=str(u.get("username") or ""),
            groups=tuple(str(g) for g in (u.get("groups") or ()))[:MAX_GROUPS],
            uid=str(u.get("uid") or ""),
            extra={str(k): tuple(str(x) for x in (v or ())) for k, v in extra.items()} if isinstance(extra, Mapping)
            else {},
        )


@dataclass(frozen=True)
class Authorization:
    """The API server's answer to "may the requester approve this version?" (a SubjectAccessReview)."""

    allowed: bool
    reason: str = ""


@dataclass(frozen=True)
class Review:
    """What the mutating webhook decides from: one admission request of a ModelVersion."""

    operation: str  # CREATE or UPDATE
    subject: Subject
    new_annotations: Mapping[str, str]
    old_annotations: Mapping[str, str]
    requester: Requester
    now: str

    @classmethod
    def of(cls, operation: str | None, obj: Mapping[str, Any], old: Mapping[str, Any] | None,
           userinfo: Mapping[str, Any] | None, now: str) -> Review:
        def annotations(o: Mapping[str, Any] | None) -> dict[str, str]:
            a = ((o or {}).get("metadata") or {}).get("annotations") or {}
            return {str(k): str(v) for k, v in a.items()} if isinstance(a, Mapping) else {}
        subject = Subject.of(obj)
        if not subject.uid and old:
            subject = Subject.of({**obj, "metadata": {**(obj.get("metadata") or {}),
                                                      "uid": (old.get("metadata") or {}).get("uid")}})
        return cls(operation=str(operation or ""), subject=subject, new_annotations=annotations(obj),
                   old_annotations=annotations(old), requester=Requester.of(userinfo), now=now)

    @property
    def asks_approval(self) -> bool:
        value = self.new_annotations.get(REQUEST_ANNOTATION)
        return value is not None and value.strip().lower() in _TRUE


@dataclass(frozen=True)
class Admission:
    """The annotation changes the webhook makes (value None = remove) and the Warnings it answers with."""

    changes: dict[str, str | None]
    warnings: tuple[str, ...] = ()


def refusal_before_authorization(key: bytes, review: Review) -> str | None:
    """Why an approval request is refused without asking the API server, or None when only RBAC is left to ask.

    Call `admit` with an Authorization only when this is None for a request that asks approval."""
    s, who = review.subject, review.requester.username
    name = f"modelversion {s.namespace}/{s.name}"
    if review.operation != "UPDATE":
        return (f"{name} is not approved: approval is not given at creation; once it exists, someone other than "
                f"its author approves it (kubectl modelhub approve {s.name} -n {s.namespace})")
    if not who:
        return f"{name} is not approved: the request has no authenticated user"
    if not (s.uid and s.digest and s.model and s.version):
        return f"{name} is not approved: it has no uid, model, version or artifact digest to bind an approval to"
    creator = unseal_creator(key, s, review.old_annotations.get(CREATOR_ANNOTATION))
    if creator is None:
        return (f"{name} is not approved: it has no sealed creator record (it was created while the modelhub "
                f"webhook was not answering), so separation of duties cannot be checked; delete and re-create it")
    if creator.by == who:
        return f"{name} is not approved: {who} created it, and the author of a version cannot approve it"
    return None


def admit(key: bytes, review: Review, authorization: Authorization | None = None) -> Admission:
    """The mutating webhook's answer for one ModelVersion request (see the module docstring).

    `authorization` is the API server's answer for the requester (needed only when the request asks approval and
    `refusal_before_authorization` found nothing; None there means not asked, so no approval)."""
    s, new, old = review.subject, review.new_annotations, review.old_annotations
    changes: dict[str, str | None] = {}
    warnings: list[str] = []

    # Who created it: sealed at CREATE (whatever the client wrote), kept as it was afterwards.
    if review.operation == "CREATE":
        if review.requester.username:
            changes[CREATOR_ANNOTATION] = seal_creator(key, s, Creator(by=review.requester.username, at=review.now))
        elif CREATOR_ANNOTATION in new:
            changes[CREATOR_ANNOTATION] = None
    elif new.get(CREATOR_ANNOTATION) != old.get(CREATOR_ANNOTATION):
        changes[CREATOR_ANNOTATION] = old.get(CREATOR_ANNOTATION)

    # Only the webhook writes a record; removing one (withdrawing approval) is always allowed.
    new_record = new.get(RECORD_ANNOTATION)
    if new_record is not None and new_record != old.get(RECORD_ANNOTATION):
        changes[RECORD_ANNOTATION] = old.get(RECORD_ANNOTATION)

    if REQUEST_ANNOTATION in new:
        changes[REQUEST_ANNOTATION] = None
        if review.asks_approval:
            why = refusal_before_authorization(key, review)
            if why is None:
                if authorization is None:
                    why = f"modelversion {s.namespace}/{s.name} is not approved: authorization was not checked"
                elif not authorization.allowed:
                    why = (f"modelversion {s.namespace}/{s.name} is not approved: {review.requester.username} may "
                           f"not {APPROVE_VERB} {APPROVE_RESOURCE}.{GROUP} in namespace {s.namespace}"
                           + (f" ({authorization.reason})" if authorization.reason else ""))
            if why is None:
                changes[RECORD_ANNOTATION] = seal_for(key, s, review.requester.username, review.requester.groups,
                                                      review.now)
            else:
                warnings.append(why)
    return Admission(changes=changes, warnings=tuple(warnings))

