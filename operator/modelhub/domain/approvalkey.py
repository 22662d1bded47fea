"""The approval key: the HMAC key that seals approval records. Pure checks; the kube adapter applies them.

A key shorter than :data:`MIN_BYTES` (an empty Secret, a typo, a password) would make sealed approvals
guessable, so it is refused with :class:`ApprovalKeyError` and the operator does not start; the operator
creates a random key of :data:`GENERATED_BYTES` when the Secret does not exist. Rotation: see README (threat
model): replacing the key invalidates every sealed approval, which must then be given again.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from typing import Any

__all__ = ["GENERATED_BYTES", "MIN_BYTES", "ApprovalKeyError", "check_key", "key_from_secret_data", "new_key"]

MIN_BYTES = 32
GENERATED_BYTES = 32


class ApprovalKeyError(Exception):
    """The approval key Secret exists but holds no usable key; ``message`` says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def new_key() -> bytes:
    return secrets.token_bytes(GENERATED_BYTES)


def check_key(value: bytes, where: str, min_bytes: int = MIN_BYTES) -> bytes:
    """`value` if it is a usable key (at least `min_bytes`), else ApprovalKeyError naming `where`."""
    if len(value) < min_bytes:
        raise ApprovalKeyError(
            f"{where} holds {'an empty key' if not value else f'a key of {len(value)} bytes'}; the approval key "
            f"must be at least {min_bytes} random bytes. Delete the Secret to let the operator create one "
            f"(this withdraws every sealed approval), or write one, e.g. `kubectl create secret generic ... "
            f"--from-literal=hmac=$(openssl rand -hex 32)`"
        )
    return value


def key_from_secret_data(
    data: Mapping[str, Any] | None, key: str, where: str, min_bytes: int = MIN_BYTES
) -> bytes:
    """The key from a Secret's ``data`` (base64 values, as the API returns them), checked."""
    raw = (data or {}).get(key)
    if raw is None:
        raise ApprovalKeyError(
            f"{where} has no key {key!r}; delete the Secret to let the operator create one, or add the key "
            f"(at least {min_bytes} random bytes)"
        )
    try:
        value = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ApprovalKeyError(f"{where} key {key!r} is not valid base64") from None
    return check_key(value, where, min_bytes)
