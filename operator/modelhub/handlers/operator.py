"""kopf entry module: settings, startup (builds the Reconciler and hands it on in `memo`), the watches of our
own resources. Registration only: nothing is decided here."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import secrets
from typing import Any

import kopf

from modelhub import GROUP
from modelhub.adapters import metrics
from modelhub.adapters.bundles import BundleFetcher, BundleSettings
from modelhub.adapters.kube import Kube
from modelhub.domain.approvalkey import ApprovalKeyError
from modelhub.handlers import webhook
from modelhub.handlers.context import Context, Settings
from modelhub.handlers.leader import LeaderElector, default_identity
from modelhub.handlers.reconciler import Reconciler
from modelhub.handlers.watches import Watches

log = logging.getLogger(__name__)


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf builds a "diff-base" (a deep copy of each object's essence) on every watch event, for change
    handlers. We register none (our handlers only route events to the work queue), so the copy is waste: a
    tenth of the event loop's time during a rollout of 100 versions."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        return None

    def fetch(self, *, body: kopf.Body) -> Any:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        return None


def _webhook_server(s: Settings) -> kopf.WebhookServer:
    return webhook.server(s.webhook_host, s.webhook_port)


def _reconciler(memo: kopf.Memo) -> Reconciler:
    r: Reconciler = memo["reconciler"]
    return r


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    try:
        app = Settings.from_env()
    except ValueError as exc:
        raise kopf.PermanentError(f"invalid operator setting: {exc}") from None
    settings.posting.enabled = False  # we record our own events.k8s.io Events
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    if app.webhooks:
        settings.admission.server = _webhook_server(app)
        settings.admission.managed = GROUP
    loop = asyncio.get_running_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=app.io_threads,
                                                                    thread_name_prefix="kube"))
    try:
        bundles = BundleFetcher(BundleSettings.from_env())
    except ValueError as exc:
        raise kopf.PermanentError(f"invalid bundle setting: {exc}") from None
    kube = await asyncio.to_thread(Kube)
    ctx = Context(kube=kube, settings=app, bundles=bundles)
    memo["bundles"] = bundles
    try:
        ctx.approval_key = await asyncio.to_thread(
            kube.ensure_secret_key, app.namespace, "modelhub-approval-key", "hmac", lambda: secrets.token_bytes(32),
        )
    except ApprovalKeyError as exc:
        raise kopf.PermanentError(exc.message) from None
    reconciler = Reconciler(ctx)
    watches = Watches(kube, reconciler.router, loop)
    # Our resources and Deployments are listed into the cache before anything reconciles: after a crash,
    # Revocations resume from the whole state, never from a half-filled index.
    own = watches.start_own()
    for r in own:
        if not await asyncio.to_thread(r.wait_synced, 60):
            raise kopf.PermanentError(f"the {r.kind} watch did not list within 60 s")
    await asyncio.sleep(0)  # deliver the listed objects to the cache
    watches.start()
    metrics.serve(app.metrics_port)
    metrics.watch_versions(lambda: ctx.cache.all("ModelVersion"))
    metrics.watch_revocations(lambda: ctx.cache.all("Revocation"))
    queue = reconciler.start()
    memo["reconciler"], memo["watches"] = reconciler, watches
    if app.leader_election:
        # Standby until the Lease is ours: watches and caches stay warm, nothing reconciles.
        queue.leading.clear()
        metrics.set_leader(False)
        elector = LeaderElector(kube, namespace=app.namespace, name=app.lease_name, identity=default_identity(),
                                clock=ctx.clock, duration=app.lease_seconds, on_change=metrics.set_leader,
                                renew_deadline=app.lease_seconds * 0.8, retry=max(1.0, app.lease_seconds / 5))
        elector.leading = queue.leading
        await elector.try_once()
        memo["elector"], memo["elector_task"] = elector, asyncio.create_task(elector.run())
    log.info("modelhub operator started")


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    if "elector" in memo:
        memo["elector_task"].cancel()
        await memo["elector"].release()
    if "watches" in memo:
        await memo["watches"].stop()
    if "reconciler" in memo:
        await memo["reconciler"].stop()
    if "bundles" in memo:
        memo["bundles"].shutdown()

