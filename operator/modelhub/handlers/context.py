"""The collaborators every reconciler works with, built once at startup and passed in (no module state).

`Context` holds the kube client (anything with the `KubePort` methods: the real adapter, or the in-memory fake
of the unit tests), the watch cache, the revocation index, the work queue, the settings, the clock, the approval
key and the way blocking calls run (`io`: a worker thread in the operator, a direct call in tests).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import datetime as dt
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from modelhub.adapters import metrics
from modelhub.domain.events import Event
from modelhub.domain.loadlimits import DEFAULTS as LOADER_DEFAULTS
from modelhub.domain.loadlimits import LoaderLimits, limits_from_env
from modelhub.domain.revocation import VersionIndex
from modelhub.domain.teardown import WORKLOAD_KINDS, declared_digest
from modelhub.domain.verdicts import Verdict
from modelhub.handlers.runtime import Cache, Key
from modelhub.vocab import labels as L

log = logging.getLogger(__name__)


def _non_negative(value: int, name: str) -> int:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, not {value}")
    return value


def _env_selector(text: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in text.split(",") if "=" in kv)


@dataclass
class Settings:
    """Operator settings, from the environment (the Helm chart sets them)."""

    namespace: str = "modelhub-system"
    loader_image: str = "ghcr.io/modelhub/modelhub:0.1.0"
    cpu_node_selector: dict[str, str] = field(default_factory=lambda: {L.NODE_CLASS: "cpu"})
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 9443
    webhooks: bool = True
    metrics_port: int = 8000
    teardown_concurrency: int = 32
    # Grace period of the pods a Revocation deletes directly (the model is poisoned: short). 1 s, not 0: the API
    # server keeps a pod until its kubelet has stopped the containers, so "pods gone" means no process serves.
    revocation_grace_seconds: int = 1
    # Routine reconcile workers. Few on purpose: at N=1000 a burst with 16 (or 8) workers kept every change its own
    # reconcile and write, and their answers slowed the cluster's own Deployment and ReplicaSet controllers (25 s
    # from a Deployment to its ReplicaSet against 10 s in the floor); with 4 the queue merges a key's changes while
    # it waits (6.4 reconciles per version, not 14), and the rollout ends sooner (bench-rollout, README).
    workers: int = 4
    revocation_workers: int = 4
    event_concurrency: int = 8
    service_write_concurrency: int = 4
    # Events are best effort: at most `event_qps` a second (bursts of `event_burst`), a bounded backlog beyond.
    # (client-go's recorder likewise drops beyond 1000 queued Events.)
    event_qps: float = 10.0
    event_burst: int = 25
    event_backlog: int = 1000
    resync_seconds: float = 180.0
    leader_election: bool = True
    lease_name: str = "modelhub-operator"
    lease_seconds: int = 10
    loader_limits: LoaderLimits = LOADER_DEFAULTS

    @property
    def io_threads(self) -> int:
        """Threads for blocking API calls (the event loop's default executor): what the queue workers (two calls
        at once each: a Model writes a canary's two Deployments together), the Event senders and the writes
        behind can have in flight. Each idle thread still holds about 150 KB; teardowns have a pool of their own."""
        return 2 * (self.workers + self.revocation_workers) + self.event_concurrency + self.service_write_concurrency

    @classmethod
    def from_env(cls, env: Any = None) -> Settings:
        e = os.environ if env is None else env
        d = cls()
        return cls(
            namespace=e.get("MODELHUB_NAMESPACE", d.namespace),
            loader_image=e.get("MODELHUB_LOADER_IMAGE", d.loader_image),
            cpu_node_selector=_env_selector(e.get("MODELHUB_CPU_NODE_SELECTOR", f"{L.NODE_CLASS}=cpu")),
            webhook_host=e.get("MODELHUB_WEBHOOK_HOST", d.webhook_host),
            webhook_port=int(e.get("MODELHUB_WEBHOOK_PORT", d.webhook_port)),
            webhooks=e.get("MODELHUB_WEBHOOKS", "1") != "0",
            metrics_port=int(e.get("MODELHUB_METRICS_PORT", d.metrics_port)),
            teardown_concurrency=int(e.get("MODELHUB_TEARDOWN_CONCURRENCY", d.teardown_concurrency)),
            revocation_grace_seconds=_non_negative(
                int(e.get("MODELHUB_REVOCATION_GRACE_SECONDS", d.revocation_grace_seconds)),
                "MODELHUB_REVOCATION_GRACE_SECONDS"),
            event_qps=float(e.get("MODELHUB_EVENT_QPS", d.event_qps)),
            event_burst=int(e.get("MODELHUB_EVENT_BURST", d.event_burst)),
            workers=int(e.get("MODELHUB_WORKERS", d.workers)),
            service_write_concurrency=max(1, int(e.get("MODELHUB_SERVICE_WRITE_CONCURRENCY",
                                                       d.service_write_concurrency))),
            revocation_workers=int(e.get("MODELHUB_REVOCATION_WORKERS", d.revocation_workers)),
            resync_seconds=float(e.get("MODELHUB_RESYNC_SECONDS", d.resync_seconds)),
            leader_election=e.get("MODELHUB_LEADER_ELECTION", "1") != "0",
            lease_name=e.get("MODELHUB_LEASE_NAME", d.lease_name),
            lease_seconds=int(e.get("MODELHUB_LEASE_SECONDS", d.lease_seconds)),
            loader_limits=limits_from_env(e),
        )


class KubePort(Protocol):
    """What the reconcilers need of the cluster (modelhub.adapters.kube.Kube; tests: an in-memory fake)."""

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def patch_status(self, kind: str, namespace: str | None, name: str,
                     status: dict[str, Any]) -> dict[str, Any] | None: ...
    def apply(self, obj: dict[str, Any]) -> dict[str, Any]: ...
    def replace(self, obj: dict[str, Any]) -> dict[str, Any]: ...
    def delete_deployment(self, namespace: str, name: str, *, grace_seconds: int | None = 0) -> bool: ...
    def delete_workload(self, kind: str, namespace: str, name: str, *, grace_seconds: int | None = 0) -> bool: ...
    def get_metadata(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...
    def pod_problems(self, namespace: str, selector: str) -> tuple[str | None, str | None]: ...
    def event(self, obj: dict[str, Any], *, type_: str, reason: str, message: str, action: str) -> None: ...
    # Any namespaced object by apiVersion and plural (the traffic router's HTTPRoute and per-version Services).
    def apply_object(self, obj: dict[str, Any], plural: str) -> dict[str, Any]: ...
    def replace_object(self, obj: dict[str, Any], plural: str) -> dict[str, Any]: ...
    def delete_object(self, api_version: str, plural: str, namespace: str, name: str) -> bool: ...
    def serves_resource(self, group_version: str, plural: str) -> bool: ...
    def access_review(self, user: str, groups: list[str], uid: str, extra: dict[str, list[str]], *, namespace: str,
                      verb: str, group: str, resource: str, name: str = "") -> tuple[bool, str]: ...


class BundleSource(Protocol):
    """Signature-bundle fetches that never hold a queue worker (modelhub.adapters.bundles.BundleFetcher).
    `request` returns the result once there (a Bundle or a Refusal), else None and calls `on_done` when it lands."""

    def request(self, key: Any, uri: str, *, credentials: Any = None,
                on_done: Callable[[], None] | None = None, resolve: bool = False,
                ca_pem: bytes | None = None) -> Any: ...
    def cancel(self, key: Any) -> None: ...


class Queue(Protocol):
    open: asyncio.Event
    leading: asyncio.Event

    def add(self, key: Key, delay: float = 0.0) -> None: ...
    def hold(self) -> None: ...
    def release(self) -> None: ...


_PENDING = object()


class ConfigMapCache:
    """Read-through cache of the ConfigMaps verification reads (keyrings, bundles), kept fresh by their watch.

    Only ConfigMaps somebody asked for are kept; a watch event for one of them replaces it (or marks it gone).
    """

    def __init__(self, kube: KubePort) -> None:
        self._kube = kube
        self._data: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        key = (namespace, name)
        with self._lock:
            hit = self._data.get(key, _PENDING)
            if hit is not _PENDING:
                return hit  # type: ignore[no-any-return]
            self._data[key] = _PENDING
        cm = self._kube.get_configmap(namespace, name)
        with self._lock:
            if self._data.get(key) is _PENDING:  # no newer watch event meanwhile
                self._data[key] = cm
            return self._data[key]  # type: ignore[no-any-return]

    def observe(self, event_type: str | None, obj: dict[str, Any]) -> bool:
        """Record a watch event; whether what verification read from this ConfigMap changed. A ConfigMap nobody
        has read, or one delivered again as it was read (a watch's first list), changes nothing."""
        m = obj.get("metadata") or {}
        key = (m.get("namespace") or "", m.get("name") or "")
        with self._lock:
            if key not in self._data:
                return False
            old = self._data[key]
            new = None if event_type == "DELETED" else {
                "data": dict(obj.get("data") or {}), "resourceVersion": m.get("resourceVersion"),
            }
            self._data[key] = new
            if old is _PENDING:
                return True  # read while this event was on its way: look again
            if old is None or new is None:
                return old is not new
            return bool(old.get("resourceVersion") != new.get("resourceVersion") or old.get("data") != new.get("data"))


def _version_model(obj: dict[str, Any]) -> tuple[str, str] | None:
    model = (obj.get("spec") or {}).get("model")
    return ((obj.get("metadata") or {}).get("namespace") or "", model) if model else None


def _deployment_model(obj: dict[str, Any]) -> tuple[str, str] | None:
    """Managed Deployments by (namespace, model)."""
    lab = (obj.get("metadata") or {}).get("labels") or {}
    if lab.get(L.MANAGED_BY) != L.MANAGER or not lab.get(L.MODEL):
        return None
    return ((obj.get("metadata") or {}).get("namespace") or "", lab[L.MODEL])


def _workload_digest(obj: dict[str, Any]) -> str | None:
    return declared_digest(obj).digest


def new_cache() -> Cache:
    indexers: dict[str, dict[str, Any]] = {kind: {"digest": _workload_digest} for kind in WORKLOAD_KINDS}
    indexers["Deployment"]["model"] = _deployment_model
    indexers["ModelVersion"] = {"model": _version_model}
    return Cache(indexers=indexers)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


class Drainers:
    """At most `limit` tasks draining one backlog: started as work arrives, gone once none is left (so a backlog
    of thousands is a queue, not thousands of tasks).

    A drainer counts as gone the moment it finds the backlog empty, in the same step (no await between): a task's
    done callbacks run a loop iteration later, and work arriving in between would otherwise see `limit` drainers
    that are all finished and wait for the next arrival to be drained."""

    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._active = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, drain: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Another drainer, unless `limit` of them run already (they take the new work)."""
        if self._active < self._limit:
            self._active += 1
            task = asyncio.create_task(self._run(drain))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, drain: Callable[[], Coroutine[Any, Any, None]]) -> None:
        try:
            await drain()
        finally:
            self._active -= 1

    async def wait(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def regarding(obj: dict[str, Any]) -> dict[str, Any]:
    """What an Event says of the object it is about (events.k8s.io `regarding`): its identity, not its body."""
    m = obj.get("metadata") or {}
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
            "metadata": {k: m.get(k) for k in ("name", "namespace", "uid", "resourceVersion")}}


class EventRecorder:
    """Records Events in the background, a few at a time and never while a teardown holds the queue: they are
    best effort and must not slow a reconcile down. Rate limited (a token bucket: `event_qps` a second, bursts of
    `event_burst`), so a Revocation of a thousand versions does not send the API server two thousand Events at
    once; beyond a backlog of `event_backlog` Events waiting, new ones are dropped and counted (their facts are
    in the objects' status conditions).

    The backlog is a queue of what each Event says and whom it regards (not the object's body, not a task per
    record: at a thousand versions, a waiting task holding a body each was 10 MB), drained by at most
    `concurrency` senders, started when there is work and gone when there is none."""

    def __init__(self, ctx: Context, concurrency: int) -> None:
        self._ctx = ctx
        self._backlog_items: collections.deque[tuple[dict[str, Any], list[Event], str]] = collections.deque()
        self._senders = Drainers(concurrency)
        s = ctx.settings
        self._qps, self._burst, self._backlog = s.event_qps, max(1, s.event_burst), s.event_backlog
        self._tokens = float(self._burst)
        self._refilled: float | None = None
        self.waiting = 0

    async def _token(self) -> None:
        if self._qps <= 0:
            return
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            if self._refilled is not None:
                self._tokens = min(float(self._burst), self._tokens + (now - self._refilled) * self._qps)
            self._refilled = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await asyncio.sleep((1 - self._tokens) / self._qps)

    def record(self, obj: dict[str, Any], events: list[Event], action: str) -> None:
        if not events:
            return
        room = max(0, self._backlog - self.waiting)
        if len(events) > room:
            metrics.record_event_dropped(len(events) - room)
            log.debug("event backlog full: %d Events on %s not recorded", len(events) - room,
                      (obj.get("metadata") or {}).get("name"))
            events = events[:room]
            if not events:
                return
        self.waiting += len(events)
        self._backlog_items.append((regarding(obj), list(events), action))
        self._senders.start(self._send)

    async def _send(self) -> None:
        """Post the backlog's Events, one record's in its order, until the backlog is empty."""
        while self._backlog_items:
            about, events, action = self._backlog_items.popleft()
            pending = len(events)
            try:
                for e in events:
                    if self._ctx.queue is not None:
                        await self._ctx.queue.open.wait()
                        await self._ctx.queue.leading.wait()
                    await self._token()
                    pending -= 1
                    self.waiting -= 1
                    await self._ctx.io(self._ctx.kube.event, about, type_=e.type, reason=e.reason,
                                       message=e.message, action=action)
            except Exception:  # noqa: BLE001 - an Event is best effort; the sender goes on with the next
                log.warning("recording %s Events failed", action, exc_info=True)
            finally:
                self.waiting -= pending

    async def drain(self) -> None:
        await self._senders.wait()


class WritesBehind:
    """Writes that no reconcile needs to wait for, run beside the queue workers, a few at a time, at most one
    per key: the Model's Service (a ClusterIP allocation, which under load takes the API server longer than
    the Deployment behind it; nothing else waits for it, so a worker holding on to it would only delay the next
    Models' Deployments). A key asked again while its write waits has its write replaced (the latest wins); while
    it runs, it is written again once it ends (`again`), unless it is asked for what it is writing already.

    Waiting writes are a queue of keys drained by at most `concurrency` runners, not a task each: at a thousand
    Models, eight hundred Services waited at once."""

    def __init__(self, concurrency: int) -> None:
        self._waiting: dict[Any, tuple[Callable[[], Awaitable[None]], Any]] = {}  # key -> (write, what), in order
        self._running: dict[Any, Any] = {}  # key -> what its running write writes
        self._again: dict[Any, tuple[Callable[[], Awaitable[None]], Any]] = {}  # key -> the next (write, what)
        self._runners = Drainers(concurrency)

    def submit(self, key: Any, write: Callable[[], Awaitable[None]], what: Any = None) -> None:
        """Run `write` for `key`; `what` is what it writes: asked again for the same while it runs, nothing
        more is done (a Model reconciled again before its Service landed plans the same Service)."""
        if key in self._running:
            if what is not None and self._running[key] == what:
                self._again.pop(key, None)  # the latest is what is being written
            else:
                self._again[key] = (write, what)
            return
        self._waiting[key] = (write, what)  # a waiting key keeps its place in the queue
        self._runners.start(self._run)

    async def _run(self) -> None:
        while self._waiting:
            key = next(iter(self._waiting))
            fn, self._running[key] = self._waiting.pop(key)
            try:
                while True:
                    try:
                        await fn()
                    except Exception:  # noqa: BLE001 - `write` reports its own failures
                        log.exception("a write behind of %s failed", key)
                    nxt = self._again.pop(key, None)
                    if nxt is None:
                        break
                    fn, self._running[key] = nxt
            finally:
                self._running.pop(key, None)

    async def drain(self) -> None:
        await self._runners.wait()


@dataclass
class StatusWrite:
    """A status write on its way: how many (of one object), and the resourceVersions of the watch events of
    that object that came meanwhile (its echo among them, unless the answer came first)."""

    count: int = 0
    seen: set[str] = field(default_factory=set)


class GoneWaiter:
    """Workloads a teardown deleted and waits to see gone; `done` is set when none is left."""

    def __init__(self, pending: set[tuple[str, str, str]]) -> None:
        self.pending = pending
        self.done = asyncio.Event()

    def gone(self, ref: tuple[str, str, str]) -> None:
        self.pending.discard(ref)
        if not self.pending:
            self.done.set()


@dataclass
class Context:
    kube: KubePort
    settings: Settings = field(default_factory=Settings)
    cache: Cache = field(default_factory=new_cache)
    index: VersionIndex = field(default_factory=VersionIndex)
    clock: Callable[[], dt.datetime] = utc_now
    io: Callable[..., Awaitable[Any]] = in_thread
    approval_key: bytes = b""
    queue: Queue | None = None
    # Deployment generations we wrote last; a higher live generation means somebody else edited it.
    applied_generation: dict[tuple[str, str], int] = field(default_factory=dict)
    verify_cache: dict[tuple[str, ...], object] = field(default_factory=dict)
    # Deployments our teardown is deleting: their watch echoes trigger nothing until their DELETED event.
    tearing: set[tuple[str, str]] = field(default_factory=set)
    # Artifact digests tied to a Revocation by a refused ModelVersion (a late link), by Revocation name.
    late_digests: dict[str, set[str]] = field(default_factory=dict)
    # Workloads our teardown deleted lately: their dependents are the garbage collector's (bounded).
    # (kind, namespace, name) -> uid. A late watch event of one of them does not bring it back into the cache.
    recently_deleted: dict[tuple[str, str, str], str | None] = field(default_factory=dict)
    # (uid, annotation value) of workloads already warned about a malformed digest (bounded).
    warned: dict[tuple[str, str], None] = field(default_factory=dict)
    teardown_pool: concurrent.futures.Executor | None = None
    configmaps: ConfigMapCache = field(init=False)
    events: EventRecorder = field(init=False)
    behind: WritesBehind = field(init=False)
    # Whether Services are watched into the cache (then a missing one is seen, and re-applied).
    services_watched: bool = False
    # Signature-bundle fetches off the queue workers (default: a BundleFetcher with the environment's bounds).
    bundles: BundleSource | None = None
    # What this operator computed of each version (verification, sealed approval): the rollout decides from
    # these, never from conditions in status somebody else may have written. (namespace, name) -> Verdict.
    verdicts: dict[tuple[str, str], Verdict] = field(default_factory=dict)
    # The versions whose Model has planned its rollout with their verdict (namespace, name): the end of a new
    # version's first-status hold (versions.plan_version `decided`). Dropped with the version.
    decided: set[tuple[str, str]] = field(default_factory=set)
    # Teardowns waiting to see the pods they deleted gone (their watch's DELETED events), when Pods are watched.
    gone_waiters: set[GoneWaiter] = field(default_factory=set)
    # Status writes on their way, by (kind, namespace, name); the router routes the events that came meanwhile
    # and were not their echoes once they end (`after_status_write(kind, namespace, name)`).
    status_writes: dict[tuple[str, str, str], StatusWrite] = field(default_factory=dict)
    after_status_write: Callable[[str, str, str], None] | None = None
    pods_watched: bool = False

    def __post_init__(self) -> None:
        self.configmaps = ConfigMapCache(self.kube)
        self.events = EventRecorder(self, self.settings.event_concurrency)
        self.behind = WritesBehind(self.settings.service_write_concurrency)
        if self.bundles is None:
            from modelhub.adapters.bundles import BundleFetcher

            self.bundles = BundleFetcher()
        if self.teardown_pool is None:
            self.teardown_pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.settings.teardown_concurrency, thread_name_prefix="teardown")

    def expect_gone(self, refs: list[tuple[str, str, str]]) -> GoneWaiter:
        """Before deleting workloads: a waiter that learns (from their watch's DELETED events) when they are gone."""
        waiter = GoneWaiter(set(refs))
        if waiter.pending:
            self.gone_waiters.add(waiter)
        else:
            waiter.done.set()
        return waiter

    def teardown_gone(self, kind: str, namespace: str, name: str) -> None:
        """A workload's DELETED event (from its watch): teardowns waiting for it learn it is gone."""
        for waiter in list(self.gone_waiters):
            waiter.gone((kind, namespace, name))
            if waiter.done.is_set():
                self.gone_waiters.discard(waiter)

    async def wait_gone(self, waiter: GoneWaiter, timeout: float) -> bool:
        """Until everything `waiter` expects has been seen gone (at most `timeout` seconds); whether it was."""
        try:
            await asyncio.wait_for(waiter.done.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self.gone_waiters.discard(waiter)

    def enqueue(self, kind: str, namespace: str | None, name: str, delay: float = 0.0) -> None:
        if self.queue is not None and name:
            self.queue.add((kind, namespace or "", name), delay)

    def now_iso(self) -> str:
        return self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")

    def live_revocations(self) -> list[dict[str, Any]]:
        return [r for r in self.cache.all("Revocation") if not (r.get("metadata") or {}).get("deletionTimestamp")]
