"""e2e fixtures: a real API server (KUBECONFIG), our CRDs installed, and the operator as a real process."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.kubehelp import kubectl, unique
from tests.support import operator as support_operator
from tests.support.kube import install_crds


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
    install_crds()


def start_operator(log_path: Path, **env: str) -> subprocess.Popen[bytes]:
    """The operator as a real process, logging to `log_path`; returns once its health endpoint answers (or, with
    a failpoint set, once it has died at it)."""
    return support_operator.start_operator(log_path, **env).proc


def stop_operator(proc: subprocess.Popen[bytes]) -> None:
    support_operator.Operator(proc, Path(), "", 0, 0).stop()


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
