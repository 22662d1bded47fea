"""Approvals that cannot be forged.

A person asks for approval with the annotation `modelhub.dev/approve: "true"` (or `kubectl modelhub approve`). Our
mutating admission webhook replaces it with `modelhub.dev/approval`, a record of the *authenticated* user from the
admission request, the time and the artifact digest, sealed with an HMAC under a key only the operator holds. The
operator copies a record whose seal verifies into `status.approval`; anything else (an approver typed into YAML,
a record copied from another version, a record written while the webhook was down) approves nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from modelhub.vocab import annotations as A

REQUEST_ANNOTATION = A.APPROVE
RECORD_ANNOTATION = A.APPROVAL


@dataclass(frozen=True)
class Approval:
    by: str
    groups: tuple[str, ...]
    at: str
    digest: str


def _payload(namespace: str, name: str, a: Approval) -> bytes:
    return json.dumps(
        {"ns": namespace, "name": name, "by": a.by, "groups": list(a.groups), "at": a.at, "digest": a.digest},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def seal(key: bytes, namespace: str, name: str, a: Approval) -> str:
    mac = hmac.new(key, _payload(namespace, name, a), hashlib.sha256).hexdigest()
    return json.dumps(
        {"by": a.by, "groups": list(a.groups), "at": a.at, "digest": a.digest, "mac": mac}, sort_keys=True
    )


def unseal(key: bytes, namespace: str, name: str, record: str | None, digest: str) -> Approval | None:
    """The approval in `record` if its seal verifies for this object and artifact digest, else None."""
    if not record:
        return None
    try:
        data: dict[str, Any] = json.loads(record)
        a = Approval(
            by=str(data["by"]), groups=tuple(str(g) for g in data.get("groups") or ()), at=str(data["at"]),
            digest=str(data["digest"]),
        )
        mac = str(data["mac"])
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):  # any junk: no approval
        return None
    if a.digest != digest:
        return None
    expected = hmac.new(key, _payload(namespace, name, a), hashlib.sha256).hexdigest()
    return a if hmac.compare_digest(expected, mac) else None


def admit_annotations(
    key: bytes,
    namespace: str,
    name: str,
    new_annotations: dict[str, str],
    old_annotations: dict[str, str],
    digest: str,
    username: str,
    groups: list[str],
    now: str,
) -> dict[str, str | None]:
    """The annotation changes the mutating webhook makes (value None = remove).

    An approve request becomes a sealed record naming the authenticated user; a record written or changed by a
    client is reverted to what it was (removing it, i.e. withdrawing approval, is allowed).
    """
    changes: dict[str, str | None] = {}
    if new_annotations.get(REQUEST_ANNOTATION) is not None:
        changes[REQUEST_ANNOTATION] = None
        if new_annotations[REQUEST_ANNOTATION].lower() in ("true", "yes", "1"):
            approval = Approval(by=username, groups=tuple(groups), at=now, digest=digest)
            changes[RECORD_ANNOTATION] = seal(key, namespace, name, approval)
            return changes
    new_record = new_annotations.get(RECORD_ANNOTATION)
    if new_record is not None and new_record != old_annotations.get(RECORD_ANNOTATION):
        # Only the webhook writes a record; removing one (withdrawing approval) is always allowed.
        changes[RECORD_ANNOTATION] = old_annotations.get(RECORD_ANNOTATION)
    return changes
