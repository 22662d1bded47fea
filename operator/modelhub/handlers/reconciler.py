"""The Reconciler: the collaborators (Context), the watch router and one reconciler per kind, built once at
startup and handed to the kopf entry modules through kopf's `memo`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from modelhub.adapters import metrics
from modelhub.handlers.context import Context
from modelhub.handlers.model import ModelReconciler
from modelhub.handlers.revocation import RevocationReconciler
from modelhub.handlers.routing import Router
from modelhub.handlers.runtime import Key, WorkQueue
from modelhub.handlers.version import VersionReconciler

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.router = Router(ctx)
        self.models = ModelReconciler(ctx)
        self.versions = VersionReconciler(ctx, self.router.facts_changed)
        self.revocations = RevocationReconciler(ctx)
        self._resync: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._by_kind: dict[str, Callable[[str, str], Any]] = {
            "Model": self.models.reconcile, "ModelVersion": self.versions.reconcile,
            "Revocation": self.revocations.reconcile,
        }

    async def dispatch(self, key: Key) -> float | None:
        kind, namespace, name = key
        with metrics.reconcile_timer(kind):
            return await self._by_kind[kind](namespace, name)  # type: ignore[no-any-return]

    def start(self) -> WorkQueue:
        queue = WorkQueue(self.dispatch, workers=self.ctx.settings.workers,
                          revocation_workers=self.ctx.settings.revocation_workers)
        self.loop = asyncio.get_running_loop()
        self.ctx.queue = queue
        queue.start()
        self._resync = asyncio.create_task(self.resync_forever())
        # Everything once: Revocations first (the queue puts them first anyway), then Models and versions.
        for r in self.ctx.cache.all("Revocation"):
            self.ctx.enqueue("Revocation", "", r["metadata"]["name"])
        for m in self.ctx.cache.all("Model"):
            self.ctx.enqueue("Model", m["metadata"]["namespace"], m["metadata"]["name"])
        return queue

    def refused(self, revocation: str, digest: str) -> None:
        """Admission refused a ModelVersion that a Revocation covers: its artifact digest is a late link (a
        dataset or model rule that now names a digest), so workloads already serving it go too. Thread-safe
        (the webhooks run in worker threads)."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.router.late_link, revocation, digest)

    async def resync_forever(self) -> None:
        """Every `resync_seconds`, every live Revocation looks again (a safety net under the routing)."""
        while True:
            await asyncio.sleep(self.ctx.settings.resync_seconds)
            self.router.resync()

    async def stop(self) -> None:
        if self._resync is not None:
            self._resync.cancel()
        if self.ctx.queue is not None and isinstance(self.ctx.queue, WorkQueue):
            await self.ctx.queue.stop()
