"""kubectl as users run it, CRD installation and free ports: one copy for e2e, benchmarks and the demo."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"


def kubectl_bin() -> str:
    """The pinned kubectl (`KUBECTL`, set by hack/with-cluster.sh), else the one on PATH."""
    return os.environ.get("KUBECTL") or shutil.which("kubectl") or "kubectl"


def kubectl(*args: str, input: str | None = None, check: bool = True,  # noqa: A002 - subprocess's name
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([kubectl_bin(), *args], input=input, capture_output=True, text=True, timeout=timeout,
                          check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def to_yaml(manifest: str | dict[str, Any] | list[dict[str, Any]]) -> str:
    if isinstance(manifest, str):
        return manifest
    return yaml.safe_dump_all(manifest if isinstance(manifest, list) else [manifest], sort_keys=False)


def install_crds() -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRDS))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
