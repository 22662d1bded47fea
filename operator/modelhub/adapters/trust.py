"""Reading what verification needs from the cluster and the artifact stores: keyrings and signature bundles."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from modelhub.adapters import stores
from modelhub.domain.signing import Reason, SignatureError, key_fingerprint


class ConfigMapReader(Protocol):
    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None: ...


@dataclass
class Keyring:
    keys: dict[str, bytes] = field(default_factory=dict)  # "<configmap>/<key>" -> PEM
    problems: list[str] = field(default_factory=list)  # missing ConfigMaps or keys, said for humans


def _unusable(pem: bytes) -> str | None:
    """Why a keyring entry cannot be a trusted key (None: it is a usable public key)."""
    try:
        key_fingerprint(pem)
    except SignatureError as exc:
        if exc.reason == Reason.INVALID_KEY:
            return "is not a PEM public key (-----BEGIN PUBLIC KEY-----)"
        return f"is unusable: {exc.message}"
    return None


def load_keyring(kube: ConfigMapReader, namespace: str, trust: dict[str, Any]) -> Keyring:
    """The trusted keys of a Model. Entries that are not usable public keys are left out and named in
    `problems`, so one stray entry (a README, a typo) does not make every other key of the ConfigMap useless."""
    ring = Keyring()
    for entry in trust.get("keys") or []:
        cm_name, only = entry.get("name"), entry.get("key")
        cm = kube.get_configmap(namespace, cm_name)
        if cm is None:
            ring.problems.append(f"keyring ConfigMap {namespace}/{cm_name} not found")
            continue
        data = cm.get("data") or {}
        if only:
            if only not in data:
                ring.problems.append(f"keyring ConfigMap {namespace}/{cm_name} has no key {only!r}")
                continue
            entries = [(only, data[only])]
        elif not data:
            ring.problems.append(f"keyring ConfigMap {namespace}/{cm_name} holds no keys")
            continue
        else:
            entries = sorted(data.items())
        for k, v in entries:
            why = _unusable(v.encode())
            if why:
                ring.problems.append(f"keyring ConfigMap {namespace}/{cm_name} key {k!r} {why}")
            else:
                ring.keys[f"{cm_name}/{k}"] = v.encode()
    return ring


class BundleNotFound(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def load_bundle(kube: ConfigMapReader, namespace: str, artifact: dict[str, Any]) -> tuple[bytes, str]:
    """The signature bundle and where it came from (for messages). Raises BundleNotFound or StoreError."""
    sig = artifact.get("signature") or {}
    ref = sig.get("configMapRef")
    if ref:
        cm = kube.get_configmap(namespace, ref["name"])
        if cm is None:
            raise BundleNotFound(f"signature ConfigMap {namespace}/{ref['name']} not found")
        key = ref.get("key") or stores.DEFAULT_SIGNATURE_NAME
        if key not in cm["data"]:
            raise BundleNotFound(f"signature ConfigMap {namespace}/{ref['name']} has no key {key!r}")
        return cm["data"][key].encode(), f"ConfigMap {namespace}/{ref['name']} key {key}"
    uri = sig.get("uri") or stores.default_signature_uri(artifact["uri"])
    try:
        return stores.fetch_bytes(uri), stores.redact(uri)
    except stores.StoreError as exc:
        if exc.reason == "NotFound":
            raise BundleNotFound(exc.message) from None
        raise
