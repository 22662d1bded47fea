"""Process-wide operator state: the object cache, indexes, the work queue and the kube client."""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

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


class State:
    def __init__(self) -> None:
        self.settings = Settings()
        self.cache = Cache()
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
