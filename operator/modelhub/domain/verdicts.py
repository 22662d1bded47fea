"""What the operator itself computed of a ModelVersion, and the rollout's view built from it.

Anyone who may write ``modelversions/status`` could set ``SignatureVerified`` or ``Approved`` to True. So the
rollout never decides from those conditions as found: the version reconcile records a :class:`Verdict` (the
verification it computed and whether a sealed approval record is valid) for the object's uid and generation,
and :func:`overlay_verdicts` replaces the conditions the rollout reads by the verdict's before planning. A version
with no verdict for its current generation is not planned around: the Model waits for it (the caller looks again
once the version reconcile has run).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from modelhub.api.conditions import set_condition
from modelhub.vocab import conditions as C
from modelhub.vocab import reasons as R


@dataclass(frozen=True)
class Verdict:
    uid: str
    generation: int | None
    verified: bool
    reason: str  # the SignatureVerified reason computed
    message: str
    verified_digest: str | None  # the digest the signature covers (when verified)
    approved: bool  # a sealed approval record for this object is valid


def verdict_of(obj: Mapping[str, Any], *, verified: bool, reason: str, message: str,
               verified_digest: str | None, approved: bool) -> Verdict:
    m = obj.get("metadata") or {}
    return Verdict(str(m.get("uid") or ""), m.get("generation"), verified, reason, message,
                   verified_digest if verified else None, approved)


def current(verdict: Verdict | None, obj: Mapping[str, Any]) -> bool:
    """Whether `verdict` was computed for this very object (uid) at its current generation."""
    m = obj.get("metadata") or {}
    return verdict is not None and verdict.uid == str(m.get("uid") or "") and verdict.generation == m.get(
        "generation")


def overlay_verdicts(
    versions: Iterable[dict[str, Any]], verdicts: Mapping[tuple[str, str], Verdict], now: str, *,
    require_approval: bool = True,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The versions with SignatureVerified, Approved and ``status.verified.digest`` as this operator computed
    them, and the names of those it has no current verdict for (the caller waits for them). Without
    `require_approval` (the Model's spec.trust.requireApproval), Approved is True NotRequired, as the version
    reconcile writes it."""
    out: list[dict[str, Any]] = []
    missing: list[str] = []
    for v in versions:
        m = v.get("metadata") or {}
        verdict = verdicts.get((m.get("namespace") or "", m.get("name") or ""))
        status = dict(v.get("status") or {})
        conditions = status.get("conditions")
        gen = m.get("generation")
        revoked = any(c.get("type") == C.REVOKED and c.get("status") == C.TRUE for c in conditions or [])
        if not current(verdict, v):
            if not revoked and not m.get("deletionTimestamp"):  # (those are not served whatever their verdict)
                missing.append(str(m.get("name")))
            conditions = set_condition(conditions, C.SIGNATURE_VERIFIED, C.UNKNOWN, R.NOT_YET_VERIFIED,
                                       "not yet verified by this operator", gen, now)
            conditions = set_condition(conditions, C.APPROVED, C.FALSE, R.AWAITING_APPROVAL,
                                       "not yet checked by this operator", gen, now)
            status.pop("verified", None)
        else:
            assert verdict is not None
            conditions = set_condition(conditions, C.SIGNATURE_VERIFIED, C.TRUE if verdict.verified else C.FALSE,
                                       verdict.reason, verdict.message, gen, now)
            if not require_approval:
                conditions = set_condition(conditions, C.APPROVED, C.TRUE, R.NOT_REQUIRED,
                                           "the Model does not require approval", gen, now)
            else:
                conditions = set_condition(conditions, C.APPROVED, C.TRUE if verdict.approved else C.FALSE,
                                           R.APPROVED if verdict.approved else R.AWAITING_APPROVAL,
                                           "sealed approval record" if verdict.approved
                                           else "no valid approval record", gen, now)
            if verdict.verified:
                status["verified"] = {**(status.get("verified") or {}), "digest": verdict.verified_digest}
            else:
                status.pop("verified", None)
        status["conditions"] = conditions
        out.append({**v, "status": status})
    return out, missing
