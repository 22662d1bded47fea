"""Model reconcile (the rollout): gather its versions and Deployments, decide (domain.model_plan), write."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from modelhub.adapters import metrics
from modelhub.api import types as api
from modelhub.domain import requeue
from modelhub.domain.deployments import Write
from modelhub.domain.model_plan import DeploymentWrite, overlay_revocations, plan_model
from modelhub.domain.verdicts import overlay_verdicts
from modelhub.handlers.context import Context
from modelhub.handlers.status import write_status

log = logging.getLogger(__name__)


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _namespace_terminating(exc: Exception) -> bool:
    """The namespace is being deleted (403 NamespaceTerminating) or gone (404 on the namespace itself)."""
    status, body = getattr(exc, "status", None), str(getattr(exc, "body", ""))
    return (status == 403 and "NamespaceTerminating" in body) or (status == 404 and '"kind":"namespaces"' in body)


class _InNamespace(Mapping[str, int]):
    """The generations we wrote, of one namespace's Deployments, by name (a view, not a copy)."""

    def __init__(self, data: dict[tuple[str, str], int], namespace: str) -> None:
        self._data, self._ns = data, namespace

    def __getitem__(self, name: str) -> int:
        return self._data[(self._ns, name)]

    def __iter__(self) -> Iterator[str]:
        return (n for ns, n in self._data if ns == self._ns)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class ModelReconciler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def _write_deployment(self, w: DeploymentWrite) -> None:
        ns, name = w.desired["metadata"]["namespace"], w.desired["metadata"]["name"]
        if w.write is Write.SKIP:
            if w.adopt_generation is not None:
                self.ctx.applied_generation.setdefault((ns, name), w.adopt_generation)
            return
        fn = self.ctx.kube.replace if w.write is Write.REPLACE else self.ctx.kube.apply
        result = await self.ctx.io(fn, w.desired)
        self.ctx.applied_generation[(ns, name)] = int((result.get("metadata") or {}).get("generation") or 0)
        if result.get("metadata"):
            # Keep the cache ahead of the watch: a reconcile before the echo arrives must not write it again.
            self.ctx.cache.put("Deployment", {"kind": "Deployment", "apiVersion": "apps/v1", **result})
        if w.write is Write.REPLACE:
            log.info("restored Deployment %s/%s edited outside modelhub", ns, name)

    async def reconcile(self, namespace: str, name: str) -> float | None:
        ctx = self.ctx
        model = ctx.cache.get("Model", namespace, name)
        if model is None:
            return None
        # gather
        now = ctx.now_iso()
        versions = overlay_revocations(ctx.cache.by("ModelVersion", "model", (namespace, name)),
                                       ctx.live_revocations(), now)
        versions, unverified = overlay_verdicts(versions, ctx.verdicts, now)
        if unverified:  # not planned around before this operator has verified them (e.g. just after a start)
            for v in unverified:
                ctx.enqueue("ModelVersion", namespace, v)
            return requeue.UNVERIFIED_WAIT  # their reconciles enqueue this Model too, once they have a verdict
        live = ctx.cache.by("Deployment", "model", (namespace, name))
        try:
            api.parse_spec(api.ModelSpec, model.get("spec"))
            spec_error = None
        except api.InvalidResource as exc:
            spec_error = str(exc)
        # decide
        plan = plan_model(
            model, versions, live=live,
            recorded=_InNamespace(ctx.applied_generation, namespace),
            services_watched=ctx.services_watched,
            service_cached=ctx.cache.get("Service", namespace, name) is not None,
            loader_image=ctx.settings.loader_image, cpu_node_selector=ctx.settings.cpu_node_selector,
            now=now, spec_error=spec_error, loader_limits=ctx.settings.loader_limits,
        )
        # write
        try:
            for dep_name in plan.deletes:
                await ctx.io(ctx.kube.delete_deployment, namespace, dep_name)
                ctx.cache.drop("Deployment", namespace, dep_name)
            await asyncio.gather(*(self._write_deployment(w) for w in plan.writes))
            if plan.service is not None:
                try:
                    await ctx.io(ctx.kube.apply, plan.service)
                except Exception:
                    for w in plan.writes:  # so that the retry writes them, and this Service, again
                        ctx.applied_generation.pop((namespace, w.desired["metadata"]["name"]), None)
                    raise
        except Exception as exc:
            if _namespace_terminating(exc):
                log.debug("Model %s/%s: its namespace is being deleted, nothing to roll out", namespace, name)
                return None
            raise
        for s in plan.serving:
            metrics.set_serving_replicas(namespace, name, s["version"], s["role"], s["readyReplicas"])
        await write_status(ctx, "Model", model, plan.status)
        ctx.events.record(model, plan.events, "Rollout")
        for v in plan.refresh_versions:
            ctx.enqueue("ModelVersion", namespace, v)
        return plan.requeue
