"""When to look at an object again: the requeue policy of the reconcilers, as pure functions of what they saw."""

from __future__ import annotations

import datetime as dt
from typing import Any

# A new version, verified and servable but not deployed yet, has its first status held until its Model has
# planned with its verdict, at most this many seconds after its creation: the Model is reconciled at once and
# writes its Deployment, and the version's first status then says Verified and Progressing in one write (or, not
# deployed, Verified and NotPromoted) instead of two. The status write, one of a version's three during a
# rollout, is not on the way from create to Deployment. (At 3 s, a burst of 1000 new versions outran it: 2.8
# status writes per version; the bound only matters when its Model is slow to reconcile.)
FIRST_STATUS_HOLD = 10.0
# A version whose pods are still coming up, when the time its pods are asked why is unknown: look again after
# this many seconds (why pods do not serve, the scheduler's or the loader's word, comes with no event of a
# Deployment; versions.pods_question says when they are asked).
WORKLOAD_SETTLING = 5.0
# A Model whose Deployments are still coming up: a safety net only, their status changes are watch events that
# reconcile it. (At 3 s, a thousand Models coming up on a loaded cluster reconciled 20 times each for nothing.)
MODEL_SETTLING = 10.0
# A Revocation whose workloads are not all gone yet.
REVOCATION_REMAINING = 1.0
# A Model with versions this operator has not verified yet looks again after this (a safety net: each version's
# reconcile enqueues its Model as soon as it has a verdict; a burst of new versions can take longer than a few
# seconds to verify, and a short wait would reconcile every waiting Model again and again for nothing).
UNVERIFIED_WAIT = 10.0
# A bundle in a store that is missing or unreachable: no watch sees it land, so look again — every 5 s at first,
# then at half the age of the failure, at most every 5 minutes.
BUNDLE_RETRY_MIN = 5.0
BUNDLE_RETRY_MAX = 300.0
# A failed reconcile: exponential backoff from half a second, at most a minute.
FAILURE_FIRST = 0.5
FAILURE_MAX = 60.0


def parse_time(ts: Any) -> dt.datetime | None:
    """A Kubernetes timestamp (RFC 3339, UTC, whole seconds) as a datetime; None when it is not one."""
    if not isinstance(ts, str):
        return None
    try:
        return dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def first_status_hold(created: Any, now: dt.datetime) -> float | None:
    """Seconds left to hold the first status of a version created at `created`; None when the hold is over (or
    the creation time is unknown)."""
    since = parse_time(created)
    if since is None:
        return None
    left = FIRST_STATUS_HOLD - (now - since).total_seconds()
    return left if left > 0 else None


def bundle_retry_delay(failing_since: str | None, now: dt.datetime) -> float:
    """Seconds until the next fetch of a bundle that has failed (with the same reason) since `failing_since`."""
    since = parse_time(failing_since)
    age = max(0.0, (now - since).total_seconds()) if since else 0.0
    return min(max(age / 2, BUNDLE_RETRY_MIN), BUNDLE_RETRY_MAX)


def failure_backoff(attempt: int) -> float:
    """Seconds before retrying a reconcile that failed `attempt` times in a row (attempt >= 1)."""
    return min(FAILURE_FIRST * 2 ** (max(attempt, 1) - 1), FAILURE_MAX)


def revocation(remaining: int) -> float | None:
    return REVOCATION_REMAINING if remaining else None


def soonest(*delays: float | None) -> float | None:
    found = [d for d in delays if d is not None]
    return min(found) if found else None
