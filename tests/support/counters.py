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
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop:
            w = kubernetes.watch.Watch()
            try:
                initial = self.list_fn(label_selector=self.selector)
                with self.lock:
                    self.names = set()
                    self.ready = set()
                    for o in initial.items:
                        self._observe("ADDED", o)
                    self.changed.notify_all()
                for ev in w.stream(self.list_fn, label_selector=self.selector,
                                   resource_version=initial.metadata.resource_version, timeout_seconds=300):
                    with self.lock:
                        self._observe(ev["type"], ev["object"])
                        self.changed.notify_all()
                    if self.stop:
                        break
            except Exception:  # noqa: BLE001 - a broken watch restarts with a fresh list
                time.sleep(0.2)

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
        deadline = time.time() + timeout
        with self.lock:
            while not pred(len(self.names), len(self.ready)):
                left = deadline - time.time()
                if left <= 0:
                    raise TimeoutError(f"count={len(self.names)} ready={len(self.ready)}")
                self.changed.wait(min(left, 0.5))
        return time.time()

    def close(self) -> None:
        self.stop = True
