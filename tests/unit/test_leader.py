"""Leader election decisions on real Lease shapes."""

from __future__ import annotations

import datetime as dt

import pytest

from modelhub.domain.leader import decide_lease, micro_time, still_leading

NOW = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.UTC)


def lease(holder: str | None, renewed_ago: float | None, duration: int = 10, transitions: int = 3) -> dict:
    spec = {"holderIdentity": holder, "leaseDurationSeconds": duration, "leaseTransitions": transitions}
    if renewed_ago is not None:
        spec["renewTime"] = micro_time(NOW - dt.timedelta(seconds=renewed_ago))
    return {"metadata": {"resourceVersion": "7"}, "spec": spec}


@pytest.mark.parametrize(("obj", "action", "transitions"), [
    (None, "create", 0),
    (lease("me", 3), "renew", 3),
    (lease("other", 3), "wait", None),
    (lease("other", 9.9), "wait", None),
    (lease("other", 10), "take", 4),  # expired: its holder stopped renewing
    (lease("other", 60, duration=120), "wait", None),  # the holder's own duration counts
    (lease(None, None), "take", 4),  # released on a clean shutdown
    (lease("other", None), "take", 4),  # never renewed
])
def test_decide_lease(obj: dict | None, action: str, transitions: int | None) -> None:
    d = decide_lease(obj, "me", NOW, 10)
    assert d.action == action
    if transitions is None:
        assert d.spec is None and d.holder == "other"
    else:
        assert d.spec is not None and d.spec["holderIdentity"] == "me"
        assert d.spec["leaseTransitions"] == transitions
        assert d.spec["renewTime"] == micro_time(NOW)


@pytest.mark.parametrize(("ago", "leading"), [(None, False), (1, True), (7.9, True), (8, False), (30, False)])
def test_still_leading_stops_before_the_lease_can_expire(ago: float | None, leading: bool) -> None:
    renewed = None if ago is None else NOW - dt.timedelta(seconds=ago)
    assert still_leading(renewed, NOW, 8.0) is leading
