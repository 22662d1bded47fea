"""The CA of a tenant's https store: ``spec.artifact.caConfigMapRef`` of a ModelVersion.

A ConfigMap in the ModelVersion's namespace holds, under one key (default ``ca.crt``), the PEM CA certificate(s)
that issued the store's server certificate. Whoever fetches for that ModelVersion over https (the loader in its
pod; the operator for a bundle at an ``https://`` URI) trusts exactly those certificates, *instead of* the system
roots: the field names the store's issuer, and a tenant that wants public roots as well lists them in the same
key. The signature decides what runs; this CA only decides which server is the store.

Pure: the ConfigMap comes in as a dict (what the API returns), the answer is PEM bytes or a
:class:`StoreCAError` with a one-line reason for a condition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelhub.api.modelversion import STORE_CA_KEY
from modelhub.domain import signing
from modelhub.vocab import reasons as R

__all__ = ["MAX_STORE_CA_BYTES", "STORE_CA_KEY", "StoreCARef", "StoreCAError", "ca_pem_from_configmap",
           "check_ca_pem", "store_ca_ref"]

#: At most this many bytes of PEM (a bundle of a few hundred roots fits; a tenant's ConfigMap is hostile).
MAX_STORE_CA_BYTES = 256 * 1024


class StoreCAError(ValueError):
    """The store CA cannot be used; ``reason`` is CamelCase, ``message`` one line that names the ConfigMap."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class StoreCARef:
    name: str
    key: str = STORE_CA_KEY


def store_ca_ref(artifact: Mapping[str, Any] | None) -> StoreCARef | None:
    """The ConfigMap and key that ``spec.artifact`` (a dict with camelCase keys) names, or None."""
    ref = (artifact or {}).get("caConfigMapRef") or {}
    if not isinstance(ref, Mapping) or not ref.get("name"):
        return None
    return StoreCARef(str(ref["name"]), str(ref.get("key") or STORE_CA_KEY))


def check_ca_pem(data: bytes | str, what: str) -> bytes:
    """`data` if it is at most :data:`MAX_STORE_CA_BYTES` of PEM holding at least one parseable certificate."""
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_STORE_CA_BYTES:
        raise StoreCAError(signing.Reason.INVALID_CERTIFICATE, f"{what} is {len(raw)} bytes, more than the {MAX_STORE_CA_BYTES} allowed")
    try:
        signing.parse_pem_certificates(raw, what)
    except signing.SignatureError as exc:
        raise StoreCAError(exc.reason, exc.message) from None
    return raw


def ca_pem_from_configmap(configmap: Mapping[str, Any] | None, ref: StoreCARef, namespace: str = "") -> bytes:
    """The PEM bytes of `ref` in `configmap` (the ConfigMap object as the API returns it, or None when it does not
    exist). ``data`` and ``binaryData`` are both read (kubectl puts non-UTF-8 files in the latter)."""
    where = f"ConfigMap {namespace + '/' if namespace else ''}{ref.name}"
    if configmap is None:
        raise StoreCAError(R.STORE_CA_NOT_FOUND, f"{where} (spec.artifact.caConfigMapRef) does not exist")
    data = configmap.get("data") or {}
    binary = configmap.get("binaryData") or {}
    if ref.key in data:
        value: bytes | str = data[ref.key]
    elif ref.key in binary:
        import base64
        import binascii

        try:
            value = base64.b64decode(binary[ref.key], validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise StoreCAError(signing.Reason.INVALID_CERTIFICATE, f"{where} key {ref.key} is not base64") from None
    else:
        raise StoreCAError(R.STORE_CA_NOT_FOUND, f"{where} has no key {ref.key} (spec.artifact.caConfigMapRef)")
    if not isinstance(value, str | bytes):
        raise StoreCAError(signing.Reason.INVALID_CERTIFICATE, f"{where} key {ref.key} is not text")
    return check_ca_pem(value, f"{where} key {ref.key}")
