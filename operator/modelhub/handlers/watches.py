"""Every watch of the operator, each a Reflector (list, then watch, selectors sent to the API server).

Our own resources (Models, ModelVersions, Revocations) cluster-wide; Deployments (label
`modelhub.dev/serves-artifact=true`) and our Services (`app.kubernetes.io/managed-by=modelhub`) cluster-wide with
their label selector, and so are our HTTPRoutes once the cluster serves the Gateway API (discovered, as optional
workload kinds are); ConfigMaps only in the namespaces where a Model's keyring or a ModelVersion's bundle names
one, so the ConfigMaps of unrelated namespaces cost nothing. Events hop from each watch's thread onto the event
loop, in order. (kopf watches nothing: its per-object workers, per-event handler machinery and copies of every
body took 12 MB of peak memory at scale, 228 -> 216 MB in `make bench-scale`, and CPU on every event.)
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

from modelhub import GROUP, VERSION
from modelhub.adapters.kube import OPTIONAL_KINDS, PLURALS, WORKLOAD_KINDS, Kube, Reflector
from modelhub.handlers.routing import Router
from modelhub.vocab import labels as L
from modelhub.vocab import traffic as T

log = logging.getLogger(__name__)


def on_httproute(router: Router, event_type: str | None, obj: dict[str, Any]) -> None:
    """One of our HTTPRoutes changed (edited by hand, or deleted): its Model's reconcile puts it back."""
    router.record(T.HTTPROUTE_KIND, event_type, obj)
    m = obj.get("metadata") or {}
    model = (m.get("labels") or {}).get(L.MODEL)
    if model and m.get("namespace"):
        router.ctx.enqueue("Model", m["namespace"], model)


class Watches:
    def __init__(self, kube: Kube, router: Router, loop: asyncio.AbstractEventLoop) -> None:
        self._kube, self._router, self._loop = kube, router, loop
        self._fixed: list[Reflector] = []
        self._configmaps: dict[str, Reflector] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def _to_loop(self, fn: Callable[[str, dict[str, Any]], None]) -> Callable[[str, dict[str, Any]], None]:
        """Hand events from a watch thread to the loop in order, waking the loop once per burst (not per event:
        each wake-up is a syscall on both sides)."""
        pending: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        lock = threading.Lock()
        scheduled = [False]

        def drain() -> None:
            with lock:
                batch = list(pending)
                pending.clear()
                scheduled[0] = False
            for event_type, obj in batch:
                try:
                    fn(event_type, obj)
                except Exception:  # noqa: BLE001 - one event's failure never loses the others
                    log.exception("routing a %s event failed", event_type)

        def hop(event_type: str, obj: dict[str, Any]) -> None:
            with lock:
                pending.append((event_type, obj))
                if scheduled[0]:
                    return
                scheduled[0] = True
            self._loop.call_soon_threadsafe(drain)

        return hop

    def start_own(self) -> list[Reflector]:
        """Our own resources (Models, ModelVersions, Revocations), cluster-wide, and the Deployments we serve
        with: the reconciles read them from the cache, so these are listed before the first reconcile."""
        router = self._router
        routes: dict[str, Callable[[str, dict[str, Any]], None]] = {
            "Model": router.on_model, "ModelVersion": router.on_version, "Revocation": router.on_revocation}
        started = [self._start_deployments()]
        for kind, route in routes.items():
            r = Reflector(self._kube, kind=kind, api_version=f"{GROUP}/{VERSION}",
                          path=f"/apis/{GROUP}/{VERSION}/{PLURALS[kind]}", on_event=self._to_loop(route))
            self._fixed.append(r.start())
            started.append(r)
        return started

    def _start_deployments(self) -> Reflector:
        r = Reflector(self._kube, kind="Deployment", api_version="apps/v1", path="/apis/apps/v1/deployments",
                      label_selector=L.SERVES_SELECTOR, on_event=self._to_loop(self._router.on_deployment))
        self._fixed.append(r.start())
        return r

    def _workload(self, kind: str) -> Reflector:
        k = WORKLOAD_KINDS[kind]
        route = functools.partial(self._router.on_workload, kind)
        ctx = self._router.ctx

        def on_event(event_type: str, obj: dict[str, Any]) -> None:
            if event_type == "DELETED":  # a teardown may be waiting for it to be gone
                m = obj.get("metadata") or {}
                ctx.teardown_gone(kind, m.get("namespace") or "", m.get("name") or "")
            route(event_type, obj)

        return Reflector(self._kube, kind=kind, api_version=k.api_version, path=k.cluster_path,
                         label_selector=L.SERVES_SELECTOR, metadata_only=True,
                         on_event=self._to_loop(on_event)).start()

    def start(self) -> None:
        services = Reflector(self._kube, kind="Service", api_version="v1", path="/api/v1/services",
                             label_selector=L.MANAGED_SELECTOR, on_event=self._to_loop(self._router.on_service))
        self._fixed.append(services.start())
        self._router.ctx.services_watched = True
        # Third-party workloads of every other kind: metadata is all a teardown needs.
        for kind in WORKLOAD_KINDS:
            if kind != "Deployment" and kind not in OPTIONAL_KINDS:
                self._fixed.append(self._workload(kind))
        self._router.ctx.pods_watched = True  # a teardown may wait for the pods it deleted to be gone
        self._tasks = [asyncio.create_task(self._follow_configmap_namespaces()),
                       asyncio.create_task(self._discover_optional_kinds()),
                       asyncio.create_task(self._discover_httproutes())]

    async def _discover_optional_kinds(self, every: float = 10.0) -> None:
        """Kinds of CRDs that may be installed later (KServe's InferenceService): watched once they appear."""
        missing = set(OPTIONAL_KINDS)
        while missing:
            for kind in sorted(missing):
                try:
                    present = await asyncio.to_thread(self._kube.has_api, WORKLOAD_KINDS[kind].api_version)
                except Exception as exc:  # noqa: BLE001 - try again later
                    log.debug("discovery of %s failed: %s", kind, exc)
                    continue
                if present:
                    log.info("watching %s (its API is served)", kind)
                    self._fixed.append(self._workload(kind))
                    missing.discard(kind)
            await asyncio.sleep(every)

    async def _discover_httproutes(self, every: float = 10.0) -> None:
        """Our HTTPRoutes (label app.kubernetes.io/managed-by=modelhub), watched once the Gateway API is served."""
        while True:
            try:
                present = await asyncio.to_thread(self._kube.serves_resource, T.GATEWAY_API_VERSION,
                                                  T.HTTPROUTE_PLURAL)
            except Exception as exc:  # noqa: BLE001 - try again later
                log.debug("discovery of %s failed: %s", T.HTTPROUTE_PLURAL, exc)
                present = False
            if present:
                log.info("watching %s (the Gateway API is served)", T.HTTPROUTE_PLURAL)
                self._fixed.append(Reflector(
                    self._kube, kind=T.HTTPROUTE_KIND, api_version=T.GATEWAY_API_VERSION,
                    path=f"/apis/{T.GATEWAY_API_VERSION}/{T.HTTPROUTE_PLURAL}", label_selector=L.MANAGED_SELECTOR,
                    on_event=self._to_loop(functools.partial(on_httproute, self._router))).start())
                return
            await asyncio.sleep(every)

    async def _follow_configmap_namespaces(self, every: float = 1.0) -> None:
        while True:
            wanted = self._router.configmap_namespaces()
            for ns in sorted(wanted - self._configmaps.keys()):
                log.debug("watching ConfigMaps in %s", ns)
                self._configmaps[ns] = Reflector(
                    self._kube, kind="ConfigMap", api_version="v1", path=f"/api/v1/namespaces/{ns}/configmaps",
                    on_event=self._to_loop(self._router.on_configmap), timeout_seconds=60).start()
            for ns in sorted(self._configmaps.keys() - wanted):
                self._configmaps.pop(ns).stop()
            await asyncio.sleep(every)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for r in [*self._fixed, *self._configmaps.values()]:
            r.stop()
