"""A level-based work queue under the watches, and the cache they fill.

The watches deliver events; the router only records the object in the cache and enqueues a key. Workers take keys
off the queue and reconcile them from the current cached state, so a burst of events for one object collapses into
one reconcile, a key is never reconciled by two workers at once, and a failed reconcile is retried with backoff.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from modelhub.adapters import metrics
from modelhub.domain.requeue import failure_backoff

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (kind, namespace or "", name)


def _older(new: Any, cached: Any) -> bool:
    return isinstance(new, str) and isinstance(cached, str) and new.isdigit() and cached.isdigit() and (
        int(new) < int(cached))


Indexer = Callable[[dict[str, Any]], Any]  # an object -> its index value (None: not indexed)

# Strings up to this long are shared between cached objects (sys.intern): namespaces, label values, condition
# types and reasons, image names, the many defaulted fields of a pod template. Longer ones (messages, bundles)
# are mostly unique.
SHARED_STRING_MAX = 64
# Parts of an object nested deeper than this are kept as decoded (a hostile object's depth costs no recursion).
SHARED_DEPTH_MAX = 32
# The table of shared parts is swept of those no cached object holds any more when it has grown by a quarter.
SHARED_SWEEP_MIN = 4096
_MISSING = object()


def _same(a: Any, b: Any) -> bool:
    """Whether two containers whose parts are already shared hold the same parts: nested containers the very
    same objects, scalars equal and of one type (True, 1 and 1.0 are equal in Python, not in JSON)."""
    if type(a) is not type(b) or len(a) != len(b):
        return False
    pairs = ((x, b.get(k, _MISSING)) for k, x in a.items()) if type(a) is dict else zip(a, b, strict=True)
    for x, y in pairs:
        if x is y:
            continue
        if type(x) is not type(y) or type(x) is dict or type(x) is list or x != y:
            return False
    return True


class SharedParts:
    """Equal parts of cached objects stored once (hash consing): short strings, and every dict and list equal to
    one already cached. A thousand Deployments of one pod template differ in a few names and digests; their
    probes, resources, volumes, ports and security contexts, and most of their Services, are the same values.
    About 40% of what the cache holds (at 1000 versions, 23 -> 14 MB).

    Cached bodies are read, never changed in place (every writer builds a new object), so sharing their parts is
    safe; the unit tests check that no reconcile changes a cached body. A part is found by a hash of its own
    parts (by identity: they are shared already, from the leaves up) and confirmed by `_same` before it is
    shared. The table keeps the parts alive until a sweep finds that only the table holds them.
    """

    def __init__(self, sweep_min: int = SHARED_SWEEP_MIN) -> None:
        self._table: dict[int, Any] = {}
        self._sweep_min = sweep_min
        self._sweep_at = sweep_min

    def __len__(self) -> int:
        return len(self._table)

    def share(self, body: dict[str, Any]) -> None:
        """Replace, in place, every part of `body` (not `body` itself) by the one shared equal of it."""
        for k, v in body.items():
            s = self._share(v, 1)
            if s is not v:
                body[k] = s
        if len(self._table) >= self._sweep_at:
            self.sweep()

    def _share(self, node: Any, depth: int) -> Any:
        t = type(node)
        if t is str:
            return sys.intern(node) if len(node) <= SHARED_STRING_MAX else node
        if (t is not dict and t is not list) or depth > SHARED_DEPTH_MAX:
            return node
        tokens: list[Any] = [t is dict]
        if t is dict:
            for k, v in node.items():
                s = self._share(v, depth + 1)
                if s is not v:
                    node[k] = s  # the same key: no resize while iterating
                tokens += (k, id(s) if type(s) is dict or type(s) is list else s)
        else:
            for i, v in enumerate(node):
                s = self._share(v, depth + 1)
                if s is not v:
                    node[i] = s
                tokens.append(id(s) if type(s) is dict or type(s) is list else s)
        h = hash(tuple(tokens))
        got = self._table.get(h)
        if got is None:
            self._table[h] = node
            return node
        return got if got is node or _same(got, node) else node  # (a hash collision: this one stays unshared)

    def sweep(self) -> None:
        """Forget the parts only the table holds. Newest first: a part was entered after its own parts, so when
        it goes they are down to the table's reference by the time they are looked at, in the same pass."""
        table = self._table
        for h in reversed(list(table)):
            if sys.getrefcount(table[h]) <= 2:  # the table's reference, and the call's
                del table[h]
        self._sweep_at = max(self._sweep_min, len(table) + len(table) // 4)


@dataclass
class Cache:
    """Latest body of every watched object, by kind then (namespace, name), with secondary indexes per kind
    (e.g. ModelVersions by (namespace, model), Deployments by artifact digest), so lookups are not scans."""

    objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)
    indexers: dict[str, dict[str, Indexer]] = field(default_factory=dict)
    indexes: dict[tuple[str, str], dict[Any, set[tuple[str, str]]]] = field(default_factory=dict)
    parts: SharedParts = field(default_factory=SharedParts)

    def _index(self, kind: str, key: tuple[str, str], body: dict[str, Any] | None, add: bool) -> None:
        if body is None:
            return
        for name, fn in self.indexers.get(kind, {}).items():
            value = fn(body)
            if value is None:
                continue
            index = self.indexes.setdefault((kind, name), {})
            if add:
                index.setdefault(value, set()).add(key)
            else:
                members = index.get(value)
                if members is not None:
                    members.discard(key)
                    if not members:
                        del index[value]

    def put(self, kind: str, body: dict[str, Any]) -> bool:
        """Store the latest body of an object; False (and nothing stored) when it is older than the cached one.

        Writes put the server's answer in the cache ahead of the watch; the watch may then deliver an older
        state of the same object, which must not win. resourceVersions are etcd revisions (decimal integers):
        compared as such when both are, else the newer-arriving body wins.
        """
        meta = body.get("metadata", {})
        if "managedFields" in meta:  # nobody reads them; often a third of an object (kept out, not mutated)
            meta = {k: v for k, v in meta.items() if k != "managedFields"}
            body = {**body, "metadata": meta}
        key = (meta.get("namespace") or "", meta["name"])
        bucket = self.objects.setdefault(kind, {})
        old = bucket.get(key)
        if old is not None and _older(meta.get("resourceVersion"), (old.get("metadata") or {}).get("resourceVersion")):
            return False
        self._index(kind, key, bucket.get(key), add=False)
        self.parts.share(body)
        bucket[key] = body
        self._index(kind, key, body, add=True)
        return True

    def drop(self, kind: str, namespace: str | None, name: str) -> None:
        key = (namespace or "", name)
        self._index(kind, key, self.objects.get(kind, {}).pop(key, None), add=False)

    def by(self, kind: str, index: str, value: Any) -> list[dict[str, Any]]:
        """The objects of `kind` whose `index` value is `value`, ordered by (namespace, name)."""
        bucket = self.objects.get(kind, {})
        return [bucket[k] for k in sorted(self.indexes.get((kind, index), {}).get(value, ())) if k in bucket]

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.objects.get(kind, {}).get((namespace or "", name))

    def holds(self, kind: str, body: dict[str, Any]) -> bool:
        """Whether the cache already holds exactly this state of the object (the same resourceVersion): the
        watch's echo of a write whose answer went into the cache."""
        meta = body.get("metadata") or {}
        rv = meta.get("resourceVersion")
        cached = self.get(kind, meta.get("namespace"), meta.get("name") or "")
        return bool(rv) and cached is not None and (cached.get("metadata") or {}).get("resourceVersion") == rv

    def all(self, kind: str) -> list[dict[str, Any]]:
        return list(self.objects.get(kind, {}).values())

    def watched(self, kind: str) -> bool:
        return kind in self.objects


class Lane:
    """A FIFO of keys for a set of workers, ModelVersions ahead of Models: a Model decides from its versions'
    verdicts, so when both are queued (a burst of new versions) the versions are reached first and the Model
    reconciles once, on their verdicts, instead of writing a transient status (and Event) before them. A Model
    key that has waited `max_wait` seconds goes first all the same, so a stream of versions never starves it."""

    def __init__(self, max_wait: float = 1.0) -> None:
        self._first: collections.deque[Key] = collections.deque()
        self._rest: collections.deque[tuple[Key, float]] = collections.deque()
        self._items = asyncio.Semaphore(0)
        self._max_wait = max_wait

    def put_nowait(self, key: Key) -> None:
        if key[0] == "ModelVersion":
            self._first.append(key)
        else:
            self._rest.append((key, time.monotonic()))
        self._items.release()

    async def get(self) -> Key:
        await self._items.acquire()
        if self._rest and (not self._first or time.monotonic() - self._rest[0][1] >= self._max_wait):
            return self._rest.popleft()[0]
        return self._first.popleft()

    def qsize(self) -> int:
        return len(self._first) + len(self._rest)


class WorkQueue:
    """Keys to reconcile, two lanes: Revocations have workers of their own that no other work can take, and
    routine reconciles (Models, ModelVersions) wait while any Revocation is queued or running, so enforcement
    never waits behind a backlog and a Model never races a teardown over the same Deployments."""

    def __init__(self, reconcile: Callable[[Key], Awaitable[float | None]], *, workers: int,
                 revocation_workers: int) -> None:
        """`workers` and `revocation_workers`: the lanes' worker counts (their defaults are Settings')."""
        self._reconcile = reconcile
        self._workers = workers
        self._revocation_workers = revocation_workers
        self._routine = Lane()
        self._revocation = Lane()
        self._queued: set[Key] = set()
        self._since: dict[Key, float] = {}  # when each queued key became due
        self._active: set[Key] = set()
        self._dirty: set[Key] = set()
        self._failures: dict[Key, int] = {}
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.idle = asyncio.Event()
        # Cleared while a Revocation tears workloads down: routine work (and Events) wait, so the deletes get the
        # API server (and this process) to themselves.
        self.open = asyncio.Event()
        self.open.set()
        self._holds = 0
        # Set while this replica leads (always, without leader election): a standby keeps its queue and caches
        # but reconciles nothing.
        self.leading = asyncio.Event()
        self.leading.set()
        # Set while no Revocation is queued or being reconciled.
        self.no_revocations = asyncio.Event()
        self.no_revocations.set()
        self._revocations = 0

    @staticmethod
    def _is_revocation(key: Key) -> bool:
        return key[0] == "Revocation"

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
        self._since[key] = time.monotonic()
        self.idle.clear()
        if self._is_revocation(key):
            self._revocations += 1
            self.no_revocations.clear()
            self._revocation.put_nowait(key)
        else:
            self._routine.put_nowait(key)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def depth(self) -> int:
        return len(self._queued)

    def hold(self) -> None:
        self._holds += 1
        self.open.clear()

    def release(self) -> None:
        self._holds = max(0, self._holds - 1)
        if not self._holds:
            self.open.set()

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._work(self._revocation, True))
                           for _ in range(self._revocation_workers)]
            self._tasks += [asyncio.create_task(self._work(self._routine, False)) for _ in range(self._workers)]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _work(self, lane: Lane, revocations: bool) -> None:
        while True:
            await self.leading.wait()  # a standby takes nothing off its queue
            if not revocations:
                await self.no_revocations.wait()
                await self.open.wait()
            key = await lane.get()
            if not revocations and not (self.no_revocations.is_set() and self.open.is_set()
                                        and self.leading.is_set()):
                lane.put_nowait(key)  # a Revocation (or a teardown, or a lost Lease) came while we waited
                continue
            if revocations and not self.leading.is_set():
                lane.put_nowait(key)
                continue
            self._queued.discard(key)
            self._active.add(key)
            # A look-again timer of this key is moot: the reconcile starting now decides its own requeue (a
            # settling Deployment, a version awaiting its verdict would otherwise reconcile again for nothing).
            timer = self._timers.pop(key, None)
            if timer is not None:
                timer.cancel()
            started = time.monotonic()
            metrics.observe_queue_wait(started - self._since.pop(key, started))
            metrics.queue_depth(len(self._queued))
            requeue: float | None = None
            try:
                requeue = await self._reconcile(key)
                self._failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one object's failure never stops the operator
                n = self._failures.get(key, 0) + 1
                self._failures[key] = n
                requeue = failure_backoff(n)
                log.exception("reconcile of %s failed (attempt %d); retrying in %.1fs", key, n, requeue)
            finally:
                self._active.discard(key)
                if revocations:
                    self._revocations -= 1
                    if not self._revocations:
                        self.no_revocations.set()
                log.debug("reconciled %s in %.3fs", key, time.monotonic() - started)
            if key in self._dirty:
                self._dirty.discard(key)
                self.add(key)
            elif requeue is not None:
                self.add(key, requeue)
            if not self._queued and not self._active:
                self.idle.set()
