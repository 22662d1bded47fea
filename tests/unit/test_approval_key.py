"""The approval key: at least 32 bytes, or a clear refusal the startup can report."""

from __future__ import annotations

import base64

import pytest

from modelhub.domain.approvalkey import (
    MIN_BYTES,
    ApprovalKeyError,
    check_key,
    key_from_secret_data,
    new_key,
)


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def test_a_new_key_is_long_enough_and_random() -> None:
    a, b = new_key(), new_key()
    assert len(a) >= MIN_BYTES and a != b
    assert check_key(a, "x") == a


@pytest.mark.parametrize("value", [b"", b"short", b"x" * 31])
def test_short_keys_are_refused(value: bytes) -> None:
    with pytest.raises(ApprovalKeyError) as excinfo:
        key_from_secret_data({"hmac": b64(value)}, "hmac", "Secret modelhub-system/modelhub-approval-key")
    message = excinfo.value.message
    assert "Secret modelhub-system/modelhub-approval-key" in message and "at least 32" in message
    assert ("empty key" in message) if not value else (f"{len(value)} bytes" in message)


def test_a_32_byte_key_is_adopted() -> None:
    key = bytes(range(32))
    assert key_from_secret_data({"hmac": b64(key)}, "hmac", "s") == key


def test_missing_key_and_bad_base64() -> None:
    with pytest.raises(ApprovalKeyError, match="has no key 'hmac'"):
        key_from_secret_data({"other": b64(b"x" * 40)}, "hmac", "s")
    with pytest.raises(ApprovalKeyError, match="has no key"):
        key_from_secret_data(None, "hmac", "s")
    with pytest.raises(ApprovalKeyError, match="not valid base64"):
        key_from_secret_data({"hmac": "***"}, "hmac", "s")
