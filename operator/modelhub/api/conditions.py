"""Kubernetes-style status conditions as plain dicts. Pure helpers: no clock, no I/O.

A condition is ``{type, status, reason, message, lastTransitionTime, observedGeneration}``; a status's
``conditions`` list holds at most one entry per ``type``. ``lastTransitionTime`` changes only when ``status``
flips, so it tells *when the state last changed*, not when the operator last looked.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from modelhub.vocab.conditions import (  # noqa: F401 - the condition types, re-exported for the API types
    APPROVED,
    AVAILABLE,
    ENFORCED,
    READY,
    REVOKED,
    SIGNATURE_VERIFIED,
    STATUSES,
)

ConditionStatus = Literal["True", "False", "Unknown"]


def format_time(now: dt.datetime | str) -> str:
    """RFC 3339 in UTC with second precision (``2024-05-01T12:00:00Z``), the form metav1.Time uses."""
    if isinstance(now, str):
        return now
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status_text(status: bool | str) -> str:
    if isinstance(status, bool):
        return "True" if status else "False"
    if status not in STATUSES:
        raise ValueError(f"condition status must be one of {', '.join(STATUSES)}, not {status!r}")
    return status


def get_condition(conditions: list[dict[str, Any]] | None, type: str) -> dict[str, Any] | None:
    """The condition of ``type`` in ``conditions``, or None."""
    for cond in conditions or ():
        if cond.get("type") == type:
            return cond
    return None


def is_true(conditions: list[dict[str, Any]] | None, type: str) -> bool:
    """True when the condition of ``type`` exists and its status is ``"True"``."""
    cond = get_condition(conditions, type)
    return cond is not None and cond.get("status") == "True"


def set_condition(
    conditions: list[dict[str, Any]] | None,
    type: str,
    status: bool | str,
    reason: str,
    message: str,
    observed_generation: int | None,
    now: dt.datetime | str,
) -> list[dict[str, Any]]:
    """Return a new list with the condition of ``type`` set; the input list and its dicts are not modified.

    ``lastTransitionTime`` is kept from the existing condition when ``status`` is unchanged and set to ``now``
    otherwise (or when the existing one has none). The other conditions keep their order; a new type is appended.
    ``status`` may be ``"True"``/``"False"``/``"Unknown"`` or a bool.
    """
    status_text = _status_text(status)
    old = get_condition(conditions, type)
    if old is not None and old.get("status") == status_text and old.get("lastTransitionTime"):
        transition = old["lastTransitionTime"]
    else:
        transition = format_time(now)
    new: dict[str, Any] = {
        "type": type,
        "status": status_text,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    }
    if observed_generation is not None:
        new["observedGeneration"] = observed_generation
    out: list[dict[str, Any]] = []
    replaced = False
    for cond in conditions or ():
        if cond.get("type") == type:
            if not replaced:
                out.append(new)
                replaced = True
            continue  # also drops duplicates of the same type
        out.append(dict(cond))
    if not replaced:
        out.append(new)
    return out


def remove_condition(conditions: list[dict[str, Any]] | None, type: str) -> list[dict[str, Any]]:
    """Return a new list without the condition of ``type``."""
    return [dict(c) for c in conditions or () if c.get("type") != type]


__all__ = [
    "APPROVED",
    "AVAILABLE",
    "ENFORCED",
    "READY",
    "REVOKED",
    "SIGNATURE_VERIFIED",
    "STATUSES",
    "ConditionStatus",
    "format_time",
    "get_condition",
    "is_true",
    "remove_condition",
    "set_condition",
]
