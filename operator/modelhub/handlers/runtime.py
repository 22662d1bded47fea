"""A level-based work queue under the kopf watches.

kopf delivers watch events; the handlers only record the object in the cache and enqueue a key. Workers take keys
off the queue and reconcile them from the current cached state, so a burst of events for one object collapses into
one reconcile, a key is never reconciled by two workers at once, and a failed reconcile is retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (kind, namespace or "", name)


@dataclass
class Cache:
    """Latest body of every watched object, by kind then (namespace, name)."""

    objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)
    # Optional grouping per kind (e.g. ModelVersions by (namespace, model)), so lookups are not scans.
    groupers: dict[str, Callable[[dict[str, Any]], tuple[str, str] | None]] = field(default_factory=dict)
    groups: dict[str, dict[tuple[str, str], set[tuple[str, str]]]] = field(default_factory=dict)

    def _group(self, kind: str, key: tuple[str, str], body: dict[str, Any] | None, add: bool) -> None:
        fn = self.groupers.get(kind)
        if fn is None or body is None:
            return
        g = fn(body)
        if g is None:
            return
        members = self.groups.setdefault(kind, {}).setdefault(g, set())
        if add:
            members.add(key)
        else:
            members.discard(key)

    def put(self, kind: str, body: dict[str, Any]) -> None:
        meta = body.get("metadata", {})
        key = (meta.get("namespace") or "", meta["name"])
        bucket = self.objects.setdefault(kind, {})
        self._group(kind, key, bucket.get(key), add=False)
        bucket[key] = body
        self._group(kind, key, body, add=True)

    def drop(self, kind: str, namespace: str | None, name: str) -> None:
        key = (namespace or "", name)
        self._group(kind, key, self.objects.get(kind, {}).pop(key, None), add=False)

    def group(self, kind: str, group: tuple[str, str]) -> list[dict[str, Any]]:
        bucket = self.objects.get(kind, {})
        return [bucket[k] for k in sorted(self.groups.get(kind, {}).get(group, ())) if k in bucket]

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.objects.get(kind, {}).get((namespace or "", name))

    def all(self, kind: str) -> list[dict[str, Any]]:
        return list(self.objects.get(kind, {}).values())


class WorkQueue:
    def __init__(self, reconcile: Callable[[Key], Awaitable[float | None]], workers: int = 16) -> None:
        self._reconcile = reconcile
        self._workers = workers
        # Revocations first: enforcement must not wait behind a backlog of routine reconciles.
        self._queue: asyncio.PriorityQueue[tuple[int, int, Key]] = asyncio.PriorityQueue()
        self._seq = 0
        self._queued: set[Key] = set()
        self._active: set[Key] = set()
        self._dirty: set[Key] = set()
        self._failures: dict[Key, int] = {}
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.idle = asyncio.Event()
        # Cleared while a Revocation tears workloads down: routine reconciles wait, so the deletes get the API
        # server (and this process) to themselves.
        self.open = asyncio.Event()
        self.open.set()
        self._holds = 0

    def add(self, key: Key, delay: float = 0.0) -> None:
        if delay > 0:
            loop = asyncio.get_running_loop()
            old = self._timers.get(key)
            if old is not None and old.when() <= loop.time() + delay:
                return
            if old is not None:
                old.cancel()
            self._timers[key] = loop.call_later(delay, self._fire, key)
            return
        if key in self._active:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self.idle.clear()
        self._seq += 1
        self._queue.put_nowait((0 if key[0] == "Revocation" else 1, self._seq, key))

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def hold(self) -> None:
        self._holds += 1
        self.open.clear()

    def release(self) -> None:
        self._holds = max(0, self._holds - 1)
        if not self._holds:
            self.open.set()

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._work(i)) for i in range(self._workers)]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _work(self, _: int) -> None:
        while True:
            _, _, key = await self._queue.get()
            if key[0] != "Revocation":
                await self.open.wait()
            self._queued.discard(key)
            self._active.add(key)
            started = time.monotonic()
            requeue: float | None = None
            try:
                requeue = await self._reconcile(key)
                self._failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one object's failure never stops the operator
                n = self._failures.get(key, 0) + 1
                self._failures[key] = n
                requeue = min(0.5 * 2 ** (n - 1), 60.0)
                log.exception("reconcile of %s failed (attempt %d); retrying in %.1fs", key, n, requeue)
            finally:
                self._active.discard(key)
                log.debug("reconciled %s in %.3fs", key, time.monotonic() - started)
            if key in self._dirty:
                self._dirty.discard(key)
                self.add(key)
            elif requeue is not None:
                self.add(key, requeue)
            if not self._queued and not self._active:
                self.idle.set()
