"""Which versions of a Model to serve, and with how many replicas: a pure function of the Model, its
ModelVersions and the time.

The Model promotes versions by SemVer (``spec.promotion.stable`` and ``spec.promotion.canary.version``); a
version is served only while it is *eligible*: signature verified, approved when the Model requires approval, not
revoked. When a promoted version is not eligible the plan degrades safely:

- the stable is revoked and ``onRevocation: rollback`` (the default): serve the newest eligible version
  (``FellBack``), as DESIGN.md and the revocation issue define it: verified, approved, not revoked — whether
  older or newer than the revoked one; if there is none, serve nothing (``NoEligibleVersion``).
- the stable is revoked and ``onRevocation: none``: serve nothing (``Revoked``).
- the stable is not verified, not approved, missing, or being deleted: keep serving the previously served stable
  (``status.stableVersion``) if that one is still eligible, otherwise nothing; the reason is on ``Ready``.
- a canary that is not eligible is dropped; the stable takes all replicas.

The plan also carries the Model's new ``Ready`` and ``Progressing`` conditions, its promotion history and the
Events worth emitting for what changed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelhub.api.conditions import get_condition, set_condition
from modelhub.api.semver import Version, compare, parse
from modelhub.domain.placement import effective_serving
from modelhub.domain.workloads import ROLE_CANARY, ROLE_STABLE, split_replicas
from modelhub.vocab import conditions as C
from modelhub.vocab import reasons as R

HISTORY_LIMIT = 20

# (Spelled once in modelhub.vocab; the short names are kept for the planner and its tests.)
# Reasons: eligibility (also used on the Model's Ready condition).
ELIGIBLE = R.ELIGIBLE
NOT_VERIFIED = R.NOT_VERIFIED
NOT_APPROVED = R.NOT_APPROVED
REVOKED = R.REVOKED
WRONG_MODEL = R.WRONG_MODEL
DELETING = R.DELETING
# Reasons on the Model's Ready condition.
SERVING = R.SERVING
VERSION_NOT_FOUND = R.VERSION_NOT_FOUND
NO_ELIGIBLE_VERSION = R.NO_ELIGIBLE_VERSION
NO_PROMOTION = R.NO_PROMOTION
FELL_BACK = R.FELL_BACK
# Reasons on the Model's Progressing condition (besides the eligibility reasons of a dropped canary).
CANARY_ACTIVE = R.CANARY_ACTIVE
NO_CANARY = R.NO_CANARY
NO_STABLE = R.NO_STABLE
SAME_AS_STABLE = R.SAME_AS_STABLE
ZERO_WEIGHT = R.ZERO_WEIGHT
INVALID_WEIGHT = R.INVALID_WEIGHT
# Reasons of history entries and Events for changes of what is served.
PROMOTED = R.PROMOTED
ROLLED_BACK = R.ROLLED_BACK
SERVING_STOPPED = R.SERVING_STOPPED
CANARY_STARTED = R.CANARY_STARTED
CANARY_STOPPED = R.CANARY_STOPPED
CANARY_WEIGHT_CHANGED = R.CANARY_WEIGHT_CHANGED

READY = C.READY
PROGRESSING = C.PROGRESSING
NORMAL = C.NORMAL
WARNING = C.WARNING


@dataclass(frozen=True)
class Workload:
    """One Deployment to run: the ModelVersion (``version_name`` is its metadata.name, ``version`` its SemVer),
    its role and its replica count."""

    version_name: str
    version: str
    role: str
    replicas: int


@dataclass(frozen=True)
class RolloutPlan:
    """What to serve for one Model and what to record about it.

    ``workloads``: stable first, then the canary (each at most once; replicas may be 0 when the Model asks for 0
    or the canary weight is 100). ``stable_version``/``canary_version``/``canary_weight``: what is served (for
    ``status.stableVersion``, ``status.canaryVersion``, ``status.canaryWeight``; weight is 0 without a canary).
    ``conditions``: the Model's conditions with ``Ready`` and ``Progressing`` set. ``history``: the new
    ``status.history`` (capped at 20). ``events``: ``(type, reason, message)`` Kubernetes Events to emit.
    """

    workloads: tuple[Workload, ...]
    stable_version: str | None
    canary_version: str | None
    conditions: list[dict[str, Any]]
    history: list[dict[str, Any]]
    events: list[tuple[str, str, str]]
    canary_weight: int = 0


# --- helpers ----------------------------------------------------------------------------------------------
def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("spec") or {}


def _status(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("status") or {}


def _parse(text: Any) -> Version | None:
    if not isinstance(text, str):
        return None
    try:
        return parse(text)
    except ValueError:
        return None


def _label(version: dict[str, Any]) -> str:
    """``<semver> (<ModelVersion name>)`` for messages."""
    return f"{_spec(version).get('version')} ({_meta(version).get('name')})"


def _belongs(model: dict[str, Any], version: dict[str, Any]) -> bool:
    mns, vns = _meta(model).get("namespace"), _meta(version).get("namespace")
    return _spec(version).get("model") == _meta(model).get("name") and (
        mns is None or vns is None or mns == vns
    )


def _condition_detail(cond: dict[str, Any] | None) -> str:
    if not cond:
        return "no condition yet"
    parts = [f"{cond.get('status')}"]
    if cond.get("reason"):
        parts.append(str(cond["reason"]))
    text = ", ".join(parts)
    return f"{text}: {cond['message']}" if cond.get("message") else text


# --- eligibility ------------------------------------------------------------------------------------------
def eligible(model: dict[str, Any], version: dict[str, Any]) -> tuple[bool, str, str]:
    """Whether ``version`` may be served for ``model``, as ``(ok, reason, message)``.

    Checked in this order (the first failure is the reason): the version names this model in the same namespace
    (``WrongModel``); it is not being deleted (``Deleting``); its ``Revoked`` condition is not True
    (``Revoked``); its ``SignatureVerified`` condition is True and ``status.verified.digest``, when present,
    equals ``spec.artifact.digest`` (``NotVerified``); its ``Approved`` condition is True when the Model's
    ``spec.trust.requireApproval`` is set (``NotApproved``). Otherwise ``(True, "Eligible", ...)``.
    """
    name = _meta(version).get("name")
    vspec = _spec(version)
    label = f"version {vspec.get('version')} ({name})"
    conditions = _status(version).get("conditions") or []
    if not _belongs(model, version):
        return (
            False,
            WRONG_MODEL,
            f"{label} belongs to model {_meta(version).get('namespace')}/{vspec.get('model')}, "
            f"not {_meta(model).get('namespace')}/{_meta(model).get('name')}",
        )
    if _meta(version).get("deletionTimestamp"):
        return False, DELETING, f"{label} is being deleted"
    revoked = get_condition(conditions, C.REVOKED)
    if revoked is not None and revoked.get("status") == C.TRUE:
        return False, REVOKED, f"{label} is revoked ({_condition_detail(revoked)})"
    verified = get_condition(conditions, C.SIGNATURE_VERIFIED)
    if verified is None or verified.get("status") != C.TRUE:
        return (
            False,
            NOT_VERIFIED,
            f"{label} has no verified signature (SignatureVerified {_condition_detail(verified)})",
        )
    verified_digest = (_status(version).get("verified") or {}).get("digest")
    spec_digest = (vspec.get("artifact") or {}).get("digest")
    if verified_digest and verified_digest != spec_digest:
        return (
            False,
            NOT_VERIFIED,
            f"{label}: the verified digest {verified_digest} is not the artifact digest {spec_digest}",
        )
    require_approval = bool((_spec(model).get("trust") or {}).get("requireApproval"))
    if require_approval:
        approved = get_condition(conditions, C.APPROVED)
        if approved is None or approved.get("status") != C.TRUE:
            return False, NOT_APPROVED, f"{label} is not approved (Approved {_condition_detail(approved)})"
    return (
        True,
        ELIGIBLE,
        f"{label} is verified{', approved' if require_approval else ''} and not revoked",
    )


def _resolve(
    model: dict[str, Any], mine: list[dict[str, Any]], wanted: str
) -> tuple[dict[str, Any] | None, bool, str, str]:
    """The ModelVersion of this model whose spec.version is ``wanted``: ``(version, ok, reason, message)``.
    With several (which admission should prevent) the first eligible by name wins."""
    candidates = sorted(
        (v for v in mine if _spec(v).get("version") == wanted), key=lambda v: str(_meta(v).get("name"))
    )
    if not candidates:
        return (
            None,
            False,
            VERSION_NOT_FOUND,
            f"no ModelVersion of model {_meta(model).get('name')} has version {wanted}",
        )
    first: tuple[dict[str, Any] | None, bool, str, str] | None = None
    for v in candidates:
        ok, reason, message = eligible(model, v)
        if ok:
            return v, ok, reason, message
        first = first or (v, ok, reason, message)
    assert first is not None
    return first


_Candidate = tuple[Version, str, str, dict[str, Any]]


def _compare(a: _Candidate, b: _Candidate) -> int:
    """SemVer precedence, then the version text (build metadata), then the object name: a total order."""
    return compare(a[0], b[0]) or (a[1] > b[1]) - (a[1] < b[1]) or (a[2] > b[2]) - (a[2] < b[2])


def _fallback(model: dict[str, Any], mine: list[dict[str, Any]], revoked: str) -> dict[str, Any] | None:
    """The newest (by SemVer precedence) eligible version of this model other than ``revoked``."""
    candidates: list[_Candidate] = []
    for v in mine:
        text = _spec(v).get("version")
        parsed = _parse(text)
        if parsed is None or text == revoked:
            continue
        if eligible(model, v)[0]:
            candidates.append((parsed, str(text), str(_meta(v).get("name")), v))
    if not candidates:
        return None
    best = max(candidates, key=functools.cmp_to_key(_compare))
    return best[3]


def _previous(status: dict[str, Any]) -> tuple[str | None, str | None, int]:
    """What the last status says was served: ``(stable, canary, weight)``, from ``status.stableVersion`` /
    ``canaryVersion`` / ``canaryWeight``, else from the last history entry."""
    source: dict[str, Any] = {}
    if any(k in status for k in ("stableVersion", "canaryVersion", "canaryWeight")):
        source = {
            "stable": status.get("stableVersion"),
            "canary": status.get("canaryVersion"),
            "canaryWeight": status.get("canaryWeight"),
        }
    elif status.get("history"):
        source = status["history"][-1] or {}
    canary = source.get("canary") or None
    weight = source.get("canaryWeight") or 0
    return source.get("stable") or None, canary, int(weight) if canary else 0


def _older(new: str | None, old: str | None) -> bool:
    a, b = _parse(new), _parse(old)
    return a is not None and b is not None and compare(a, b) < 0


def _replica_text(n: int) -> str:
    return f"{n} replica{'' if n == 1 else 's'}"


# --- the plan ---------------------------------------------------------------------------------------------
def plan_rollout(model: dict[str, Any], versions: list[dict[str, Any]], now: str,
                 split: Callable[[int, int], tuple[int, int]] = split_replicas) -> RolloutPlan:
    """The rollout of ``model`` given every ModelVersion it may use (others in ``versions`` are ignored).

    Pure: the result depends only on the arguments (``now`` is the RFC 3339 time stamped on conditions and
    history). See the module docstring for the degradation rules; replicas: the stable version's effective
    ``serving.replicas`` (Model default, version override), split with
    :func:`~modelhub.domain.workloads.split_replicas` when an eligible canary has a weight above 0 (``split``:
    another rule, e.g. the one of a traffic router, which splits requests rather than replicas).
    """
    meta, spec, status = _meta(model), _spec(model), _status(model)
    model_name = meta.get("name")
    generation = meta.get("generation")
    mine = [v for v in versions if _belongs(model, v)]
    promotion = spec.get("promotion") or {}
    stable_wanted = promotion.get("stable") or None
    canary_spec = promotion.get("canary") or {}
    on_revocation = promotion.get("onRevocation") or "rollback"
    prev_stable, prev_canary, prev_weight = _previous(status)

    # --- the stable ---
    stable_mv: dict[str, Any] | None = None
    stable_issue: tuple[str, str] | None = None  # (reason, message) for Ready
    fell_back = False
    if not stable_wanted:
        stable_issue = (
            NO_PROMOTION,
            f"model {model_name} promotes no version (spec.promotion.stable is empty)",
        )
    else:
        mv, ok, reason, message = _resolve(model, mine, stable_wanted)
        if ok:
            stable_mv = mv
        elif reason == REVOKED and on_revocation == "rollback":
            stable_mv = _fallback(model, mine, stable_wanted)
            if stable_mv is not None:
                fell_back = True
                stable_issue = (
                    FELL_BACK,
                    f"stable {stable_wanted} is revoked; fell back to {_label(stable_mv)}, the newest eligible "
                    f"version ({message})",
                )
            else:
                stable_issue = (
                    NO_ELIGIBLE_VERSION,
                    f"stable {stable_wanted} is revoked and no other version of model {model_name} is verified, "
                    f"approved and unrevoked: serving nothing ({message})",
                )
        elif reason == REVOKED:
            stable_issue = (REVOKED, f"{message}; onRevocation is none: serving nothing")
        else:
            kept = None
            if prev_stable and prev_stable != stable_wanted:
                pmv, pok, _, _ = _resolve(model, mine, prev_stable)
                kept = pmv if pok else None
            if kept is not None:
                stable_mv = kept
                stable_issue = (reason, f"{message}; still serving the previous stable {_label(kept)}")
            else:
                stable_issue = (reason, f"{message}; serving nothing")

    stable_version = _spec(stable_mv).get("version") if stable_mv else None

    # --- the canary ---
    canary_mv: dict[str, Any] | None = None
    canary_issue: tuple[str, str] | None = None  # ineligible canary: also makes Ready False
    canary_note: tuple[str, str] | None = None  # canary not started for a benign reason: Progressing only
    canary_wanted = canary_spec.get("version") or None
    weight = canary_spec.get("weight", 0)
    if weight is None:
        weight = 0
    if canary_wanted:
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            canary_note = (INVALID_WEIGHT, f"canary {canary_wanted} has weight {weight!r}, not within 0..100")
        elif stable_mv is None:
            canary_note = (NO_STABLE, f"canary {canary_wanted} not started: no stable version is served")
        elif canary_wanted == stable_version:
            canary_note = (SAME_AS_STABLE, f"canary {canary_wanted} is the served stable version")
        elif weight == 0:
            canary_note = (ZERO_WEIGHT, f"canary {canary_wanted} has weight 0: not started")
        else:
            cmv, ok, reason, message = _resolve(model, mine, canary_wanted)
            if ok:
                canary_mv = cmv
            else:
                canary_issue = (
                    reason,
                    f"canary dropped: {message}; stable {stable_version} takes all replicas",
                )
    canary_version = _spec(canary_mv).get("version") if canary_mv else None
    canary_weight = int(weight) if canary_mv else 0

    # --- replicas ---
    workloads: list[Workload] = []
    total = stable_replicas = canary_replicas = 0
    if stable_mv is not None:
        serving = effective_serving(spec.get("serving"), _spec(stable_mv).get("serving"))
        wanted_total = serving.get("replicas")
        if isinstance(wanted_total, int) and not isinstance(wanted_total, bool) and wanted_total >= 0:
            total = wanted_total
        else:
            total = 1
        if canary_mv is not None:
            stable_replicas, canary_replicas = split(total, canary_weight)
        else:
            stable_replicas = total
        workloads.append(
            Workload(_meta(stable_mv)["name"], str(stable_version), ROLE_STABLE, stable_replicas)
        )
        if canary_mv is not None:
            workloads.append(
                Workload(_meta(canary_mv)["name"], str(canary_version), ROLE_CANARY, canary_replicas)
            )

    # --- conditions ---
    conditions = list(status.get("conditions") or [])
    old_ready = get_condition(conditions, READY)
    issues = [i for i in (stable_issue, canary_issue) if i]
    if issues == [stable_issue] and stable_issue and stable_issue[0] == NO_PROMOTION:
        # Nothing promoted yet is a valid, fully reconciled state (a Model registered ahead of its versions).
        ready_status, ready_reason, ready_message = C.TRUE, NO_PROMOTION, stable_issue[1]
    elif issues:
        ready_status, ready_reason = C.FALSE, issues[0][0]
        ready_message = "; ".join(m for _, m in issues)
    else:
        ready_status, ready_reason = C.TRUE, SERVING
        ready_message = f"serving stable {_label(stable_mv or {})} with {_replica_text(stable_replicas)}"
        if canary_mv is not None:
            ready_message += (
                f" and canary {_label(canary_mv)} with {_replica_text(canary_replicas)} ({canary_weight}%)"
            )
        if canary_note:
            ready_message += f"; {canary_note[1]}"
    conditions = set_condition(conditions, READY, ready_status, ready_reason, ready_message, generation, now)

    progressing: tuple[str, str, str]
    if canary_mv is not None:
        progressing = (
            C.TRUE,
            CANARY_ACTIVE,
            f"canary {_label(canary_mv)} at {canary_weight}%: {canary_replicas} of "
            f"{stable_replicas + canary_replicas} replicas (stable {stable_version}: {stable_replicas})",
        )
    elif canary_issue or canary_note:
        reason, message = canary_issue or canary_note or ("", "")
        progressing = (C.FALSE, reason, message)
    else:
        progressing = (C.FALSE, NO_CANARY, "no canary promoted")
    conditions = set_condition(conditions, PROGRESSING, *progressing, generation, now)

    # --- history and events ---
    events: list[tuple[str, str, str]] = []
    history = list(status.get("history") or [])
    served = (stable_version, canary_version, canary_weight)
    if served != (prev_stable, prev_canary, prev_weight):
        reasons: list[str] = []
        if stable_version != prev_stable:
            if stable_version is None:
                reasons.append(SERVING_STOPPED)
                events.append((WARNING, SERVING_STOPPED, f"stopped serving {prev_stable}: {ready_message}"))
            elif fell_back:
                reasons.append(FELL_BACK)
                events.append((WARNING, FELL_BACK, ready_message))
            elif _older(stable_version, prev_stable):
                reasons.append(ROLLED_BACK)
                events.append(
                    (
                        NORMAL,
                        ROLLED_BACK,
                        f"rolled back stable from {prev_stable} to {_label(stable_mv or {})}",
                    )
                )
            else:
                reasons.append(PROMOTED)
                was = f" (was {prev_stable})" if prev_stable else ""
                events.append((NORMAL, PROMOTED, f"promoted {_label(stable_mv or {})} to stable{was}"))
        if canary_version != prev_canary:
            if canary_version is not None:
                reasons.append(CANARY_STARTED)
                events.append(
                    (
                        NORMAL,
                        CANARY_STARTED,
                        f"canary {_label(canary_mv or {})} started at {canary_weight}% "
                        f"({canary_replicas} of {stable_replicas + canary_replicas} replicas)",
                    )
                )
            elif prev_canary != stable_version:  # a canary promoted to stable is not "stopped"
                reasons.append(CANARY_STOPPED)
                why = f": {canary_issue[1]}" if canary_issue else ""
                events.append((NORMAL, CANARY_STOPPED, f"canary {prev_canary} stopped{why}"))
        elif canary_weight != prev_weight:
            reasons.append(CANARY_WEIGHT_CHANGED)
            events.append(
                (
                    NORMAL,
                    CANARY_WEIGHT_CHANGED,
                    f"canary {canary_version} weight {prev_weight}% -> {canary_weight}% "
                    f"({canary_replicas} of {stable_replicas + canary_replicas} replicas)",
                )
            )
        entry: dict[str, Any] = {"at": now}
        if stable_version is not None:
            entry["stable"] = stable_version
        if canary_version is not None:
            entry["canary"] = canary_version
        entry["canaryWeight"] = canary_weight
        entry["reason"] = reasons[0] if reasons else PROMOTED
        history.append(entry)
    history = history[-HISTORY_LIMIT:]

    # a Ready that turns False (or changes its reason) is worth an Event once, unless one was already emitted
    if ready_status == C.FALSE and not (
        old_ready and old_ready.get("status") == C.FALSE and old_ready.get("reason") == ready_reason
    ):
        if ready_reason not in {r for _, r, _ in events}:
            events.append((NORMAL if ready_reason == NO_PROMOTION else WARNING, ready_reason, ready_message))

    return RolloutPlan(
        workloads=tuple(workloads),
        stable_version=stable_version,
        canary_version=canary_version,
        conditions=conditions,
        history=history,
        events=events,
        canary_weight=canary_weight,
    )


__all__ = [
    "HISTORY_LIMIT",
    "RolloutPlan",
    "Workload",
    "eligible",
    "plan_rollout",
]
