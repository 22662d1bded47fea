"""e2e fixtures: a real API server (KUBECONFIG), our CRDs installed, and the operator as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.kubehelp import ROOT, kubectl, unique


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def cluster() -> str:
    kubeconfig = os.environ.get("KUBECONFIG")
    reachable = bool(kubeconfig) and kubectl("get", "--raw", "/readyz", check=False).returncode == 0
    if not reachable:
        msg = "no cluster: set KUBECONFIG (make test brings up the local control plane itself)"
        if os.environ.get("MODELHUB_REQUIRE_E2E"):
            pytest.fail(msg)
        pytest.skip(msg)
    return kubeconfig or ""


@pytest.fixture(scope="session")
def crds(cluster: str) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(ROOT / "crds"))


def start_operator(log_path: Path, **env: str) -> subprocess.Popen[bytes]:
    """The operator as a real process, logging to `log_path`; returns once it has started."""
    mark = b"modelhub operator started"
    seen = log_path.read_bytes().count(mark) if log_path.exists() else 0
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelhub", "run", "--liveness", ""],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, **env},
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if log_path.read_bytes().count(mark) >= seen + 1:
            return proc  # (it may already have died since, e.g. at a crash test's failpoint)
        if proc.poll() is not None:
            raise AssertionError(f"operator exited {proc.returncode}: {log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"operator did not start in 60s: {log_path.read_text()[-3000:]}")


def stop_operator(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def operator(crds: None, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Path]:
    """The operator as a real process for one test module (MODELHUB_OPERATOR=external: one you run yourself)."""
    if os.environ.get("MODELHUB_OPERATOR") == "external":
        yield Path("/dev/null")
        return
    log_dir = Path(os.environ.get("MODELHUB_LOG_DIR") or tmp_path_factory.mktemp("operator"))
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"operator-{request.module.__name__.rsplit('.', 1)[-1]}.log"
    proc = start_operator(log_path)
    try:
        yield log_path
    finally:
        stop_operator(proc)
        print(f"\noperator log: {log_path}")


@pytest.fixture
def namespace(cluster: str) -> Iterator[str]:
    ns = unique("e2e")
    kubectl("create", "namespace", ns)
    yield ns
    kubectl("delete", "namespace", ns, "--wait=false", check=False)
