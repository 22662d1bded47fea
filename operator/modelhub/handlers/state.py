"""Process-wide operator state: the object cache, indexes, the work queue and the kube client."""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from modelhub.adapters.kube import Kube
from modelhub.domain.revocation import VersionIndex
from modelhub.handlers.runtime import Cache, Key, WorkQueue


@dataclass
class Settings:
    """Operator settings, from the environment (the Helm chart sets them)."""

    namespace: str = field(default_factory=lambda: os.environ.get("MODELHUB_NAMESPACE", "modelhub-system"))
    loader_image: str = field(
        default_factory=lambda: os.environ.get("MODELHUB_LOADER_IMAGE", "ghcr.io/modelhub/modelhub:0.1.0")
    )
    cpu_node_selector: dict[str, str] = field(
        default_factory=lambda: dict(
            kv.split("=", 1)
            for kv in os.environ.get("MODELHUB_CPU_NODE_SELECTOR", "modelhub.dev/node-class=cpu").split(",")
            if "=" in kv
        )
    )
    webhook_host: str = field(default_factory=lambda: os.environ.get("MODELHUB_WEBHOOK_HOST", "127.0.0.1"))
    webhook_port: int = field(default_factory=lambda: int(os.environ.get("MODELHUB_WEBHOOK_PORT", "9443")))
    webhooks: bool = field(default_factory=lambda: os.environ.get("MODELHUB_WEBHOOKS", "1") != "0")
    metrics_port: int = field(default_factory=lambda: int(os.environ.get("MODELHUB_METRICS_PORT", "8000")))
    teardown_concurrency: int = field(
        default_factory=lambda: int(os.environ.get("MODELHUB_TEARDOWN_CONCURRENCY", "32"))
    )


_PENDING = object()


def _version_group(obj: dict[str, Any]) -> tuple[str, str] | None:
    model = (obj.get("spec") or {}).get("model")
    return ((obj.get("metadata") or {}).get("namespace") or "", model) if model else None


def _deployment_group(obj: dict[str, Any]) -> tuple[str, str] | None:
    """Managed Deployments by (namespace, model)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if labels.get("app.kubernetes.io/managed-by") != "modelhub" or not labels.get("modelhub.dev/model"):
        return None
    return ((obj.get("metadata") or {}).get("namespace") or "", labels["modelhub.dev/model"])


class ConfigMapCache:
    """Read-through cache of the ConfigMaps verification reads (keyrings, bundles), kept fresh by the watch.

    Only ConfigMaps somebody asked for are kept; a watch event for one of them replaces it (or marks it gone).
    """

    def __init__(self, state: State) -> None:
        self._state = state
        self._data: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        key = (namespace, name)
        with self._lock:
            hit = self._data.get(key, _PENDING)
            if hit is not _PENDING:
                return hit  # type: ignore[no-any-return]
            self._data[key] = _PENDING
        cm = self._state.kube.get_configmap(namespace, name)
        with self._lock:
            if self._data.get(key) is _PENDING:  # no newer watch event meanwhile
                self._data[key] = cm
            return self._data[key]  # type: ignore[no-any-return]

    def observe(self, event_type: str | None, obj: dict[str, Any]) -> None:
        m = obj.get("metadata") or {}
        key = (m.get("namespace") or "", m.get("name") or "")
        with self._lock:
            if key in self._data:
                self._data[key] = None if event_type == "DELETED" else {
                    "data": dict(obj.get("data") or {}), "resourceVersion": m.get("resourceVersion"),
                }


class State:
    def __init__(self) -> None:
        self.settings = Settings()
        self.cache = Cache(groupers={"ModelVersion": _version_group, "Deployment": _deployment_group})
        self.index = VersionIndex()
        self.queue: WorkQueue | None = None
        self.approval_key: bytes = b""
        # Deployment generations we wrote last; a higher live generation means somebody else edited it.
        self.applied_generation: dict[tuple[str, str], int] = {}
        self.verify_cache: dict[tuple[str, ...], object] = {}
        # Deployments our teardown is deleting (until a deadline): their watch echoes trigger nothing.
        self.tearing: dict[tuple[str, str], float] = {}
        self.teardown_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.settings.teardown_concurrency, thread_name_prefix="teardown"
        )
        self._kube: Kube | None = None
        self.configmaps = ConfigMapCache(self)

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            self._kube = Kube()
        return self._kube

    def start(self, dispatch: Callable[[Key], Awaitable[float | None]], workers: int = 16) -> None:
        self.queue = WorkQueue(dispatch, workers=workers)
        self.queue.start()

    async def stop(self) -> None:
        if self.queue is not None:
            await self.queue.stop()

    def enqueue(self, kind: str, namespace: str | None, name: str, delay: float = 0.0) -> None:
        if self.queue is not None:
            self.queue.add((kind, namespace or "", name), delay)


STATE = State()
