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
from modelhub.handlers.context import Context
from modelhub.handlers.status import write_status
from modelhub.vocab import conditions as C
from modelhub.vocab import reasons as R

log = logging.getLogger(__name__)


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


class RevocationReconciler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def revoked_digests(self, rev: dict[str, Any]) -> set[str]:
        match = (rev.get("spec") or {}).get("match") or {}
        digests = {rdomain.normalize_digest(d) for d in match.get("digests") or [] if isinstance(d, str)}
        for key in self.ctx.index.match(match):
            digests.add(self.ctx.index.facts[key].digest)
        return digests

    def workloads_serving(self, digests: set[str]) -> list[tuple[str, str]]:
        return sorted({(_meta(d)["namespace"], _meta(d)["name"])
                       for digest in digests for d in self.ctx.cache.by("Deployment", "digest", digest)})

    async def teardown(self, workloads: list[tuple[str, str]]) -> int:
        """Delete workloads in parallel with bounded concurrency; the number actually deleted by us."""
        ctx = self.ctx
        loop = asyncio.get_running_loop()
        ctx.tearing.update(workloads)

        async def one(ns: str, name: str) -> bool:
            # The dedicated pool's size is the concurrency bound; nothing else queues in it.
            gone = await loop.run_in_executor(ctx.teardown_pool, ctx.kube.delete_deployment, ns, name)
            failpoints.hit("revocation.mid-delete")
            ctx.cache.drop("Deployment", ns, name)
            ctx.applied_generation.pop((ns, name), None)
            if not gone:  # already gone: no DELETED echo will end the suppression
                ctx.tearing.discard((ns, name))
            return bool(gone)

        return sum(await asyncio.gather(*(one(ns, n) for ns, n in workloads)))

    async def reconcile(self, namespace: str, name: str) -> float | None:  # noqa: ARG002 - cluster-scoped
        ctx = self.ctx
        rev = ctx.cache.get("Revocation", "", name)
        if rev is None or _meta(rev).get("deletionTimestamp"):
            return None
        started = time.monotonic()
        gen = _meta(rev).get("generation")
        matched = ctx.index.match((rev.get("spec") or {}).get("match") or {})
        digests = self.revoked_digests(rev)
        targets = self.workloads_serving(digests)
        deleted = 0
        if targets:
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
            metrics.TORN_DOWN.inc(deleted)
            rev = ctx.cache.get("Revocation", "", name) or rev
            failpoints.hit("revocation.after-delete")
        remaining = self.workloads_serving(digests)
        status, seconds = rdomain.enforcement_status(
            rev.get("status") or {}, generation=gen, matched=[ctx.index.facts[k] for k in matched],
            remaining=len(remaining), created=_meta(rev)["creationTimestamp"], now=ctx.clock(),
        )
        if seconds is not None:
            metrics.ENFORCEMENT_SECONDS.observe(seconds)
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
