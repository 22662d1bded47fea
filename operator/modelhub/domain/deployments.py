"""Pure decisions about the Deployments of a Model: write or skip, replace on drift, and the make-before-break
hand-over from the versions served before to the ones the rollout plan wants now.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelhub.vocab import annotations as A
from modelhub.vocab import conditions as C
from modelhub.vocab import reasons as R


class Write(enum.Enum):
    SKIP = "skip"  # the live object already holds everything we set
    APPLY = "apply"  # server-side apply (create, or bring our fields back)
    REPLACE = "replace"  # somebody else edited the spec: put the whole object back


@dataclass(frozen=True)
class WriteDecision:
    write: Write
    # When skipping an object that is ours as it stands (e.g. after a restart): the generation to record, so a
    # later hand edit shows as a generation past it.
    adopt_generation: int | None = None


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def covers(live: Any, want: Any) -> bool:
    """Whether `live` holds every field of `want`. Server defaults may add fields; lists keep their order and
    length; a zero value we set may be omitted (the API server leaves out e.g. `initialDelaySeconds: 0`)."""
    if isinstance(want, dict):
        return isinstance(live, dict) and all(
            covers(live[k], v) if k in live else v in (0, "", None) or v == [] or v == {}
            for k, v in want.items()
        )
    if isinstance(want, list):
        return isinstance(live, list) and len(live) == len(want) and all(map(covers, live, want))
    return bool(live == want)


def decide_write(live: Mapping[str, Any] | None, desired: Mapping[str, Any], recorded: int | None) -> WriteDecision:
    """How to make the live Deployment what we want.

    `recorded` is the generation our last write produced (None: unknown, e.g. after a restart). Nothing is written
    when the live object holds every field we set and nobody else changed its spec: every watch event of a
    Deployment (status updates) reconciles its Model, and re-applying an unchanged object each time is a
    server-side apply the API server must still decode and merge. A generation past the one we wrote means a hand
    edit: replace the whole object (drift correction). Unknown: server-side apply with force restores every field
    we own, and the generation is recorded from then on.
    """
    if live is None or _meta(live).get("deletionTimestamp"):
        return WriteDecision(Write.APPLY)
    generation = int(_meta(live).get("generation") or 0)
    if recorded is not None and generation > recorded:
        return WriteDecision(Write.REPLACE)
    m, want = _meta(live), desired["metadata"]
    if (covers(live.get("spec"), desired["spec"]) and covers(m.get("labels") or {}, want.get("labels") or {})
            and covers(m.get("annotations") or {}, want.get("annotations") or {})
            and covers(m.get("ownerReferences") or [], want.get("ownerReferences") or [])):
        return WriteDecision(Write.SKIP, adopt_generation=generation if recorded is None else None)
    return WriteDecision(Write.APPLY)


def ready_replicas(dep: Mapping[str, Any] | None) -> int:
    return int(((dep or {}).get("status") or {}).get("readyReplicas") or 0)


def _unschedulable(version: Mapping[str, Any] | None) -> bool:
    return any(c.get("type") == C.AVAILABLE and c.get("reason") == R.UNSCHEDULABLE
               for c in ((version or {}).get("status") or {}).get("conditions") or [])


@dataclass(frozen=True)
class Handover:
    handing_over: bool  # some wanted Deployment is not serving yet
    delete: tuple[str, ...]  # Deployments to delete now
    keep: tuple[str, ...]  # no longer wanted, but serving until their successors are ready


def plan_handover(
    desired: Sequence[Mapping[str, Any]],
    live: Sequence[Mapping[str, Any]],
    versions: Mapping[str, Mapping[str, Any]],
    may_serve: Callable[[Mapping[str, Any]], bool],
) -> Handover:
    """Make before break. A wanted Deployment has arrived when it serves all its replicas, or when it cannot be
    placed (the GPUs it needs may be held by the version it replaces: waiting would wait forever). Until all have
    arrived, a Deployment that is no longer wanted keeps serving if it serves at all and its version may still be
    served (`may_serve`: verified, approved, not revoked); revoked, unverified or unapproved ones go at once.

    `versions` maps ModelVersion names to objects; `live` is the Model's Deployments as they are now.
    """
    by_name = {_meta(d)["name"]: d for d in live}
    wanted = {d["metadata"]["name"] for d in desired}

    def arrived(d: Mapping[str, Any]) -> bool:
        name = d["metadata"]["name"]
        return ready_replicas(by_name.get(name)) >= int(d["spec"]["replicas"]) or _unschedulable(versions.get(name))

    handing_over = bool(desired) and not all(arrived(d) for d in desired)
    delete, keep = [], []
    for name, dep in sorted(by_name.items()):
        if name in wanted:
            continue
        version = versions.get((_meta(dep).get("annotations") or {}).get(A.MODEL_VERSION) or name)
        if handing_over and ready_replicas(dep) and version is not None and may_serve(version):
            keep.append(name)
        else:
            delete.append(name)
    return Handover(handing_over, tuple(delete), tuple(keep))


def service_needs_apply(*, any_written: bool, services_watched: bool, cached: bool, model_changed: bool) -> bool:
    """The Service depends on the Model alone: when Services are watched (cached), apply it only when it is
    missing, the Model changed or one of its Deployments was written — not on every status update of a
    Deployment. Unwatched, apply it every time: a deleted one must come back."""
    return any_written or not services_watched or not cached or model_changed
