"""The rollout's view of versions comes from what the operator computed (domain.verdicts), not from status."""

from __future__ import annotations

from typing import Any

import pytest

from modelhub.domain.rollout import eligible
from modelhub.domain.verdicts import Verdict, current, overlay_verdicts, verdict_of
from modelhub.vocab import conditions as C
from modelhub.vocab import reasons as R

NOW = "2026-12-01T12:00:00Z"
DIGEST = "sha256:" + "a" * 64


def version(*, uid: str = "u1", generation: int = 1, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": "v1", "uid": uid, "generation": generation},
            "spec": {"model": "m", "version": "1.0.0", "artifact": {"uri": "https://x/y", "digest": DIGEST}},
            "status": status or {}}


def model(require_approval: bool) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": "m"}, "spec": {"trust": {"requireApproval": require_approval}}}


FORGED = {"conditions": [
    {"type": C.SIGNATURE_VERIFIED, "status": C.TRUE, "reason": R.VERIFIED, "message": "forged"},
    {"type": C.APPROVED, "status": C.TRUE, "reason": R.APPROVED, "message": "forged"},
], "verified": {"digest": DIGEST}}


def verdict(verified: bool, approved: bool, *, uid: str = "u1", generation: int = 1) -> Verdict:
    return verdict_of(version(uid=uid, generation=generation), verified=verified,
                      reason=R.VERIFIED if verified else R.UNTRUSTED_KEY, message="m",
                      verified_digest=DIGEST, approved=approved)


@pytest.mark.parametrize(("given", "require_approval", "ok", "missing"), [
    (None, False, False, True),  # never verified here: not eligible, and waited for
    (verdict(True, False), False, True, False),
    (verdict(True, False), True, False, False),  # a forged Approved=True does not count
    (verdict(True, True), True, True, False),
    (verdict(False, True), False, False, False),  # a forged SignatureVerified=True does not count
    (verdict(True, True, uid="other"), True, False, True),  # a verdict of an earlier object of that name
    (verdict(True, True, generation=0), True, False, True),  # of an earlier generation
])
def test_overlay(given: Verdict | None, require_approval: bool, ok: bool, missing: bool) -> None:
    verdicts = {} if given is None else {("ns", "v1"): given}
    [seen], waiting = overlay_verdicts([version(status=FORGED)], verdicts, NOW, require_approval=require_approval)
    assert eligible(model(require_approval), seen)[0] is ok
    assert (waiting == ["v1"]) is missing


def test_a_revoked_or_deleted_version_is_not_waited_for() -> None:
    revoked = version(status={"conditions": [{"type": C.REVOKED, "status": C.TRUE, "reason": R.REVOKED}]})
    deleting = version()
    deleting["metadata"]["deletionTimestamp"] = NOW
    _, waiting = overlay_verdicts([revoked, deleting], {}, NOW)
    assert waiting == []


def test_current_needs_the_same_uid_and_generation() -> None:
    v = version()
    assert current(verdict(True, True), v)
    assert not current(verdict(True, True, uid="u2"), v)
    assert not current(verdict(True, True, generation=2), v)
    assert not current(None, v)


def test_without_required_approval_the_view_says_not_required() -> None:
    [seen], _ = overlay_verdicts([version()], {("ns", "v1"): verdict(True, False)}, NOW, require_approval=False)
    approved = next(c for c in seen["status"]["conditions"] if c["type"] == C.APPROVED)
    assert (approved["status"], approved["reason"]) == (C.TRUE, R.NOT_REQUIRED)
