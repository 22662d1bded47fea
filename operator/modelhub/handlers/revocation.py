"""Revocation reconcile: resolve the matches from the in-memory index, tear the workloads down in parallel
(intent recorded first, crash-safe), then record enforcement and send the versions and Models to their
reconcilers (which mark the versions Revoked and fall back)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from modelhub.adapters import failpoints, metrics
from modelhub.domain import requeue
from modelhub.domain import revocation as rdomain
from modelhub.domain.events import Event
from modelhub.domain.teardown import WORKLOAD_KINDS, Ref, controller_of, teardown_targets
from modelhub.handlers.context import Context
from modelhub.handlers.status import write_status
from modelhub.vocab import conditions as C
from modelhub.vocab import reasons as R

log = logging.getLogger(__name__)


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _owned(meta: dict[str, Any]) -> bool:
    owner = controller_of(meta)
    return owner is not None and owner[0] in WORKLOAD_KINDS


class RevocationReconciler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def revoked_digests(self, rev: dict[str, Any]) -> set[str]:
        match = (rev.get("spec") or {}).get("match") or {}
        digests = {rdomain.normalize_digest(d) for d in match.get("digests") or [] if isinstance(d, str)}
        digests |= {rdomain.normalize_digest(d) for d in (rev.get("status") or {}).get("revokedDigests") or []
                    if isinstance(d, str)}
        digests |= self.ctx.late_digests.get(_meta(rev)["name"], set())
        for key in self.ctx.index.match(match):
            digests.add(self.ctx.index.facts[key].digest)
        return {d for d in digests if d}

    def serving(self, digests: set[str]) -> list[tuple[Ref, dict[str, Any]]]:
        """Every cached workload, of every kind, that declares one of `digests`."""
        out = []
        for kind in WORKLOAD_KINDS:
            for digest in digests:
                for obj in self.ctx.cache.by(kind, "digest", digest):
                    m = _meta(obj)
                    out.append(((kind, m.get("namespace") or "", m["name"]), m))
        return out

    def _lookup(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """An owner's metadata: from the cache when it is watched (declares an artifact), else from the API."""
        if (kind, namespace, name) in self.ctx.recently_deleted:
            return None  # we deleted it: what it controls is the garbage collector's
        cached = self.ctx.cache.get(kind, namespace, name)
        if cached is not None:
            return _meta(cached)
        return self.ctx.kube.get_metadata(kind, namespace, name)

    async def targets(self, digests: set[str]) -> list[Ref]:
        serving = self.serving(digests)
        if not serving:
            return []
        if all(not _owned(m) for _, m in serving):  # nothing to look up: no thread hop
            return teardown_targets(serving, self._lookup)
        return await self.ctx.io(teardown_targets, serving, self._lookup)  # type: ignore[no-any-return]

    async def teardown(self, workloads: list[Ref]) -> int:
        """Delete workloads in parallel with bounded concurrency; the number actually deleted by us."""
        ctx = self.ctx
        loop = asyncio.get_running_loop()
        ctx.tearing.update((ns, name) for kind, ns, name in workloads if kind == "Deployment")

        async def one(kind: str, ns: str, name: str) -> bool:
            uid = (_meta(ctx.cache.get(kind, ns, name) or {}).get("uid")) or None
            # The dedicated pool's size is the concurrency bound; nothing else queues in it.
            gone = await loop.run_in_executor(ctx.teardown_pool, ctx.kube.delete_workload, kind, ns, name)
            failpoints.hit("revocation.mid-delete")
            ctx.cache.drop(kind, ns, name)
            if len(ctx.recently_deleted) > 100_000:
                ctx.recently_deleted.clear()
            ctx.recently_deleted[(kind, ns, name)] = uid
            if kind == "Deployment":
                ctx.applied_generation.pop((ns, name), None)
                if not gone:  # already gone: no DELETED echo will end the suppression
                    ctx.tearing.discard((ns, name))
            return bool(gone)

        results = await asyncio.gather(*(one(*ref) for ref in workloads))
        for kind in {ref[0] for ref in workloads}:
            metrics.record_teardown(kind, sum(1 for ref, gone in zip(workloads, results, strict=True)
                                              if gone and ref[0] == kind))
        return sum(results)

    async def reconcile(self, namespace: str, name: str) -> float | None:  # noqa: ARG002 - cluster-scoped
        ctx = self.ctx
        rev = ctx.cache.get("Revocation", "", name)
        if rev is None or _meta(rev).get("deletionTimestamp"):
            return None
        started = time.monotonic()
        gen = _meta(rev).get("generation")
        matched = ctx.index.match((rev.get("spec") or {}).get("match") or {})
        digests = self.revoked_digests(rev)
        targets = await self.targets(digests)
        deleted = 0
        if targets:
            log.debug("Revocation %s: tearing down %s%s", name, targets[:5], " …" if len(targets) > 5 else "")
            # Record the teardown as it starts (in parallel with the deletes, which are what users wait for).
            intent = rdomain.tearing_down_status(rev.get("status") or {}, generation=gen, targets=len(targets),
                                                 now=ctx.clock())
            failpoints.hit("revocation.before-delete")
            if ctx.queue is not None:
                ctx.queue.hold()  # routine reconciles wait: the deletes get the API server to themselves
            try:
                _, deleted = await asyncio.gather(write_status(ctx, "Revocation", rev, intent), self.teardown(targets))
            finally:
                if ctx.queue is not None:
                    ctx.queue.release()
            rev = ctx.cache.get("Revocation", "", name) or rev
            failpoints.hit("revocation.after-delete")
        remaining = [t for t in targets if ctx.cache.get(*t) is not None]
        status, seconds = rdomain.enforcement_status(
            rev.get("status") or {}, generation=gen, matched=[ctx.index.facts[k] for k in matched],
            remaining=len(remaining), created=_meta(rev)["creationTimestamp"], now=ctx.clock(),
            digests=digests,
        )
        if seconds is not None:
            metrics.record_enforcement(seconds)
        await write_status(ctx, "Revocation", rev, status)
        failpoints.hit("revocation.after-status")
        # Versions: mark them Revoked; Models: fall back. (Their reconcilers refuse the revoked versions.)
        for ns, mv in matched:
            ctx.enqueue("ModelVersion", ns, mv)
        for ns, model in {(ns, ctx.index.facts[(ns, mv)].model) for ns, mv in matched}:
            ctx.enqueue("Model", ns, model)
        if deleted:
            ctx.events.record(rev, [Event(C.WARNING, R.TORN_DOWN,
                                          f"deleted {deleted} workloads serving revoked artifacts")], "Enforce")
        log.info("Revocation %s: %d versions, %d workloads deleted in %.3fs", name, len(matched), deleted,
                 time.monotonic() - started)
        return requeue.revocation(len(remaining))
