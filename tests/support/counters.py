"""Watch counters for benchmarks and e2e: how many objects of a kind (label-selected, in a set of namespaces)
exist and how many are ready, kept live from a watch, with a wait for a predicate over the two."""

from __future__ import annotations

import threading
import time
from typing import Any

import kubernetes


class Counter:
    """Live count of objects of one kind (with a label selector) in a set of namespaces, from a watch."""

    def __init__(self, list_fn: Any, namespaces: set[str], selector: str) -> None:
        self.list_fn, self.namespaces, self.selector = list_fn, namespaces, selector
        self.names: set[tuple[str, str]] = set()
        self.ready: set[tuple[str, str]] = set()
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.stop = False
        self.changed_at = time.time()  # when the last event that changed the counts arrived
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop:
            w = kubernetes.watch.Watch()
            try:
                initial = self.list_fn(label_selector=self.selector)
                with self.lock:
                    self._reset()
                    for o in initial.items:
                        self._observe("ADDED", o)
                    self.changed_at = time.time()
                    self.changed.notify_all()
                for ev in w.stream(self.list_fn, label_selector=self.selector,
                                   resource_version=initial.metadata.resource_version, timeout_seconds=300):
                    now = time.time()
                    with self.lock:
                        before = (len(self.names), len(self.ready))
                        self._observe(ev["type"], ev["object"])
                        if (len(self.names), len(self.ready)) != before:
                            self.changed_at = now
                        self.changed.notify_all()
                    if self.stop:
                        break
            except Exception:  # noqa: BLE001 - a broken watch restarts with a fresh list
                time.sleep(0.2)

    def _reset(self) -> None:
        self.names = set()
        self.ready = set()

    def _observe(self, kind: str, o: Any) -> None:
        key = (o.metadata.namespace, o.metadata.name)
        if o.metadata.namespace not in self.namespaces:
            return
        if kind == "DELETED":
            self.names.discard(key)
            self.ready.discard(key)
            return
        self.names.add(key)
        ready = getattr(o.status, "ready_replicas", None) if hasattr(o.status, "ready_replicas") else None
        if ready is None and hasattr(o.status, "phase"):
            ready = 1 if o.status.phase == "Running" else 0
        if ready:
            self.ready.add(key)
        else:
            self.ready.discard(key)

    def wait(self, pred: Any, timeout: float) -> float:
        """Until `pred(count, ready)` holds; the time the event that made it hold arrived (not the time this
        wait noticed: a wait that starts late measures the moment all the same)."""
        deadline = time.time() + timeout
        with self.lock:
            while not pred(len(self.names), len(self.ready)):
                left = deadline - time.time()
                if left <= 0:
                    raise TimeoutError(f"count={len(self.names)} ready={len(self.ready)}")
                self.changed.wait(min(left, 0.5))
            return self.changed_at

    def close(self) -> None:
        self.stop = True


class EndpointCounter(Counter):
    """Live count of the endpoints that receive traffic in a set of namespaces: Ready (unset counts as ready, as
    the API says), not terminating, in any EndpointSlice. `names` holds every endpoint listed, `ready` those
    that serve."""

    def __init__(self, discovery: Any, namespaces: set[str]) -> None:
        self.slices: dict[tuple[str, str], tuple[set[Any], set[Any]]] = {}
        super().__init__(discovery.list_endpoint_slice_for_all_namespaces, namespaces, "")

    def _observe(self, kind: str, o: Any) -> None:
        ns = o.metadata.namespace
        if ns not in self.namespaces:
            return
        key = (ns, o.metadata.name)
        if kind == "DELETED":
            self.slices.pop(key, None)
        else:
            listed, serving = set(), set()
            for e in o.endpoints or []:
                ref = e.target_ref
                ident = (ns, ref.name if ref is not None else ",".join(e.addresses or []))
                listed.add(ident)
                cond = e.conditions
                ready = cond is None or cond.ready is None or bool(cond.ready)
                terminating = cond is not None and bool(cond.terminating)
                if ready and not terminating:
                    serving.add(ident)
            self.slices[key] = (listed, serving)
        self._recount()

    def _reset(self) -> None:
        super()._reset()
        self.slices = {}

    def _recount(self) -> None:
        self.names = set().union(*(s[0] for s in self.slices.values()))
        self.ready = set().union(*(s[1] for s in self.slices.values()))
