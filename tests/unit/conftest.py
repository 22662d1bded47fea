"""Shared fixtures for the signing tests (prefixed ``sig_`` so as not to collide with anything else)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelhub.domain import signing


@pytest.fixture(scope="session")
def sig_keys() -> dict[str, tuple[bytes, bytes]]:
    """One real key pair per supported curve: curve -> (private PEM, public PEM)."""
    return {curve: signing.generate_private_key(curve) for curve in ("p256", "p384", "p521")}


@pytest.fixture
def sig_model(tmp_path: Path) -> Path:
    """A small model directory whose names exercise model_signing's path-component ordering."""
    root = tmp_path / "model"
    files = {
        "weights.bin": os.urandom(10_000),
        "config.json": b'{"layers": 2}\n',
        "a.txt": b"a\n",
        "a/b.bin": os.urandom(3_000),
        "a-b": b"dash\n",
        "A": b"upper\n",
        "sub/dir/tokenizer.txt": b"tok " * 100,
        "empty": b"",
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@pytest.fixture
def sig_tamper() -> Callable[..., bytes]:
    """Rebuild a bundle after editing its JSON: ``tamper(bundle, fn)`` where fn mutates the parsed dict."""

    def tamper(bundle: bytes, fn: Callable[[dict[str, Any]], Any]) -> bytes:
        doc = json.loads(bundle)
        fn(doc)
        return json.dumps(doc).encode()

    return tamper


@pytest.fixture
def sig_resign() -> Callable[..., bytes]:
    """Sign an arbitrary statement: ``resign(bundle, private_pem, fn)`` edits the bundle's statement dict with
    fn, re-serialises it and signs it properly, so that only the statement checks can refuse it. Unless
    ``fix_digest=False``, the subject digest is recomputed from the (edited) resources."""

    def resign(
        bundle: bytes,
        private_pem: bytes,
        fn: Callable[[dict[str, Any]], Any] | None = None,
        raw: bytes | None = None,
        fix_digest: bool = True,
    ) -> bytes:
        doc = json.loads(bundle)
        statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
        if fn is not None:
            fn(statement)
        if fix_digest:
            try:
                h = hashlib.sha256()
                for r in statement["predicate"]["resources"]:
                    h.update(bytes.fromhex(r["digest"]))
                statement["subject"][0]["digest"]["sha256"] = h.hexdigest()
            except (KeyError, TypeError, ValueError, IndexError):
                pass
        payload = raw if raw is not None else json.dumps(statement, indent=2).encode()
        return signing.sign_statement(payload, private_pem)

    return resign
