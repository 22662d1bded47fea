"""Leader election on a coordination.k8s.io Lease, as a pure decision: given the Lease as read, who we are and
the time, what to write (create, renew, take over) or whether to wait as the standby."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def micro_time(t: dt.datetime) -> str:
    """metav1.MicroTime."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: Any) -> dt.datetime | None:
    if not isinstance(text, str):
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return dt.datetime.strptime(text, fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
    return None


@dataclass(frozen=True)
class LeaseDecision:
    action: str  # "create" | "renew" | "take" | "wait"
    spec: dict[str, Any] | None = None  # the Lease spec to write (None when waiting)
    holder: str | None = None  # who holds it now (for logs and metrics)


def decide_lease(lease: Mapping[str, Any] | None, identity: str, now: dt.datetime,
                 duration_seconds: int) -> LeaseDecision:
    """Acquire or renew the Lease when it is free, ours, or expired (its holder renewed it longer than its own
    leaseDurationSeconds ago); otherwise wait. A take-over increments leaseTransitions."""
    if lease is None:
        return LeaseDecision("create", {
            "holderIdentity": identity, "leaseDurationSeconds": duration_seconds,
            "acquireTime": micro_time(now), "renewTime": micro_time(now), "leaseTransitions": 0,
        }, identity)
    spec = dict(lease.get("spec") or {})
    holder = spec.get("holderIdentity") or None
    if holder == identity:
        return LeaseDecision("renew", {**spec, "renewTime": micro_time(now),
                                       "leaseDurationSeconds": duration_seconds}, identity)
    renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
    held_for = int(spec.get("leaseDurationSeconds") or duration_seconds)
    expired = holder is None or renewed is None or now >= renewed + dt.timedelta(seconds=held_for)
    if not expired:
        return LeaseDecision("wait", None, holder)
    return LeaseDecision("take", {
        "holderIdentity": identity, "leaseDurationSeconds": duration_seconds,
        "acquireTime": micro_time(now), "renewTime": micro_time(now),
        "leaseTransitions": int(spec.get("leaseTransitions") or 0) + 1,
    }, identity)


def still_leading(last_renewed: dt.datetime | None, now: dt.datetime, renew_deadline_seconds: float) -> bool:
    """A leader that has not renewed within the renew deadline stops acting (before its Lease can expire for
    the others: the deadline is shorter than the Lease's duration, so two never act at once)."""
    return last_renewed is not None and (now - last_renewed).total_seconds() < renew_deadline_seconds
