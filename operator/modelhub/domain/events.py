"""Which condition changes are worth a Kubernetes Event: structured transitions, and the filter over them.

Every Event is an API write; a burst of new versions would otherwise write about ten each. A transition is a
value (type, status, reason, message), never a string parsed back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelhub.api.conditions import get_condition
from modelhub.vocab import conditions as C
from modelhub.vocab import reasons as R


@dataclass(frozen=True)
class Event:
    """One Kubernetes Event to record about an object."""

    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Transition:
    """A condition that appeared, or whose status or reason changed."""

    condition: str
    status: str
    reason: str
    message: str
    first: bool  # the condition did not exist before

    @property
    def warning(self) -> bool:
        """Bad news: a version became revoked, or some other condition turned False (not "not promoted")."""
        return (self.condition == C.REVOKED) == (self.status == C.TRUE) and self.reason != R.NOT_PROMOTED

    def event(self) -> Event:
        return Event(C.WARNING if self.warning else C.NORMAL, self.reason,
                     f"{self.condition}={self.status}: {self.message}")


def transitions(old: list[dict[str, Any]] | None, new: list[dict[str, Any]]) -> list[Transition]:
    """Every condition of `new` whose status or reason differs from `old` (or that `old` lacks), in order."""
    out = []
    for c in new:
        prev = get_condition(old, c["type"])
        if prev is None or prev.get("status") != c["status"] or prev.get("reason") != c["reason"]:
            out.append(Transition(c["type"], c["status"], c["reason"], c.get("message", ""), prev is None))
    return out


# The "nothing to report" first states of a new version: not an Event.
_QUIET_FIRST = frozenset({(C.REVOKED, R.NOT_REVOKED), (C.APPROVED, R.NOT_REQUIRED), (C.READY, R.NOT_PROMOTED),
                          (C.AVAILABLE, R.NOT_PROMOTED)})
# Passing states, no Event unless the version was serving: pods coming up are news when they serve (Serving) or
# cannot (Unschedulable, ArtifactRejected), and a version not promoted (yet, or again after a lifted Revocation) is
# news only when it stops serving. Each Event is a write, and a rollout of many versions would otherwise pay too.
_QUIET = frozenset({(C.READY, R.PROGRESSING), (C.AVAILABLE, R.PROGRESSING), (C.READY, R.NOT_PROMOTED),
                    (C.AVAILABLE, R.NOT_PROMOTED)})
_WORKLOAD = frozenset({C.READY, C.AVAILABLE})


def version_events(old: list[dict[str, Any]] | None, new: list[dict[str, Any]]) -> list[Event]:
    """The Events for a ModelVersion's condition changes: not the first quiet state of a new version, not a
    passing state (pods coming up), and never the same news twice: not `Available` when `Ready` makes the same
    turn, nor `Ready` or `Available` turning for the reason another condition turned with (a Revocation, a
    refused signature: that condition's Event says it)."""
    changed = transitions(old, new)
    ready_turned = {t.status for t in changed if t.condition == C.READY}
    said = {t.reason for t in changed if t.condition not in _WORKLOAD}
    was_serving = (get_condition(old, C.READY) or {}).get("status") == C.TRUE  # then losing its pods is news
    out = []
    for t in changed:
        if t.first and (t.condition, t.reason) in _QUIET_FIRST:
            continue
        if (t.condition, t.reason) in _QUIET and not was_serving:
            continue
        if t.condition == C.AVAILABLE and t.status in ready_turned:
            continue
        if t.condition in _WORKLOAD and t.reason in said:
            continue
        out.append(t.event())
    return out
