"""Reading what verification needs from the cluster and the artifact stores: keyrings, trusted CA certificates
and signature bundles."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from modelhub.domain.signing import Reason, SignatureError, key_fingerprint, parse_pem_certificates

MAX_CA_ENTRY_BYTES = 256 * 1024  # one ConfigMap value of PEM CA certificates (a chain is a few KiB)
MAX_CA_ENTRIES = 64  # trusted CA entries over all of a Model's ConfigMaps


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


def _entries(kube: ConfigMapReader, namespace: str, entry: dict[str, Any], what: str, noun: str,
             problems: list[str]) -> list[tuple[str, str]] | None:
    """The (key, value) pairs a trust entry names ({name, key?} of a ConfigMap), or None with the reason in
    `problems` (missing ConfigMap, missing key, empty)."""
    cm_name, only = str(entry.get("name") or ""), entry.get("key")
    cm = kube.get_configmap(namespace, cm_name)
    if cm is None:
        problems.append(f"{what} ConfigMap {namespace}/{cm_name} not found")
        return None
    data = cm.get("data") or {}
    if only:
        if only not in data:
            problems.append(f"{what} ConfigMap {namespace}/{cm_name} has no key {only!r}")
            return None
        return [(only, data[only])]
    if not data:
        problems.append(f"{what} ConfigMap {namespace}/{cm_name} holds no {noun}")
        return None
    return sorted(data.items())


def load_keyring(kube: ConfigMapReader, namespace: str, trust: dict[str, Any]) -> Keyring:
    """The trusted keys of a Model. Entries that are not usable public keys are left out and named in
    `problems`, so one stray entry (a README, a typo) does not make every other key of the ConfigMap useless."""
    ring = Keyring()
    for entry in trust.get("keys") or []:
        cm_name = entry.get("name")
        entries = _entries(kube, namespace, entry, "keyring", "keys", ring.problems)
        if entries is None:
            continue
        for k, v in entries:
            why = _unusable(v.encode())
            if why:
                ring.problems.append(f"keyring ConfigMap {namespace}/{cm_name} key {k!r} {why}")
            else:
                ring.keys[f"{cm_name}/{k}"] = v.encode()
    return ring


@dataclass
class TrustRoots:
    """Everything a Model trusts: what :func:`modelhub.domain.signing.verify_bundle` takes as ``trusted_keys``
    and ``trusted_cas``, and what could not be used (said for humans)."""

    keys: dict[str, bytes] = field(default_factory=dict)  # "<configmap>/<key>" -> PEM public key
    cas: dict[str, bytes] = field(default_factory=dict)  # "<configmap>/<key>" -> PEM CA certificate(s)
    problems: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.keys or self.cas)

    def none_usable(self, model: str) -> str:
        """The message when nothing is trusted."""
        why = "; ".join(self.problems) or f"Model {model} lists no keys nor certificateAuthorities in spec.trust"
        return f"no trusted key or CA certificate to verify with: {why}"


def _ca_unusable(pem: str) -> str | None:
    if len(pem) > MAX_CA_ENTRY_BYTES:
        return f"is {len(pem)} bytes, more than the {MAX_CA_ENTRY_BYTES} allowed for CA certificates"
    try:
        parse_pem_certificates(pem, "the entry")
    except SignatureError as exc:
        return f"is unusable: {exc.message}"
    return None


def load_certificate_authorities(kube: ConfigMapReader, namespace: str, trust: dict[str, Any]) -> TrustRoots:
    """The trusted CA certificates of a Model (``spec.trust.certificateAuthorities``), in ``cas``. As with
    keyrings, an unusable entry is left out and named in ``problems``; each entry is bounded in size, and the
    number of entries too."""
    roots = TrustRoots()
    for entry in trust.get("certificateAuthorities") or []:
        cm_name = entry.get("name")
        entries = _entries(kube, namespace, entry, "CA", "certificates", roots.problems)
        if entries is None:
            continue
        for k, v in entries:
            if len(roots.cas) >= MAX_CA_ENTRIES:
                roots.problems.append(f"more than {MAX_CA_ENTRIES} CA entries: CA ConfigMap {namespace}/{cm_name} key {k!r} and later ones are left out")
                return roots
            why = _ca_unusable(v) if isinstance(v, str) else "is not text"
            if why:
                roots.problems.append(f"CA ConfigMap {namespace}/{cm_name} key {k!r} {why}")
            else:
                roots.cas[f"{cm_name}/{k}"] = v.encode()
    return roots


def load_trust(kube: ConfigMapReader, namespace: str, trust: dict[str, Any]) -> TrustRoots:
    """Keys and CA certificates a Model trusts (``spec.trust``), read from ConfigMaps of its namespace."""
    ring = load_keyring(kube, namespace, trust)
    roots = load_certificate_authorities(kube, namespace, trust)
    return TrustRoots(keys=ring.keys, cas=roots.cas, problems=ring.problems + roots.problems)
