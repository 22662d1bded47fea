"""Helpers for e2e tests: kubectl as users run it, and polling for what users would wait for."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from tests.support.kube import ROOT, kubectl, kubectl_bin, to_yaml  # noqa: F401 - re-exported for the e2e modules

T = TypeVar("T")


def apply(manifest: str | dict[str, Any] | list[dict[str, Any]], namespace: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    manifest = to_yaml(manifest)
    args = ["apply", "-f", "-"]
    if namespace:
        args += ["-n", namespace]
    return kubectl(*args, input=manifest, check=check)


def get(kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
    args = ["get", kind, name, "-o", "json"]
    if namespace:
        args += ["-n", namespace]
    proc = kubectl(*args, check=False)
    if proc.returncode != 0:
        if "NotFound" in proc.stderr or "not found" in proc.stderr:
            return None
        raise AssertionError(proc.stderr)
    return json.loads(proc.stdout)


def get_list(kind: str, namespace: str | None = None, selector: str | None = None) -> list[dict[str, Any]]:
    args = ["get", kind, "-o", "json"]
    args += ["-n", namespace] if namespace else ["-A"]
    if selector:
        args += ["-l", selector]
    return json.loads(kubectl(*args).stdout)["items"]


def condition(obj: dict[str, Any] | None, ctype: str) -> dict[str, Any] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def wait_for(fn: Callable[[], T], timeout: float = 60, interval: float = 0.5, what: str = "condition") -> T:
    """Poll fn until it returns something truthy; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def wait_condition(kind: str, name: str, namespace: str | None, ctype: str, status: str = "True",
                   reason: str | None = None, timeout: float = 60) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = get(kind, name, namespace)
        c = condition(obj, ctype)
        if c and c.get("status") == status and (reason is None or c.get("reason") == reason):
            return obj
        return None

    return wait_for(check, timeout, what=f"{kind}/{name} {ctype}={status} reason={reason}")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"
