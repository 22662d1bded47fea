"""Process-wide operator state: the object cache, the work queue and the kube client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from modelhub.adapters.kube import Kube
from modelhub.handlers.runtime import Cache, Key, WorkQueue


class State:
    def __init__(self) -> None:
        self.cache = Cache()
        self.queue: WorkQueue | None = None
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
