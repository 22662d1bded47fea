"""The watches kopf cannot make: selectors sent to the API server, and ConfigMaps only where referenced.

Deployments (label `modelhub.dev/serves-artifact=true`) and our Services (`app.kubernetes.io/managed-by=
modelhub`) are watched cluster-wide with their label selector; ConfigMaps only in the namespaces where a Model's
keyring or a ModelVersion's bundle names one, so the ConfigMaps of unrelated namespaces cost nothing. Events hop
from each watch's thread onto the event loop, in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from modelhub.adapters.kube import Kube, Reflector
from modelhub.handlers.routing import Router
from modelhub.vocab import labels as L

log = logging.getLogger(__name__)


class Watches:
    def __init__(self, kube: Kube, router: Router, loop: asyncio.AbstractEventLoop) -> None:
        self._kube, self._router, self._loop = kube, router, loop
        self._fixed: list[Reflector] = []
        self._configmaps: dict[str, Reflector] = {}
        self._task: asyncio.Task[None] | None = None

    def _to_loop(self, fn: Callable[[str, dict[str, Any]], None]) -> Callable[[str, dict[str, Any]], None]:
        def hop(event_type: str, obj: dict[str, Any]) -> None:
            self._loop.call_soon_threadsafe(fn, event_type, obj)
        return hop

    def start_deployments(self) -> Reflector:
        r = Reflector(self._kube, kind="Deployment", api_version="apps/v1", path="/apis/apps/v1/deployments",
                      label_selector=L.SERVES_SELECTOR, on_event=self._to_loop(self._router.on_deployment))
        self._fixed.append(r.start())
        return r

    def start(self) -> None:
        services = Reflector(self._kube, kind="Service", api_version="v1", path="/api/v1/services",
                             label_selector=L.MANAGED_SELECTOR, on_event=self._to_loop(self._router.on_service))
        self._fixed.append(services.start())
        self._router.ctx.services_watched = True
        self._task = asyncio.create_task(self._follow_configmap_namespaces())

    async def _follow_configmap_namespaces(self, every: float = 1.0) -> None:
        while True:
            wanted = self._router.configmap_namespaces()
            for ns in sorted(wanted - self._configmaps.keys()):
                log.debug("watching ConfigMaps in %s", ns)
                self._configmaps[ns] = Reflector(
                    self._kube, kind="ConfigMap", api_version="v1", path=f"/api/v1/namespaces/{ns}/configmaps",
                    on_event=self._to_loop(self._router.on_configmap)).start()
            for ns in sorted(self._configmaps.keys() - wanted):
                self._configmaps.pop(ns).stop()
            await asyncio.sleep(every)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for r in [*self._fixed, *self._configmaps.values()]:
            r.stop()
