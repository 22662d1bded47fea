"""The approval key Secret on the real API server: created when missing (32 random bytes), adopted when long
enough, refused with a clear error when empty or short (the operator must not start on it)."""

from __future__ import annotations

import base64
import secrets

import pytest

from modelhub.adapters.kube import Kube
from modelhub.domain.approvalkey import MIN_BYTES, ApprovalKeyError
from tests.e2e.kubehelp import kubectl

NAME = "modelhub-approval-key"


def secret_value(namespace: str) -> bytes:
    out = kubectl("get", "secret", NAME, "-n", namespace, "-o", "jsonpath={.data.hmac}").stdout
    return base64.b64decode(out)


def test_created_when_missing(cluster: str, namespace: str) -> None:
    kube = Kube()
    key = kube.ensure_secret_key(namespace, NAME, "hmac", lambda: secrets.token_bytes(32))
    assert len(key) >= MIN_BYTES and secret_value(namespace) == key
    # a second start adopts it as it is
    assert kube.ensure_secret_key(namespace, NAME, "hmac", lambda: secrets.token_bytes(32)) == key


@pytest.mark.parametrize("value", ["", "short-password", "x" * 31])
def test_short_or_empty_key_is_refused(cluster: str, namespace: str, value: str) -> None:
    kubectl("create", "secret", "generic", NAME, "-n", namespace, f"--from-literal=hmac={value}")
    with pytest.raises(ApprovalKeyError) as excinfo:
        Kube().ensure_secret_key(namespace, NAME, "hmac", lambda: secrets.token_bytes(32))
    assert f"Secret {namespace}/{NAME}" in excinfo.value.message and "at least 32" in excinfo.value.message
    assert secret_value(namespace) == value.encode()  # left as found: the admin decides


def test_secret_without_the_key_is_refused(cluster: str, namespace: str) -> None:
    kubectl("create", "secret", "generic", NAME, "-n", namespace, "--from-literal=other=" + "y" * 40)
    with pytest.raises(ApprovalKeyError, match="has no key 'hmac'"):
        Kube().ensure_secret_key(namespace, NAME, "hmac", lambda: secrets.token_bytes(32))


def test_long_enough_key_is_adopted(cluster: str, namespace: str) -> None:
    value = secrets.token_hex(32)
    kubectl("create", "secret", "generic", NAME, "-n", namespace, f"--from-literal=hmac={value}")
    assert Kube().ensure_secret_key(namespace, NAME, "hmac", lambda: b"unused") == value.encode()
