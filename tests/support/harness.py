"""The reconcilers wired to the in-memory FakeKube, with a queue the test drives: run any queued key, deliver
any pending watch event, in whatever order the test (or a seeded random generator) chooses."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import functools
import random
from collections.abc import Callable
from typing import Any

import orjson

from modelhub.adapters import fetch
from modelhub.adapters.bundles import Bundle, BundleFetcher, BundleSettings, Refusal
from modelhub.domain.teardown import WORKLOAD_KINDS
from modelhub.handlers.context import Context, Settings, new_cache
from modelhub.handlers.reconciler import Reconciler
from modelhub.handlers.runtime import Cache, Key
from modelhub.handlers.watches import on_httproute
from tests.support.fakekube import FakeKube, WatchEvent


class InlineExecutor(concurrent.futures.Executor):
    """Runs each submitted call at once, in the caller's thread (the teardown pool, made deterministic)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        f: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting reconcile
            f.set_exception(exc)
        return f


class UntouchedCache(Cache):
    """The operator's cache, noting each body as it was stored: the cache shares equal parts between objects,
    which is only safe while nobody changes a cached body in place; `changed()` names any that was."""

    def __init__(self) -> None:
        base = new_cache()
        super().__init__(indexers=base.indexers)
        self.stored: dict[tuple[str, str, str], bytes] = {}

    def put(self, kind: str, body: dict[str, Any]) -> bool:
        if not super().put(kind, body):
            return False
        m = body.get("metadata") or {}
        key = (m.get("namespace") or "", m["name"])
        self.stored[(kind, *key)] = orjson.dumps(self.objects[kind][key])
        return True

    def changed(self) -> list[tuple[str, str, str]]:
        return sorted((kind, *key) for kind, bucket in self.objects.items() for key, body in bucket.items()
                      if orjson.dumps(body) != self.stored[(kind, *key)])


class DrivenQueue:
    """The WorkQueue's interface; keys wait here until the test runs them (delays are noted, not waited for)."""

    def __init__(self) -> None:
        self.ready: dict[Key, None] = {}
        self.later: dict[Key, float] = {}
        self.open = asyncio.Event()
        self.open.set()
        self.leading = asyncio.Event()
        self.leading.set()
        self.holds = 0

    def add(self, key: Key, delay: float = 0.0) -> None:
        if delay > 0:
            self.later[key] = min(delay, self.later.get(key, delay))
        else:
            self.ready[key] = None

    def hold(self) -> None:
        self.holds += 1
        self.open.clear()

    def release(self) -> None:
        self.holds -= 1
        if not self.holds:
            self.open.set()


async def direct(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


class InlineBundles:
    """The bundle fetcher's checks and bounds, answered at once (the harness drives the queue itself): every
    request is fetched right away under the given settings (default: any local path, loopback allowed)."""

    def __init__(self, settings: BundleSettings | None = None) -> None:
        self.fetcher = BundleFetcher(settings or BundleSettings(file_roots=("/",), allow_cidrs=fetch.parse_cidrs(
            "127.0.0.0/8", "test"), allow_http=True))
        self.requests: list[tuple[Any, str]] = []
        self.cancelled: list[Any] = []

    def request(self, key: Any, uri: str, *, credentials: Any = None,
                on_done: Callable[[], None] | None = None, resolve: bool = False,
                ca_pem: bytes | None = None) -> Bundle | Refusal | str | None:
        self.requests.append((key, uri))
        if resolve:
            return self.fetcher.resolve_sync(uri, credentials=credentials)
        return self.fetcher.fetch_sync(uri, credentials=credentials, ca_pem=ca_pem)

    def cancel(self, key: Any) -> None:
        self.cancelled.append(key)


class Harness:
    def __init__(self, *, approval_key: bytes = b"k" * 32, now: dt.datetime | None = None) -> None:
        self.kube = FakeKube()
        self.now = now or dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.UTC)
        self.queue = DrivenQueue()
        self.cache = UntouchedCache()
        self.ctx = Context(kube=self.kube, settings=Settings(loader_image="localhost/modelhub:test"),
                           clock=lambda: self.now, io=direct, approval_key=approval_key,
                           teardown_pool=InlineExecutor(), queue=self.queue,
                           bundles=InlineBundles(), cache=self.cache)
        self.reconciler = Reconciler(self.ctx)
        self.loop = asyncio.new_event_loop()

    def close(self) -> None:
        """Every test's last check: no reconcile changed a cached body in place."""
        self.loop.close()
        changed = self.cache.changed()
        assert not changed, f"cached bodies changed in place: {changed}"

    # --- user actions ----------------------------------------------------------------------------------
    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.kube.put(obj)

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self.kube.remove(kind, namespace, name)

    # --- one step --------------------------------------------------------------------------------------
    def deliver(self, event: WatchEvent) -> None:
        route = {"Model": self.reconciler.router.on_model, "ModelVersion": self.reconciler.router.on_version,
                 "Revocation": self.reconciler.router.on_revocation, "Deployment": self.reconciler.router.on_deployment,
                 "Service": self.reconciler.router.on_service, "ConfigMap": self.reconciler.router.on_configmap,
                 "HTTPRoute": functools.partial(on_httproute, self.reconciler.router)}
        async def on_loop() -> None:  # routing runs on the event loop, as in the operator
            fn = route.get(event.kind)
            if fn is not None:
                fn(event.type, event.obj)
            elif event.kind in WORKLOAD_KINDS:
                self.reconciler.router.on_workload(event.kind, event.type, event.obj)

        self.loop.run_until_complete(on_loop())
        self.ctx.services_watched = True

    def _next_event(self, rng: random.Random) -> WatchEvent:
        """A random object's oldest pending event: watches deliver each object's events in order, but nothing
        orders the events of different objects."""
        picked = self.kube.pending[rng.randrange(len(self.kube.pending))]
        ident = (picked.kind, picked.obj["metadata"].get("namespace"), picked.obj["metadata"]["name"])
        for i, e in enumerate(self.kube.pending):
            if (e.kind, e.obj["metadata"].get("namespace"), e.obj["metadata"]["name"]) == ident:
                return self.kube.pending.pop(i)
        raise AssertionError("unreachable")

    def deliver_all(self) -> None:
        while self.kube.pending:
            self.deliver(self.kube.pending.pop(0))

    def run(self, key: Key) -> float | None:
        self.queue.ready.pop(key, None)
        self.queue.later.pop(key, None)

        async def go() -> float | None:
            result = await self.reconciler.dispatch(key)
            await self.ctx.behind.drain()
            await self.ctx.events.drain()
            return result

        result = self.loop.run_until_complete(go())
        if result is not None:
            self.queue.add(key, result)
        return result

    def step(self, rng: random.Random, settle: Callable[[], bool] | None = None) -> bool:
        """One random step: deliver a pending event, run a ready key, run a key waiting for later, or let the
        controllers move. Whether anything could be done."""
        choices: list[Callable[[], None]] = []
        if self.kube.pending:
            choices.append(lambda: self.deliver(self._next_event(rng)))
        if self.queue.ready:
            choices.append(lambda: self.run(rng.choice(sorted(self.queue.ready))))
        if settle is not None:
            choices.append(lambda: None if settle() else None)
        if not choices:
            return False
        rng.choice(choices)()
        return True

    def settle(self, rng: random.Random | None = None, max_steps: int = 5000,
               controllers: Callable[[], bool] | None = None) -> int:
        """Run until nothing is pending, nothing is ready, the controllers change nothing and the keys waiting
        for later change nothing either. The number of steps taken."""
        rng = rng or random.Random(0)
        steps = 0
        while steps < max_steps:
            while (self.kube.pending or self.queue.ready) and steps < max_steps:
                self.step(rng)
                steps += 1
            moved = controllers() if controllers else False
            if not moved and self.queue.later:
                before = len(self.kube.requests)
                for key in sorted(self.queue.later):
                    self.run(key)
                writes = [r for r in self.kube.requests[before:] if r[0] not in ("get", "list")]
                moved = bool(writes or self.kube.pending or self.queue.ready)
                if not moved:
                    self.queue.later.clear()
            if not moved and not self.kube.pending and not self.queue.ready:
                return steps
        raise AssertionError(f"did not settle in {max_steps} steps; ready={list(self.queue.ready)[:5]}")

    def settle_deployments(self, step: int | None = None) -> bool:
        moved = False
        for dep in self.kube.of_kind("Deployment"):
            moved |= self.kube.settle_deployment(dep["metadata"]["namespace"], dep["metadata"]["name"], step)
        return moved
