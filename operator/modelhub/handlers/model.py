"""Model reconcile (the rollout): gather its versions and Deployments, decide (domain.model_plan), write."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

from modelhub.adapters import metrics
from modelhub.api import types as api
from modelhub.domain import requeue, traffic
from modelhub.domain.deployments import Write
from modelhub.domain.model_plan import DeploymentWrite, overlay_revocations, plan_model
from modelhub.domain.requeue import failure_backoff
from modelhub.domain.verdicts import overlay_verdicts
from modelhub.handlers.context import Context
from modelhub.handlers.status import write_status
from modelhub.vocab import annotations as A
from modelhub.vocab import traffic as T

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


# While the HTTPRoute API is not served, discovery asks again at most this often (seconds); while it is, this often.
GATEWAY_DISCOVERY_EVERY = 10.0
GATEWAY_CONFIRM_EVERY = 60.0


class ModelReconciler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.gateway_discovery_every = GATEWAY_DISCOVERY_EVERY
        self.gateway_confirm_every = GATEWAY_CONFIRM_EVERY
        self._gateway_api = False
        self._gateway_checked: float | None = None
        # HTTPRoute generations we wrote last, by (namespace, name): a higher live one is someone else's edit.
        self.route_generation: dict[tuple[str, str], int] = {}
        self._service_failures: dict[tuple[str, str], int] = {}
        self.spec_errors = api.SpecErrors(api.ModelSpec)

    async def gateway_api(self) -> bool:
        """Whether the cluster serves HTTPRoutes (gateway.networking.k8s.io/v1): discovered on first need, asked
        again every `gateway_discovery_every` seconds while it is not (the CRDs may be installed later), and every
        `gateway_confirm_every` seconds while it is (they may be removed: then the replica share takes over)."""
        now = time.monotonic()
        every = self.gateway_confirm_every if self._gateway_api else self.gateway_discovery_every
        if self._gateway_checked is not None and now - self._gateway_checked < every:
            return self._gateway_api
        self._gateway_checked, was = now, self._gateway_api
        try:
            self._gateway_api = bool(await self.ctx.io(self.ctx.kube.serves_resource, T.GATEWAY_API_VERSION,
                                                       T.HTTPROUTE_PLURAL))
        except Exception as exc:  # noqa: BLE001 - discovery is retried; meanwhile what was found last holds
            log.warning("discovery of %s %s failed: %s", T.GATEWAY_API_VERSION, T.HTTPROUTE_PLURAL, exc)
            return self._gateway_api
        if was and not self._gateway_api:
            log.warning("the cluster no longer serves %s %s: canary weights are replica shares again",
                        T.GATEWAY_API_VERSION, T.HTTPROUTE_PLURAL)
        if self._gateway_api and not was:
            log.info("the cluster serves %s %s: Models with a router get weighted HTTPRoutes",
                     T.GATEWAY_API_VERSION, T.HTTPROUTE_PLURAL)
        return self._gateway_api

    def gateway_api_gone(self) -> None:
        self._gateway_api, self._gateway_checked = False, time.monotonic()

    async def _write_route(self, w: DeploymentWrite) -> None:
        ns, name = w.desired["metadata"]["namespace"], w.desired["metadata"]["name"]
        key = (ns, name)
        if w.write is Write.SKIP:
            if w.adopt_generation is not None:
                self.route_generation.setdefault(key, w.adopt_generation)
            return
        kube = self.ctx.kube
        fn = kube.replace_object if w.write is Write.REPLACE else kube.apply_object
        try:
            result = await self.ctx.io(fn, w.desired, T.HTTPROUTE_PLURAL)
        except Exception as exc:
            if getattr(exc, "status", None) == 404 and '"kind":"namespaces"' not in str(getattr(exc, "body", "")):
                self.gateway_api_gone()  # the CRD went away since discovery: the next reconcile shares replicas
                self.ctx.cache.drop(T.HTTPROUTE_KIND, ns, name)
            raise
        self.route_generation[key] = int((result.get("metadata") or {}).get("generation") or 0)
        if result.get("metadata"):
            self.ctx.cache.put(T.HTTPROUTE_KIND, {"kind": T.HTTPROUTE_KIND, "apiVersion": T.GATEWAY_API_VERSION,
                                                  **result})
        if w.write is Write.REPLACE:
            log.info("restored HTTPRoute %s/%s edited outside modelhub", ns, name)

    async def _write_deployment(self, w: DeploymentWrite) -> None:
        ns, name = w.desired["metadata"]["namespace"], w.desired["metadata"]["name"]
        if w.write is Write.SKIP:
            if w.adopt_generation is not None:
                self.ctx.applied_generation.setdefault((ns, name), w.adopt_generation)
            return
        fn = self.ctx.kube.replace if w.write is Write.REPLACE else self.ctx.kube.apply
        result = await self.ctx.io(fn, w.desired)
        # The version it serves shows it in its status (the watch's echo of this write enqueues nothing).
        self.ctx.enqueue("ModelVersion", ns, str((w.desired["metadata"].get("annotations") or {}).get(
            A.MODEL_VERSION) or name))
        self.ctx.applied_generation[(ns, name)] = int((result.get("metadata") or {}).get("generation") or 0)
        if result.get("metadata"):
            # Keep the cache ahead of the watch: a reconcile before the echo arrives must not write it again.
            self.ctx.cache.put("Deployment", {"kind": "Deployment", "apiVersion": "apps/v1", **result})
        if w.write is Write.REPLACE:
            log.info("restored Deployment %s/%s edited outside modelhub", ns, name)

    async def _apply_service(self, svc: dict[str, Any]) -> None:
        result = await self.ctx.io(self.ctx.kube.apply, svc)
        if isinstance(result, dict) and result.get("metadata"):
            self.ctx.cache.put("Service", {"kind": "Service", "apiVersion": "v1", **result})

    async def _service_behind(self, svc: dict[str, Any], deployments: list[str]) -> None:
        """The Model's Service, written behind its reconcile; a failure reconciles the Model again (with the
        Deployments of that reconcile written again too, which applies the Service again)."""
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        try:
            await self._apply_service(svc)
        except Exception as exc:
            if _namespace_terminating(exc):
                return
            for dep in deployments:
                self.ctx.applied_generation.pop((ns, dep), None)
            self._service_failures[(ns, name)] = n = self._service_failures.get((ns, name), 0) + 1
            delay = failure_backoff(n)
            log.warning("applying Service %s/%s failed (attempt %d; the Model looks again in %.1fs): %s",
                        ns, name, n, delay, exc)
            self.ctx.enqueue("Model", ns, name, delay)
            return
        self._service_failures.pop((ns, name), None)

    async def reconcile(self, namespace: str, name: str) -> float | None:
        ctx = self.ctx
        model = ctx.cache.get("Model", namespace, name)
        if model is None:
            return None
        # gather
        now = ctx.now_iso()
        versions = overlay_revocations(ctx.cache.by("ModelVersion", "model", (namespace, name)),
                                       ctx.live_revocations(), now)
        versions, unverified = overlay_verdicts(
            versions, ctx.verdicts, now,
            require_approval=bool(((model.get("spec") or {}).get("trust") or {}).get("requireApproval")))
        if unverified:  # not planned around before this operator has verified them (e.g. just after a start)
            for v in unverified:
                ctx.enqueue("ModelVersion", namespace, v)
            return requeue.UNVERIFIED_WAIT  # their reconciles enqueue this Model too, once they have a verdict
        live = ctx.cache.by("Deployment", "model", (namespace, name))
        spec_error = self.spec_errors.of(model)
        wants_router = traffic.router_spec(model) is not None
        route_live = ctx.cache.get(T.HTTPROUTE_KIND, namespace, name)
        gateway_api = (wants_router or route_live is not None) and await self.gateway_api()
        # decide
        plan = plan_model(
            model, versions, live=live,
            recorded=_InNamespace(ctx.applied_generation, namespace),
            services_watched=ctx.services_watched,
            service_cached=ctx.cache.get("Service", namespace, name) is not None,
            loader_image=ctx.settings.loader_image, cpu_node_selector=ctx.settings.cpu_node_selector,
            now=now, spec_error=spec_error, loader_limits=ctx.settings.loader_limits,
            gateway_api=gateway_api, route_live=route_live, route_recorded=self.route_generation.get((namespace, name)),
            cached_service=lambda svc: ctx.cache.get("Service", namespace, svc),
        )
        # write
        try:
            for dep_name in plan.deletes:
                await ctx.io(ctx.kube.delete_deployment, namespace, dep_name)
                ctx.cache.drop("Deployment", namespace, dep_name)
            await asyncio.gather(*(self._write_deployment(w) for w in plan.writes))
            if plan.service is not None:
                # Behind the reconcile: nothing waits for the Service, and its create (a ClusterIP allocation)
                # can take the API server longer under load than the Deployment it fronts.
                ctx.behind.submit(("Service", namespace, name),
                                  functools.partial(self._service_behind, plan.service,
                                                    [w.desired["metadata"]["name"] for w in plan.writes]),
                                  what=json.dumps(plan.service, sort_keys=True))
            # The router: Services before the route that names them; stale Services after it no longer does.
            await asyncio.gather(*(self._apply_service(svc) for svc in plan.version_services))
            if plan.route is not None:
                await self._write_route(plan.route)
            elif plan.route_delete:
                await ctx.io(self.ctx.kube.delete_object, T.GATEWAY_API_VERSION, T.HTTPROUTE_PLURAL,
                             namespace, name)
                ctx.cache.drop(T.HTTPROUTE_KIND, namespace, name)
                self.route_generation.pop((namespace, name), None)
            for svc_name in plan.service_deletes:
                await ctx.io(self.ctx.kube.delete_object, "v1", "services", namespace, svc_name)
                ctx.cache.drop("Service", namespace, svc_name)
        except Exception as exc:
            if _namespace_terminating(exc):
                log.debug("Model %s/%s: its namespace is being deleted, nothing to roll out", namespace, name)
                return None
            raise
        for s in plan.serving:
            metrics.set_serving_replicas(namespace, name, s["version"], s["role"], s["readyReplicas"])
        await write_status(ctx, "Model", model, plan.status)
        ctx.events.record(model, plan.events, "Rollout")
        refresh = set(plan.refresh_versions)
        for version in versions:  # each has its verdict now (else it waits above): a held first status may go
            key = (namespace, version["metadata"]["name"])
            if key not in ctx.decided:
                ctx.decided.add(key)
                refresh.add(key[1])
        for vname in sorted(refresh):
            ctx.enqueue("ModelVersion", namespace, vname)
        return plan.requeue
