"""Leader election: one replica acts (reconciles, tears down, writes Events); the others keep their watches and
caches warm and take over when the leader's Lease expires. Decisions in domain.leader."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from modelhub.domain.leader import decide_lease, still_leading

log = logging.getLogger(__name__)


def default_identity() -> str:
    """`MODELHUB_IDENTITY`, else the pod's name (HOSTNAME): a container restarted in its pod takes its Lease
    back at once; two pods never share a name."""
    return os.environ.get("MODELHUB_IDENTITY") or os.environ.get("HOSTNAME") or socket.gethostname()


class LeaderElector:
    def __init__(self, kube: Any, *, namespace: str, name: str, identity: str,
                 clock: Callable[[], dt.datetime], duration: int = 10, renew_deadline: float = 8.0,
                 retry: float = 2.0, on_change: Callable[[bool], None] | None = None) -> None:
        self._kube, self.namespace, self.name, self.identity = kube, namespace, name, identity
        self._clock, self._duration, self._deadline, self._retry = clock, duration, renew_deadline, retry
        self._on_change = on_change
        self.leading = asyncio.Event()
        self._renewed: dt.datetime | None = None
        self.holder: str | None = None

    def _set(self, leading: bool) -> None:
        if leading == self.leading.is_set():
            return
        if leading:
            self.leading.set()
            log.info("leading as %s (Lease %s/%s)", self.identity, self.namespace, self.name)
        else:
            self.leading.clear()
            log.warning("no longer leading (Lease %s/%s held by %s): standing by", self.namespace, self.name,
                        self.holder)
        if self._on_change:
            self._on_change(leading)

    async def try_once(self) -> None:
        now = self._clock()
        try:
            lease = await asyncio.to_thread(self._kube.get_lease, self.namespace, self.name)
            decision = decide_lease(lease, self.identity, now, self._duration)
            self.holder = decision.holder
            if decision.action == "wait":
                self._renewed = None  # someone else holds it: stop acting at once
            if decision.spec is not None:
                rv = None if lease is None else (lease.get("metadata") or {}).get("resourceVersion")
                written = await asyncio.to_thread(self._kube.write_lease, self.namespace, self.name,
                                                  decision.spec, rv)
                if written is not None:
                    self._renewed = now
        except Exception as exc:  # noqa: BLE001 - the API server may be away; the deadline decides
            log.info("leader election: %s", exc)
        self._set(still_leading(self._renewed, self._clock(), self._deadline))

    async def release(self) -> None:
        """On a clean shutdown, give the Lease up so that a standby takes over at once."""
        if not self.leading.is_set():
            return
        self._set(False)
        try:
            lease = await asyncio.to_thread(self._kube.get_lease, self.namespace, self.name)
            spec = dict((lease or {}).get("spec") or {})
            if lease is not None and spec.get("holderIdentity") == self.identity:
                spec.update(holderIdentity=None, renewTime=None, acquireTime=None)
                await asyncio.to_thread(self._kube.write_lease, self.namespace, self.name, spec,
                                        (lease.get("metadata") or {}).get("resourceVersion"))
        except Exception as exc:  # noqa: BLE001 - it expires anyway
            log.info("could not release the Lease: %s", exc)

    async def run(self) -> None:
        while True:
            await self.try_once()
            await asyncio.sleep(self._retry)
