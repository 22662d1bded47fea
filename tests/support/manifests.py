"""Manifest builders shared by unit tests, e2e tests, benchmarks and the demo: real keys, real signed model
directories, and the Model / ModelVersion / Revocation / keyring objects that reference them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelhub import GROUP, VERSION
from modelhub.domain.signing import (
    compute_manifest,
    generate_private_key,
    key_fingerprint,
    sign_model_dir,
    subject_digest,
)

API_VERSION = f"{GROUP}/{VERSION}"


@dataclass
class Key:
    private: bytes
    public: bytes

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self.public)


def new_key(curve: str = "p256") -> Key:
    priv, pub = generate_private_key(curve)
    return Key(priv, pub)


@dataclass
class Signed:
    path: Path
    digest: str
    bundle: bytes

    @property
    def uri(self) -> str:
        return f"file://{self.path}"


def make_model(root: Path, name: str, key: Key, files: dict[str, bytes] | None = None, write_sig: bool = True) -> Signed:
    """A model directory with a few files, signed by `key`; model.sig written beside the files."""
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    for rel, data in (files or {"weights.bin": f"weights of {name}".encode(), "config.json": b"{}"}).items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(data)
    digest = subject_digest(compute_manifest(path))
    bundle = sign_model_dir(path, key.private)
    if write_sig:
        (path / "model.sig").write_bytes(bundle)
    return Signed(path, digest, bundle)


def keyring_manifest(name: str, keys: dict[str, Key], namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
            "data": {k: v.public.decode() for k, v in keys.items()}}


def bundle_configmap(name: str, bundle: bytes, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"model.sig": bundle.decode()}}


def model_manifest(name: str, keyrings: list[str], *, stable: str | None = None, require_approval: bool = False,
                   accelerator: dict[str, Any] | None = None, replicas: int = 1, namespace: str | None = None,
                   **promotion: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "card": {"description": f"{name} model", "owner": "e2e"},
        "trust": {"keys": [{"name": k} for k in keyrings], "requireApproval": require_approval},
        "serving": {"runtime": {"image": "ghcr.io/example/serve:1.0", "port": 8080},
                    "accelerator": accelerator or {"kind": "cpu"}, "replicas": replicas},
    }
    if stable or promotion:
        spec["promotion"] = {**({"stable": stable} if stable else {}), **promotion}
    meta: dict[str, Any] = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": API_VERSION, "kind": "Model", "metadata": meta, "spec": spec}


def version_manifest(name: str, model: str, version: str, signed: Signed, *, namespace: str | None = None,
                     signature: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    artifact: dict[str, Any] = {"uri": signed.uri, "digest": signed.digest}
    if signature:
        artifact["signature"] = signature
    meta: dict[str, Any] = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": API_VERSION, "kind": "ModelVersion", "metadata": meta,
            "spec": {"model": model, "version": version, "artifact": artifact, **extra}}


def revocation_manifest(name: str, reason: str = "test", **match: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "Revocation",
            "metadata": {"name": name, "creationTimestamp": "2026-12-01T12:00:00Z"},
            "spec": {"reason": reason, "match": match}}
