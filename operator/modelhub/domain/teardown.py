"""Which workloads a Revocation tears down: what a workload declares it serves, and the top-most owner to
delete so that no controller recreates what was deleted. Pure: lookups are passed in."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from modelhub.domain.revocation import normalize_digest
from modelhub.vocab import annotations as A
from modelhub.vocab import labels as L

# The kinds a workload serving an artifact can be, top-most first in the usual ownership chains.
WORKLOAD_KINDS: tuple[str, ...] = (
    "InferenceService", "CronJob", "Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet", "Pod",
)
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
MAX_OWNER_DEPTH = 6

Ref = tuple[str, str, str]  # (kind, namespace, name)
MetaLookup = Callable[[str, str, str], Mapping[str, Any] | None]  # metadata of an object, or None


@dataclass(frozen=True)
class Declared:
    digest: str | None  # normalized, when well-formed
    problem: str | None  # why the declaration is unusable (a Warning Event on the workload)


def declared_digest(obj: Mapping[str, Any]) -> Declared:
    """What a workload labelled `modelhub.dev/serves-artifact=true` declares in its digest annotation."""
    meta = obj.get("metadata") or {}
    raw = (meta.get("annotations") or {}).get(A.ARTIFACT_DIGEST)
    if raw is None:
        return Declared(None, f"labelled {L.SERVES_SELECTOR} but has no {A.ARTIFACT_DIGEST} annotation")
    digest = normalize_digest(str(raw))
    if not DIGEST_RE.match(digest):
        shown = str(raw)[:80]
        return Declared(None, f"annotation {A.ARTIFACT_DIGEST}={shown!r} is not sha256:<64 hex>; "
                              "revocations cannot match this workload")
    return Declared(digest, None)


def controller_of(meta: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, name) of the owner that controls an object, if any."""
    for ref in meta.get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("controller") and ref.get("kind") and ref.get("name"):
            return str(ref["kind"]), str(ref["name"])
    return None


def top_owner(ref: Ref, meta: Mapping[str, Any], lookup: MetaLookup) -> Ref | None:
    """The top-most workload that controls `ref` (itself if none): Pod -> ReplicaSet -> Deployment,
    Pod -> Job -> CronJob. Owners of other kinds (a ModelVersion owning our Deployment) end the walk.

    None when the chain is already being torn down: an object being deleted, or one whose controller is gone
    (the garbage collector removes it; deleting it too would only double the API server's work). `lookup`
    returns None for an object that does not exist and raises when it cannot tell (then the object at hand is
    deleted: a revocation wins over doubt).
    """
    current, current_meta = ref, meta
    for _ in range(MAX_OWNER_DEPTH):
        if current_meta.get("deletionTimestamp"):
            return None
        owner = controller_of(current_meta)
        if owner is None or owner[0] not in WORKLOAD_KINDS:
            return current
        nxt: Ref = (owner[0], current[1], owner[1])
        try:
            found = lookup(*nxt)
        except Exception:  # noqa: BLE001 - not readable: delete what we have
            return current
        if found is None:
            return None
        current, current_meta = nxt, found
    return current


def teardown_targets(serving: Iterable[tuple[Ref, Mapping[str, Any]]], lookup: MetaLookup) -> list[Ref]:
    """The distinct top-most owners of the workloads serving revoked artifacts, in a stable order. Owners that
    are themselves among `serving` are found there first (a Pod's ReplicaSet and Deployment usually are), so the
    walk does not depend on what else a cache has seen yet."""
    known = {ref: meta for ref, meta in serving}

    def first_known(kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        hit = known.get((kind, namespace, name))
        return hit if hit is not None else lookup(kind, namespace, name)

    return sorted({t for ref, meta in known.items() if (t := top_owner(ref, meta, first_known)) is not None})
