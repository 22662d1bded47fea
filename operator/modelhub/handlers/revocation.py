"""Revocation reconcile: resolve the matches from the in-memory index, tear the workloads down in parallel
(intent recorded first, crash-safe), then record enforcement and send the versions and Models to their
reconcilers (which mark the versions Revoked and fall back).

A teardown deletes each chain top-down: the top-most owner (so no controller recreates what follows), then its
ReplicaSets (so they do not replace the pods deleted next), then its pods with a short grace period
(`MODELHUB_REVOCATION_GRACE_SECONDS`): traffic stops when the pods terminate, not when the garbage collector
gets round to them."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from modelhub.adapters import failpoints, metrics
from modelhub.domain import requeue
from modelhub.domain import revocation as rdomain
from modelhub.domain.events import Event
from modelhub.domain.teardown import WORKLOAD_KINDS, Ref, controller_of, teardown_targets, top_owner
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

    def _chains(self, serving: list[tuple[Ref, dict[str, Any]]]) -> dict[Ref, list[Ref]]:
        """Each top-most owner to delete, with the cached workloads under it (its ReplicaSets, its pods) in the
        order they go: owners before what they own, so nothing deleted is recreated by what is not yet."""
        known = {ref: meta for ref, meta in serving}

        def first_known(kind: str, namespace: str, name: str) -> dict[str, Any] | None:
            hit = known.get((kind, namespace, name))
            return hit if hit is not None else self._lookup(kind, namespace, name)

        chains: dict[Ref, list[Ref]] = {}
        for ref, meta in known.items():
            top = top_owner(ref, meta, first_known)
            if top is not None:
                chains.setdefault(top, [])
                if top != ref:
                    chains[top].append(ref)
        order = {k: i for i, k in enumerate(WORKLOAD_KINDS)}
        return {top: sorted(deps, key=lambda r: (order.get(r[0], len(order)), r)) for top, deps in
                sorted(chains.items())}

    async def targets(self, digests: set[str]) -> list[Ref]:
        return list(await self.chains(digests))

    async def chains(self, digests: set[str]) -> dict[Ref, list[Ref]]:
        serving = self.serving(digests)
        if not serving:
            return {}
        if all(not _owned(m) for _, m in serving):  # nothing to look up: no thread hop
            return {t: [] for t in teardown_targets(serving, self._lookup)}
        return await self.ctx.io(self._chains, serving)  # type: ignore[no-any-return]

    async def teardown(self, workloads: list[Ref] | dict[Ref, list[Ref]]) -> int:
        """Delete workloads in parallel with bounded concurrency, chain by chain: each top-most owner first, then
        the workloads under it (ReplicaSets, then pods with the revocation grace period); the number of top-most
        owners actually deleted by us."""
        ctx = self.ctx
        loop = asyncio.get_running_loop()
        chains = workloads if isinstance(workloads, dict) else {ref: [] for ref in workloads}
        tops = list(chains)
        ctx.tearing.update((ns, name) for kind, ns, name in tops if kind == "Deployment")
        grace = ctx.settings.revocation_grace_seconds
        pods = [ref for deps in chains.values() for ref in deps if ref[0] == "Pod"]
        waiter = ctx.expect_gone(pods) if ctx.pods_watched else None

        def forget(kind: str, ns: str, name: str, uid: str | None) -> None:
            ctx.cache.drop(kind, ns, name)
            if len(ctx.recently_deleted) > 100_000:
                ctx.recently_deleted.clear()
            ctx.recently_deleted[(kind, ns, name)] = uid

        def delete_chain(chain: list[Ref]) -> list[bool]:
            """In a pool thread: the chain's deletes one after the other (owner first), so a chain is done as
            soon as possible and its pods stop serving early, as a bare client's would (the pool's size bounds
            the requests in flight); whether each was deleted by us (False: it was gone already)."""
            return [bool(ctx.kube.delete_workload(kind, ns, name, grace_seconds=grace if kind == "Pod" else 0))
                    for kind, ns, name in chain]

        async def one(top: Ref) -> bool:
            chain = [top, *chains[top]]
            uids = [(_meta(ctx.cache.get(*ref) or {}).get("uid")) or None for ref in chain]
            gones = await loop.run_in_executor(ctx.teardown_pool, delete_chain, chain)
            for ref, uid, gone in zip(chain, uids, gones, strict=True):
                forget(*ref, uid)
                if not gone and waiter is not None:
                    waiter.gone(ref)
            failpoints.hit("revocation.mid-delete")
            kind, ns, name = top
            if kind == "Deployment":
                ctx.applied_generation.pop((ns, name), None)
                if not gones[0]:  # already gone: no DELETED echo will end the suppression
                    ctx.tearing.discard((ns, name))
            return gones[0]

        results = await asyncio.gather(*(one(ref) for ref in tops))
        if waiter is not None:
            # The follow-up (versions marked Revoked, Models falling back, Events) waits until the pods are gone
            # (bounded): until then the API server and the controllers work on the deletes, and traffic stops.
            if not await ctx.wait_gone(waiter, grace + 10.0):
                log.info("teardown: %d deleted pods not seen gone yet; going on", len(waiter.pending))
        for kind in {ref[0] for ref in tops}:
            metrics.record_teardown(kind, sum(1 for ref, gone in zip(tops, results, strict=True)
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
        chains = await self.chains(digests)
        targets = list(chains)
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
                _, deleted = await asyncio.gather(write_status(ctx, "Revocation", rev, intent), self.teardown(chains))
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
