"""OMS v1.0 signatures: Sigstore bundle v0.3 + DSSE + in-toto v1 statement, key-based or certificate-based
(model_signing 1.1.x)."""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelhub.domain.signing import _certs
from modelhub.domain.signing import _manifest as mf
from modelhub.domain.signing._certs import VerifiedCertificate
from modelhub.domain.signing._errors import Reason, SignatureError
from modelhub.domain.signing._keys import PrivateKey, PublicKey, load_private_key, load_public_key
from modelhub.domain.signing._manifest import Resource

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
PREDICATE_TYPE_PRE_1_0 = "https://model_signing/Digests/v0.1"

MAX_BUNDLE_BYTES = 256 * 1024 * 1024
MAX_RESOURCES = 1_000_000
MAX_IGNORE_PATHS = 10_000
MAX_SIGNATURE_BYTES = 512  # a DER ECDSA-P521 signature is at most 139 bytes
MAX_SHARD_SIZE = 2**53  # shard_size travels as a JSON (protobuf) double


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: 'DSSEv1 <len type> <type> <len body> <body>'."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d " % (len(t), t, len(payload)) + payload


# ------------------------------------------------------------------------------------------ the result


@dataclass(frozen=True)
class VerifiedSignature:
    """What a bundle whose signature verified says about the model (nothing here has touched the files)."""

    subject_digest: str  # "sha256:<hex>"
    subject_name: str
    key_name: str  # the entry of trusted_keys that verified it; for a certificate, of trusted_cas that anchored it
    key_fingerprint: str  # the signing key's (for a certificate: its public key's) fingerprint
    hash_algorithm: str  # "sha256" | "blake2b"
    serialization: str  # "files" | "shards"
    shard_size: int | None
    allow_symlinks: bool
    ignore_paths: tuple[str, ...]
    resources: tuple[Resource, ...]
    certificate: VerifiedCertificate | None = None  # set for the certificate method
    _files: tuple[tuple[str, int | None], ...] = field(default=(), repr=False, compare=False)

    @property
    def signer(self) -> str:
        """Who signed, in words (for messages)."""
        if self.certificate is None:
            return f"{self.key_name} (key fingerprint {self.key_fingerprint})"
        c = self.certificate
        sans = f" [{', '.join(c.sans[:3])}{', …' if len(c.sans) > 3 else ''}]" if c.sans else ""
        return (
            f"certificate {c.subject or '(empty subject)'}{sans} (fingerprint {c.fingerprint}) under trusted CA "
            f"{c.authority_name}"
        )

    @property
    def file_count(self) -> int:
        """Distinct files."""
        return len(self._files)

    @property
    def files(self) -> tuple[str, ...]:
        """Distinct file paths, in manifest order."""
        return tuple(name for name, _ in self._files)

    @property
    def file_sizes(self) -> dict[str, int | None]:
        """Each file's size when the manifest implies it (shards: the last shard's end), else None."""
        return dict(self._files)

    @property
    def total_size(self) -> int | None:
        """Sum of the file sizes for a sharded manifest (None for per-file manifests, which do not say)."""
        if self.serialization != "shards":
            return None
        return sum(size or 0 for _, size in self._files)


# ------------------------------------------------------------------------------------- strict parsing


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(f"duplicate key {k!r}")
        out[k] = v
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _loads(data: bytes, what: str) -> Any:
    try:
        text = data.decode("utf-8")
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise SignatureError(Reason.MALFORMED_BUNDLE, f"{what} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise SignatureError(Reason.MALFORMED_BUNDLE, f"{what} is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, duplicate keys, NaN, huge integers
        raise SignatureError(Reason.MALFORMED_BUNDLE, f"{what} is not valid JSON: {exc}") from None


def _type_name(v: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(v), "a number" if isinstance(v, int | float) else type(v).__name__
    )


def _obj(v: Any, path: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise SignatureError(Reason.MALFORMED_BUNDLE, f"{path} must be an object, got {_type_name(v)}")
    return v


def _list(v: Any, path: str) -> list[Any]:
    if not isinstance(v, list):
        raise SignatureError(Reason.MALFORMED_BUNDLE, f"{path} must be an array, got {_type_name(v)}")
    return v


def _str(v: Any, path: str) -> str:
    if not isinstance(v, str):
        raise SignatureError(Reason.MALFORMED_BUNDLE, f"{path} must be a string, got {_type_name(v)}")
    return v


def _fields(d: dict[str, Any], path: str, required: Iterable[str], optional: Iterable[str] = ()) -> None:
    required = tuple(required)
    allowed = set(required) | set(optional)
    for k in d:
        if k not in allowed:
            raise SignatureError(
                Reason.MALFORMED_BUNDLE, f"unknown field {path}.{k} (expected only {', '.join(sorted(allowed))})"
            )
    for k in required:
        if k not in d:
            raise SignatureError(Reason.MALFORMED_BUNDLE, f"missing field {path}.{k}")


def _expect(value: Any, expected: str, path: str) -> None:
    if value != expected:
        shown = repr(value)
        if len(shown) > 200:
            shown = shown[:200] + "..."
        raise SignatureError(Reason.MALFORMED_BUNDLE, f"{path} is {shown}, expected {expected!r}")


def _b64(v: Any, path: str) -> bytes:
    s = _str(v, path)
    try:
        raw = base64.b64decode(s.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise SignatureError(Reason.MALFORMED_BUNDLE, f"{path} is not standard padded base64 ({exc})") from None
    if base64.b64encode(raw).decode("ascii") != s:
        raise SignatureError(
            Reason.MALFORMED_BUNDLE, f"{path} is not canonical base64 (non-zero padding bits or misplaced padding)"
        )
    return raw


def _as_bytes(bundle: Any) -> bytes:
    if isinstance(bundle, str):
        return bundle.encode("utf-8")
    if isinstance(bundle, bytes | bytearray | memoryview):
        return bytes(bundle)
    raise SignatureError(Reason.MALFORMED_BUNDLE, f"the bundle must be bytes, got {type(bundle).__name__}")


# ------------------------------------------------------------------------------------------ the bundle


@dataclass(frozen=True)
class _Envelope:
    payload: bytes
    payload_type: str
    signature: bytes
    hint: str
    certificates: tuple[bytes, ...] | None = None  # the certificate method: DER, leaf first


def _parse_bundle(data: bytes) -> _Envelope:
    if len(data) > MAX_BUNDLE_BYTES:
        raise SignatureError(
            Reason.MALFORMED_BUNDLE, f"the bundle is {len(data)} bytes, more than the {MAX_BUNDLE_BYTES} allowed"
        )
    top = _obj(_loads(data, "the bundle"), "the bundle")
    if "messageSignature" in top:
        raise SignatureError(
            Reason.UNSUPPORTED_ALGORITHM,
            "the bundle holds a messageSignature; OMS signatures are DSSE envelopes (dsseEnvelope)",
        )
    _fields(top, "bundle", ("mediaType", "verificationMaterial", "dsseEnvelope"))
    _expect(_str(top["mediaType"], "bundle.mediaType"), BUNDLE_MEDIA_TYPE, "bundle.mediaType")

    vm = _obj(top["verificationMaterial"], "bundle.verificationMaterial")
    if "certificate" in vm:
        raise SignatureError(
            Reason.UNSUPPORTED_ALGORITHM,
            "the bundle carries a single verificationMaterial.certificate (Sigstore keyless); OMS certificate "
            "signatures carry verificationMaterial.x509CertificateChain, and key signatures publicKey",
        )
    if "publicKey" in vm and "x509CertificateChain" in vm:
        raise SignatureError(
            Reason.MALFORMED_BUNDLE,
            "bundle.verificationMaterial holds both publicKey and x509CertificateChain; exactly one expected",
        )
    method = "certificate" if "x509CertificateChain" in vm else "key"
    _fields(vm, "bundle.verificationMaterial", ("x509CertificateChain" if method == "certificate" else "publicKey",),
            ("tlogEntries",))
    if "tlogEntries" in vm and _list(vm["tlogEntries"], "bundle.verificationMaterial.tlogEntries"):
        raise SignatureError(
            Reason.MALFORMED_BUNDLE,
            f"bundle.verificationMaterial.tlogEntries is not empty; {method} signatures carry no transparency-log "
            "entry",
        )
    hint = ""
    certificates = None
    if method == "certificate":
        certificates = _parse_chain(vm["x509CertificateChain"])
    else:
        hint = _parse_public_key(vm["publicKey"])
    payload_type, payload, raw_sig = _parse_envelope(top["dsseEnvelope"])
    return _Envelope(payload, payload_type, raw_sig, hint, certificates)


def _parse_chain(chain: Any) -> tuple[bytes, ...]:
    path = "bundle.verificationMaterial.x509CertificateChain"
    chain = _obj(chain, path)
    _fields(chain, path, ("certificates",))
    certs = _list(chain["certificates"], f"{path}.certificates")
    if not certs:
        raise SignatureError(Reason.MALFORMED_BUNDLE, f"{path}.certificates is empty; the signing certificate comes first")
    if len(certs) > _certs.MAX_CHAIN_CERTIFICATES:
        raise SignatureError(
            Reason.INVALID_CERTIFICATE_CHAIN,
            f"{path}.certificates holds {len(certs)} certificates, more than the {_certs.MAX_CHAIN_CERTIFICATES} allowed",
        )
    out = []
    for i, c in enumerate(certs):
        c = _obj(c, f"{path}.certificates[{i}]")
        _fields(c, f"{path}.certificates[{i}]", ("rawBytes",))
        raw = c["rawBytes"]
        if isinstance(raw, str) and len(raw) > 2 * _certs.MAX_CERTIFICATE_BYTES:
            raise SignatureError(
                Reason.INVALID_CERTIFICATE_CHAIN,
                f"{path}.certificates[{i}].rawBytes is {len(raw)} characters, more than a certificate of at most "
                f"{_certs.MAX_CERTIFICATE_BYTES} bytes",
            )
        out.append(_b64(raw, f"{path}.certificates[{i}].rawBytes"))
    return tuple(out)


def _parse_public_key(pk: Any) -> str:
    pk = _obj(pk, "bundle.verificationMaterial.publicKey")
    # rawBytes/keyDetails: written by early model_signing releases (and dropped by its reader); never trusted.
    _fields(pk, "bundle.verificationMaterial.publicKey", (), ("hint", "rawBytes", "keyDetails"))
    hint = pk.get("hint")
    if hint is None:
        hint = ""
    hint = _str(hint, "bundle.verificationMaterial.publicKey.hint")
    if hint and not mf.is_lower_hex(hint, 64):
        raise SignatureError(
            Reason.MALFORMED_BUNDLE,
            f"bundle.verificationMaterial.publicKey.hint must be 64 lowercase hex digits, got {hint[:80]!r}",
        )
    for k in ("rawBytes", "keyDetails"):
        if k in pk:
            _str(pk[k], f"bundle.verificationMaterial.publicKey.{k}")
    return hint


def _parse_envelope(env: Any) -> tuple[str, bytes, bytes]:
    env = _obj(env, "bundle.dsseEnvelope")
    _fields(env, "bundle.dsseEnvelope", ("payload", "payloadType", "signatures"))
    payload_type = _str(env["payloadType"], "bundle.dsseEnvelope.payloadType")
    _expect(payload_type, PAYLOAD_TYPE, "bundle.dsseEnvelope.payloadType")
    payload = _b64(env["payload"], "bundle.dsseEnvelope.payload")
    sigs = _list(env["signatures"], "bundle.dsseEnvelope.signatures")
    if len(sigs) != 1:
        raise SignatureError(
            Reason.MALFORMED_BUNDLE, f"bundle.dsseEnvelope.signatures holds {len(sigs)} signatures; exactly one expected"
        )
    sig = _obj(sigs[0], "bundle.dsseEnvelope.signatures[0]")
    _fields(sig, "bundle.dsseEnvelope.signatures[0]", ("sig",), ("keyid",))
    if "keyid" in sig:
        keyid = _str(sig["keyid"], "bundle.dsseEnvelope.signatures[0].keyid")
        if len(keyid) > 1024:
            raise SignatureError(Reason.MALFORMED_BUNDLE, "bundle.dsseEnvelope.signatures[0].keyid is too long")
    raw_sig = _b64(sig["sig"], "bundle.dsseEnvelope.signatures[0].sig")
    if not raw_sig or len(raw_sig) > MAX_SIGNATURE_BYTES:
        raise SignatureError(
            Reason.MALFORMED_BUNDLE,
            f"bundle.dsseEnvelope.signatures[0].sig is {len(raw_sig)} bytes, not an ECDSA signature",
        )
    return payload_type, payload, raw_sig


def _trusted(trusted_keys: Mapping[str, bytes]) -> dict[str, PublicKey]:
    if not isinstance(trusted_keys, Mapping):
        raise SignatureError(Reason.INVALID_KEY, "trusted_keys must map key names to PEM public keys")
    keys: dict[str, PublicKey] = {}
    for name, pem in trusted_keys.items():
        keys[str(name)] = load_public_key(pem, f"trusted key {name!r}")
    if not keys:
        raise SignatureError(Reason.UNTRUSTED_KEY, "no trusted public key was given to verify the signature with")
    return keys


def _check_signature(envelope: _Envelope, trusted_keys: Mapping[str, bytes]) -> tuple[str, PublicKey]:
    keys = _trusted(trusted_keys)
    message = pae(envelope.payload_type, envelope.payload)
    hinted = [(n, k) for n, k in keys.items() if envelope.hint and k.fingerprint == envelope.hint]
    others = [(n, k) for n, k in keys.items() if not (envelope.hint and k.fingerprint == envelope.hint)]
    for name, key in hinted + others:
        if key.verifies(envelope.signature, message):
            return name, key
    if hinted:
        names = ", ".join(repr(n) for n, _ in hinted)
        raise SignatureError(
            Reason.BAD_SIGNATURE,
            f"the signature does not verify with trusted key {names} (fingerprint {envelope.hint}, as the bundle's "
            "hint says): the payload or the signature was altered",
        )
    who = f"a key with fingerprint {envelope.hint}" if envelope.hint else "an unnamed key (the bundle has no hint)"
    trusted = ", ".join(repr(n) for n in keys)
    none = f"the trusted key {trusted} does not" if len(keys) == 1 else f"none of the {len(keys)} trusted keys ({trusted})"
    raise SignatureError(Reason.UNTRUSTED_KEY, f"the bundle is signed by {who}, and {none} verify it")


def _check_certificate(
    envelope: _Envelope, trusted_cas: Mapping[str, bytes | str] | None, keys_given: bool
) -> tuple[VerifiedCertificate, PublicKey]:
    assert envelope.certificates is not None
    certs = _certs.load_chain(list(envelope.certificates))
    anchors = _certs.load_trusted_cas(trusted_cas)
    if not anchors and keys_given:
        raise SignatureError(
            Reason.UNTRUSTED_CERTIFICATE,
            "the bundle is signed with a certificate, but only public keys are trusted (they verify key signatures "
            "only); trust the signer's CA certificate",
        )
    verified, key = _certs.verify_chain(certs, anchors)
    if not key.verifies(envelope.signature, pae(envelope.payload_type, envelope.payload)):
        raise SignatureError(
            Reason.BAD_SIGNATURE,
            f"the signature does not verify with the key of the signing certificate {verified.subject!r} "
            f"(fingerprint {verified.fingerprint}), which chains to trusted CA {verified.authority_name!r}: the "
            "payload or the signature was altered",
        )
    return verified, key


# --------------------------------------------------------------------------------------- the statement


def _shard_size(v: Any) -> int:
    # model_signing writes it through a protobuf Struct, i.e. as a double: 1000000000.0
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise SignatureError(
            Reason.MALFORMED_BUNDLE, f"predicate.serialization.shard_size must be a number, got {_type_name(v)}"
        )
    if isinstance(v, float) and not v.is_integer():
        raise SignatureError(Reason.MALFORMED_BUNDLE, f"predicate.serialization.shard_size {v!r} is not an integer")
    n = int(v)
    if n < 1 or n > MAX_SHARD_SIZE:
        raise SignatureError(
            Reason.MALFORMED_BUNDLE, f"predicate.serialization.shard_size {n} is out of range (1..{MAX_SHARD_SIZE})"
        )
    return n


def _decimal(s: str) -> int | None:
    if not s or not s.isascii() or not s.isdigit() or (len(s) > 1 and s[0] == "0") or len(s) > 20:
        return None
    return int(s)


_RESOURCE_KEYS = {"name": None, "algorithm": None, "digest": None}.keys()


def _resource_error(i: int, r: Any, expected_algorithm: str, hex_len: int, hash_type: str) -> None:
    """Explain why predicate.resources[i] is refused (the slow, precise path); raises."""
    path = f"predicate.resources[{i}]"
    r = _obj(r, path)
    _fields(r, path, ("name", "algorithm", "digest"))
    name = _str(r["name"], f"{path}.name")
    algorithm = _str(r["algorithm"], f"{path}.algorithm")
    digest = _str(r["digest"], f"{path}.digest")
    if algorithm != expected_algorithm:
        raise SignatureError(
            Reason.MALFORMED_BUNDLE,
            f"{path}.algorithm is {algorithm[:80]!r} but the serialization says {expected_algorithm!r}",
        )
    if not mf.is_lower_hex(digest, hex_len):
        raise SignatureError(
            Reason.MALFORMED_BUNDLE,
            f"{path}.digest must be {hex_len} lowercase hex digits ({hash_type}), got {digest[:140]!r}",
        )
    raise SignatureError(Reason.MALFORMED_BUNDLE, f"{path} ({name[:200]!r}) is malformed")


@dataclass(frozen=True)
class _Statement:
    subject_name: str
    subject_digest: str  # hex
    hash_algorithm: str
    serialization: str
    shard_size: int | None
    allow_symlinks: bool
    ignore_paths: tuple[str, ...]
    resources: tuple[Resource, ...]
    files: tuple[tuple[str, int | None], ...]


def _parse_statement(payload: bytes) -> _Statement:
    st = _obj(_loads(payload, "the signed statement"), "the statement")
    _fields(st, "statement", ("_type", "subject", "predicateType", "predicate"))
    _expect(_str(st["_type"], "statement._type"), STATEMENT_TYPE, "statement._type")
    predicate_type = _str(st["predicateType"], "statement.predicateType")
    if predicate_type == PREDICATE_TYPE_PRE_1_0:
        raise SignatureError(
            Reason.MALFORMED_BUNDLE,
            f"statement.predicateType is the pre-1.0 {PREDICATE_TYPE_PRE_1_0!r}; re-sign the model with "
            f"model_signing >= 1.0 or modelhub (predicate {PREDICATE_TYPE!r})",
        )
    _expect(predicate_type, PREDICATE_TYPE, "statement.predicateType")

    subjects = _list(st["subject"], "statement.subject")
    if len(subjects) != 1:
        raise SignatureError(
            Reason.MALFORMED_BUNDLE, f"statement.subject holds {len(subjects)} subjects; exactly one expected"
        )
    subject = _obj(subjects[0], "statement.subject[0]")
    _fields(subject, "statement.subject[0]", ("digest",), ("name",))
    subject_name = _str(subject.get("name", ""), "statement.subject[0].name")
    if len(subject_name) > mf.MAX_NAME_LENGTH:
        raise SignatureError(Reason.MALFORMED_BUNDLE, "statement.subject[0].name is too long")
    sdigest = _obj(subject["digest"], "statement.subject[0].digest")
    _fields(sdigest, "statement.subject[0].digest", ("sha256",))
    subject_hex = _str(sdigest["sha256"], "statement.subject[0].digest.sha256")
    if not mf.is_lower_hex(subject_hex, 64):
        raise SignatureError(
            Reason.MALFORMED_BUNDLE, f"statement.subject[0].digest.sha256 must be 64 lowercase hex digits, got {subject_hex[:80]!r}"
        )

    # OMS v1.0: a verifier ignores predicate fields it does not know (room for model cards and the like).
    predicate = _obj(st["predicate"], "statement.predicate")
    for k in ("serialization", "resources"):
        if k not in predicate:
            raise SignatureError(Reason.MALFORMED_BUNDLE, f"missing field predicate.{k}")
    ser = _obj(predicate["serialization"], "predicate.serialization")
    method = _str(ser.get("method"), "predicate.serialization.method") if "method" in ser else None
    if method == "files":
        _fields(ser, "predicate.serialization", ("method", "hash_type", "allow_symlinks"), ("ignore_paths",))
        shard_size = None
    elif method == "shards":
        _fields(ser, "predicate.serialization", ("method", "hash_type", "allow_symlinks", "shard_size"), ("ignore_paths",))
        shard_size = _shard_size(ser["shard_size"])
    elif method is None:
        raise SignatureError(Reason.MALFORMED_BUNDLE, "missing field predicate.serialization.method")
    else:
        raise SignatureError(
            Reason.UNSUPPORTED_ALGORITHM,
            f"predicate.serialization.method {method!r} is not supported (files or shards)",
        )
    hash_type = _str(ser["hash_type"], "predicate.serialization.hash_type")
    if hash_type not in mf.HASH_ALGORITHMS:
        raise SignatureError(
            Reason.UNSUPPORTED_ALGORITHM,
            f"predicate.serialization.hash_type {hash_type!r} is not supported (sha256 or blake2b)",
        )
    allow_symlinks = ser["allow_symlinks"]
    if not isinstance(allow_symlinks, bool):
        raise SignatureError(
            Reason.MALFORMED_BUNDLE,
            f"predicate.serialization.allow_symlinks must be a boolean, got {_type_name(allow_symlinks)}",
        )
    ignore: list[str] = []
    if "ignore_paths" in ser:
        raw_ignore = _list(ser["ignore_paths"], "predicate.serialization.ignore_paths")
        if len(raw_ignore) > MAX_IGNORE_PATHS:
            raise SignatureError(
                Reason.MALFORMED_BUNDLE, f"predicate.serialization.ignore_paths lists {len(raw_ignore)} paths (at most {MAX_IGNORE_PATHS})"
            )
        seen_ignore: set[str] = set()
        for i, p in enumerate(raw_ignore):
            mf.check_relative_path(p, f"predicate.serialization.ignore_paths[{i}]")
            if p not in seen_ignore:
                seen_ignore.add(p)
                ignore.append(p)
    ignore_set = mf.IgnoreSet(ignore)

    raw_resources = _list(predicate["resources"], "predicate.resources")
    if not raw_resources:
        raise SignatureError(Reason.EMPTY_MODEL, "the signature covers no file (predicate.resources is empty)")
    if len(raw_resources) > MAX_RESOURCES:
        raise SignatureError(
            Reason.MALFORMED_BUNDLE, f"predicate.resources lists {len(raw_resources)} resources (at most {MAX_RESOURCES})"
        )
    expected_algorithm = hash_type if shard_size is None else mf.shard_algorithm(hash_type, shard_size)
    hex_len = mf.DIGEST_HEX_LENGTH[hash_type]
    hex_ok = mf.hex_matcher(hex_len)
    safe = mf.is_safe_relative_path
    resources: list[Resource] = []
    seen: set[str] = set()
    files: dict[str, int | None] = {}
    shards: dict[str, list[tuple[int, int]]] = {}
    for i, r in enumerate(raw_resources):
        # Fast path for well-formed entries; anything else goes through _resource_error for a precise message.
        if type(r) is not dict or r.keys() != _RESOURCE_KEYS:
            _resource_error(i, r, expected_algorithm, hex_len, hash_type)
        name, algorithm, digest = r["name"], r["algorithm"], r["digest"]
        if (type(name) is not str or algorithm != expected_algorithm or type(digest) is not str
                or hex_ok(digest) is None):
            _resource_error(i, r, expected_algorithm, hex_len, hash_type)
        if name in seen:
            raise SignatureError(Reason.MALFORMED_BUNDLE, f"predicate.resources[{i}].name {name[:200]!r} is listed twice")
        seen.add(name)
        if shard_size is None:
            file_name = name if safe(name) else mf.check_relative_path(name, f"predicate.resources[{i}].name")
            files[file_name] = None
        else:
            parts = name.rsplit(":", 2)
            start = _decimal(parts[1]) if len(parts) == 3 else None
            end = _decimal(parts[2]) if len(parts) == 3 else None
            if start is None or end is None:
                raise SignatureError(
                    Reason.MALFORMED_BUNDLE,
                    f"predicate.resources[{i}].name {name[:200]!r} is not a shard name 'path:start:end'",
                )
            file_name = parts[0]
            if not safe(file_name):
                mf.check_relative_path(file_name, f"predicate.resources[{i}].name")
            if end <= start or end - start > shard_size:
                raise SignatureError(
                    Reason.MALFORMED_BUNDLE,
                    f"predicate.resources[{i}].name {name[:200]!r} is not a shard of at most {shard_size} bytes",
                )
            shards.setdefault(file_name, []).append((start, end))
            files.setdefault(file_name, None)
        if ignore_set and ignore_set.matches(file_name):
            raise SignatureError(
                Reason.MALFORMED_BUNDLE,
                f"predicate.resources[{i}].name {name[:200]!r} lies under one of the signature's ignore_paths",
            )
        resources.append(Resource(name, algorithm, digest))

    for file_name, ranges in shards.items():
        ranges.sort()
        pos = 0
        for idx, (lo, hi) in enumerate(ranges):
            if lo != pos:
                raise SignatureError(
                    Reason.MALFORMED_BUNDLE,
                    f"the shards of '{file_name}' do not tile the file: a shard starts at byte {lo}, expected {pos}",
                )
            if idx < len(ranges) - 1 and hi - lo != shard_size:
                raise SignatureError(
                    Reason.MALFORMED_BUNDLE,
                    f"shard '{file_name}:{lo}:{hi}' is {hi - lo} bytes; only the last shard may be shorter than "
                    f"{shard_size}",
                )
            pos = hi
        files[file_name] = pos

    # A name cannot be both a file and a directory.
    for file_name in files:
        i = file_name.find("/")
        while i != -1:
            if file_name[:i] in files:
                raise SignatureError(
                    Reason.MALFORMED_BUNDLE, f"'{file_name[:i]}' is listed both as a file and as a directory of '{file_name}'"
                )
            i = file_name.find("/", i + 1)

    computed = mf.subject_digest_bytes(bytes.fromhex(r.digest) for r in resources)
    if computed != subject_hex:
        raise SignatureError(
            Reason.DIGEST_MISMATCH,
            f"the subject digest is sha256:{subject_hex} but the {len(resources)} listed resources hash to "
            f"sha256:{computed}",
        )
    return _Statement(
        subject_name=subject_name,
        subject_digest=subject_hex,
        hash_algorithm=hash_type,
        serialization=method,
        shard_size=shard_size,
        allow_symlinks=allow_symlinks,
        ignore_paths=tuple(ignore),
        resources=tuple(resources),
        files=tuple(files.items()),
    )


# ------------------------------------------------------------------------------------------- public API


def verify_bundle(
    bundle: bytes,
    trusted_keys: Mapping[str, bytes] | None,
    *,
    trusted_cas: Mapping[str, bytes | str] | None = None,
) -> VerifiedSignature:
    """Check a bundle's signature against the trusted keys or CAs, and its statement; touch no file.

    A key-signed bundle (verificationMaterial.publicKey) needs one of `trusted_keys` (name -> PEM public key);
    a certificate-signed one (verificationMaterial.x509CertificateChain) needs its chain to lead to one of
    `trusted_cas` (name -> PEM, one or more CA certificates each); see :mod:`._certs` for the rules.
    Strict: unknown fields, wrong media/payload/predicate types, non-canonical base64, duplicate or unsafe
    resource names, an inconsistent subject digest... each raise :class:`SignatureError` with its reason.
    The signature is checked over the exact payload bytes before the payload is even parsed.
    """
    certificate = None
    try:
        envelope = _parse_bundle(_as_bytes(bundle))
        if envelope.certificates is not None:
            certificate, key = _check_certificate(envelope, trusted_cas, bool(trusted_keys))
            key_name = certificate.authority_name
        elif not trusted_keys and trusted_cas:
            raise SignatureError(
                Reason.UNTRUSTED_KEY,
                "the bundle is signed with a bare key, but only CA certificates are trusted (they verify certificate "
                "signatures only); trust the signer's public key",
            )
        else:
            key_name, key = _check_signature(envelope, trusted_keys if trusted_keys is not None else {})
        st = _parse_statement(envelope.payload)
    except SignatureError:
        raise
    except RecursionError:
        raise SignatureError(Reason.MALFORMED_BUNDLE, "the bundle is nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - nothing but SignatureError leaves this module
        raise SignatureError(Reason.MALFORMED_BUNDLE, f"the bundle could not be processed: {type(exc).__name__}: {exc}") from None
    return VerifiedSignature(
        subject_digest=f"sha256:{st.subject_digest}",
        subject_name=st.subject_name,
        key_name=key_name,
        key_fingerprint=key.fingerprint,
        hash_algorithm=st.hash_algorithm,
        serialization=st.serialization,
        shard_size=st.shard_size,
        allow_symlinks=st.allow_symlinks,
        ignore_paths=st.ignore_paths,
        resources=st.resources,
        certificate=certificate,
        _files=st.files,
    )


def _model_name(model_dir: str) -> str:
    name = os.path.basename(os.path.normpath(model_dir))
    if not name or name in (".", ".."):
        name = os.path.basename(os.path.abspath(model_dir))
    return name


def build_statement(model_name: str, resources: tuple[Resource, ...], serialization: dict[str, Any]) -> bytes:
    """The in-toto statement as model_signing lays it out (protobuf JSON: 2-space indent, ASCII)."""
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model_name, "digest": {"sha256": subject_digest(resources).split(":", 1)[1]}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "resources": [{"algorithm": r.algorithm, "digest": r.digest, "name": r.name} for r in resources],
            "serialization": serialization,
        },
    }
    return json.dumps(statement, indent=2, ensure_ascii=True).encode("ascii")


def sign_statement(
    payload: bytes,
    private_key_pem: bytes,
    password: bytes | None = None,
    *,
    signing_certificate: bytes | str | None = None,
    certificate_chain: Iterable[bytes | str] = (),
) -> bytes:
    """Wrap an in-toto statement into a signed DSSE envelope inside a Sigstore bundle v0.3 (JSON bytes).

    With `signing_certificate` (PEM, holding the private key's public half) the bundle uses the certificate
    method: the certificate, then those of `certificate_chain` (PEM files' contents, in order)."""
    key = load_private_key(private_key_pem, password)
    return _sign_with(payload, key, _chain_for(key, signing_certificate, certificate_chain))


def _chain_for(
    key: PrivateKey, signing_certificate: bytes | str | None, certificate_chain: Iterable[bytes | str]
) -> _certs.SigningCertificate | None:
    chain = list(certificate_chain)
    if signing_certificate is None:
        if chain:
            raise SignatureError(
                Reason.INVALID_CERTIFICATE, "a certificate chain was given without the signing certificate"
            )
        return None
    return _certs.signing_chain(key.public.key, signing_certificate, chain)


def _sign_with(payload: bytes, key: PrivateKey, chain: _certs.SigningCertificate | None = None) -> bytes:
    signature = key.sign(pae(PAYLOAD_TYPE, payload))
    material: dict[str, Any]
    if chain is None:
        material = {"publicKey": {"hint": key.public.fingerprint}, "tlogEntries": []}
    else:
        certificates = [{"rawBytes": base64.b64encode(der).decode("ascii")} for der in chain.ders]
        material = {"x509CertificateChain": {"certificates": certificates}, "tlogEntries": []}
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode("ascii"), "keyid": ""}],
        },
    }
    return json.dumps(bundle, separators=(",", ":")).encode("ascii")


def subject_digest(resources: Iterable[Resource]) -> str:
    """``sha256:<hex>`` over the raw digests of `resources`, in the order given."""
    raw = []
    for r in resources:
        try:
            raw.append(bytes.fromhex(r.digest))
        except ValueError:
            raise SignatureError(Reason.MALFORMED_BUNDLE, f"resource {r.name!r} has a non-hex digest") from None
    return "sha256:" + mf.subject_digest_bytes(raw)


def _effective_ignores(model_dir: str, ignore_paths: Iterable[str | os.PathLike[str]], ignore_git_paths: bool) -> list[str]:
    ignores = mf.normalize_ignore_paths(model_dir, ignore_paths)
    if ignore_git_paths:
        ignores += [p for p in mf.GIT_PATHS if p not in ignores]
    return sorted(ignores)


def _compute(
    model_dir: str | os.PathLike[str],
    *,
    hash_algorithm: str,
    shard_size: int | None,
    ignore_paths: Iterable[str | os.PathLike[str]],
    allow_symlinks: bool,
    workers: int | None,
    ignore_git_paths: bool,
) -> tuple[str, list[str], str, int | None, tuple[Resource, ...]]:
    root = mf.check_model_dir(model_dir)
    algorithm = mf.hash_algorithm_name(hash_algorithm)
    if shard_size is not None:
        if isinstance(shard_size, bool) or not isinstance(shard_size, int) or not 1 <= shard_size <= MAX_SHARD_SIZE:
            raise SignatureError(Reason.MALFORMED_BUNDLE, f"shard size must be a positive integer, got {shard_size!r}")
    ignores = _effective_ignores(root, ignore_paths, ignore_git_paths)
    found = mf.walk(root, mf.IgnoreSet(ignores), allow_symlinks)
    jobs, keys = mf.file_jobs(sorted(found.items()), shard_size)
    digests: list[bytes | None] = [None] * len(keys)

    def store(job: mf.Job, digest: bytes) -> None:
        digests[job.index] = digest

    mf.run_jobs(root, jobs, algorithm, allow_symlinks=allow_symlinks, workers=workers, on_result=store)
    if shard_size is None:
        order = sorted(range(len(keys)), key=lambda i: mf.sort_key(keys[i][0]))
        resources = tuple(Resource(keys[i][0], algorithm, digests[i].hex()) for i in order)  # type: ignore[union-attr]
    else:
        order = sorted(range(len(keys)), key=lambda i: mf.shard_sort_key(keys[i]))  # type: ignore[arg-type]
        alg = mf.shard_algorithm(algorithm, shard_size)
        resources = tuple(
            Resource(mf.shard_name(keys[i][0], keys[i][1], keys[i][2]), alg, digests[i].hex())  # type: ignore[arg-type,union-attr]
            for i in order
        )
    return root, ignores, algorithm, shard_size, resources


def compute_manifest(
    model_dir: str | os.PathLike[str],
    *,
    hash_algorithm: str = "sha256",
    shard_size: int | None = None,
    ignore_paths: Iterable[str | os.PathLike[str]] = (),
    allow_symlinks: bool = False,
    workers: int | None = None,
    ignore_git_paths: bool = True,
) -> tuple[Resource, ...]:
    """Hash the model directory as model_signing would sign it (same names, order and digests).

    `ignore_paths` are relative to the model directory (or absolute inside it); like model_signing, the git
    paths (.git, .gitattributes, .github, .gitignore) are ignored too unless `ignore_git_paths` is False.
    """
    return _compute(
        model_dir,
        hash_algorithm=hash_algorithm,
        shard_size=shard_size,
        ignore_paths=ignore_paths,
        allow_symlinks=allow_symlinks,
        workers=workers,
        ignore_git_paths=ignore_git_paths,
    )[4]


def sign_model_dir(
    model_dir: str | os.PathLike[str],
    private_key_pem: bytes,
    *,
    hash_algorithm: str = "sha256",
    shard_size: int | None = None,
    ignore_paths: Iterable[str | os.PathLike[str]] = (),
    allow_symlinks: bool = False,
    workers: int | None = None,
    ignore_git_paths: bool = True,
    password: bytes | None = None,
    signing_certificate: bytes | str | None = None,
    certificate_chain: Iterable[bytes | str] = (),
) -> bytes:
    """Sign the model directory; return the bundle JSON (what ``model_signing verify key`` accepts, or with
    `signing_certificate` and `certificate_chain` (PEM), ``model_signing verify certificate``).

    The signature file itself is not excluded automatically: pass its path in `ignore_paths` when it will
    live inside the model directory (the CLI does).
    """
    key = load_private_key(private_key_pem, password)  # fail before hashing gigabytes
    chain = _chain_for(key, signing_certificate, certificate_chain)
    root, ignores, algorithm, shard_size, resources = _compute(
        model_dir,
        hash_algorithm=hash_algorithm,
        shard_size=shard_size,
        ignore_paths=ignore_paths,
        allow_symlinks=allow_symlinks,
        workers=workers,
        ignore_git_paths=ignore_git_paths,
    )
    if not resources:
        raise SignatureError(
            Reason.EMPTY_MODEL, f"nothing to sign in {root}: it holds no file that is not ignored (or only empty files, with shards)"
        )
    serialization: dict[str, Any] = {"method": "files" if shard_size is None else "shards", "hash_type": algorithm}
    if shard_size is not None:
        serialization["shard_size"] = shard_size
    serialization["allow_symlinks"] = bool(allow_symlinks)
    if ignores:
        serialization["ignore_paths"] = ignores
    return _sign_with(build_statement(_model_name(root), resources, serialization), key, chain)


def verify_model_dir(
    model_dir: str | os.PathLike[str],
    verified: VerifiedSignature,
    *,
    workers: int | None = None,
    extra_ignore_paths: Iterable[str | os.PathLike[str]] = (),
) -> None:
    """Re-hash every signed file (or shard) of `model_dir` and compare with the verified manifest.

    Refuses missing files, files the signature neither lists nor ignores, changed sizes or contents, symlinks
    unless the signature allows them, and anything that is not a regular file. `extra_ignore_paths` (relative
    to the model directory) excuses further unlisted files, e.g. the signature file itself; a file the
    signature lists is always checked. With shards, an empty file has no resource in model_signing's format, so
    an unlisted empty file is accepted.
    """
    if not isinstance(verified, VerifiedSignature):
        raise TypeError("verified must be the VerifiedSignature returned by verify_bundle")
    root = mf.check_model_dir(model_dir)
    extra = mf.IgnoreSet(mf.normalize_ignore_paths(root, extra_ignore_paths))
    expected_sizes = verified.file_sizes
    found = mf.walk(
        root, mf.IgnoreSet(verified.ignore_paths), verified.allow_symlinks,
        max_files=max(mf.MAX_FILES, len(expected_sizes) + 1000),
    )
    sharded = verified.serialization == "shards"
    missing = [f for f in expected_sizes if f not in found]
    unlisted = [
        f for f in sorted(found, key=mf.sort_key)
        if f not in expected_sizes and not extra.matches(f) and not (sharded and found[f] == 0)
    ]
    if missing:
        msg = f"{_some(missing)} {'is' if len(missing) == 1 else 'are'} signed but missing from {root}"
        if unlisted:
            msg += f"; {_some(unlisted)} {'is' if len(unlisted) == 1 else 'are'} present but not signed (renamed?)"
        raise SignatureError(Reason.MISSING_FILE, msg)
    if unlisted:
        raise SignatureError(
            Reason.EXTRA_FILE,
            f"{_some(unlisted)} {'is' if len(unlisted) == 1 else 'are'} in {root} but not in the signature "
            "(neither signed nor ignored)",
        )
    if sharded:
        for name, size in expected_sizes.items():
            if size is not None and found[name] != size:
                raise SignatureError(
                    Reason.FILE_MISMATCH, f"'{name}' is {found[name]} bytes, but the signed shards cover {size} bytes"
                )

    jobs: list[mf.Job] = []
    for i, r in enumerate(verified.resources):
        if sharded:
            name, s_start, s_end = r.name.rsplit(":", 2)
            start, end = int(s_start), int(s_end)
            last = end == expected_sizes[name]
            jobs.append(mf.Job(name, start, end, end - start, i, bytes.fromhex(r.digest), last))
        else:
            jobs.append(mf.Job(r.name, 0, None, found[r.name], i, bytes.fromhex(r.digest)))

    def check(job: mf.Job, digest: bytes) -> None:
        if digest != job.expected:
            what = f"'{job.rel}'" if job.end is None else f"bytes {job.start}..{job.end} of '{job.rel}'"
            raise SignatureError(
                Reason.FILE_MISMATCH,
                f"{what} hash{'es' if job.end is None else ''} to {verified.hash_algorithm}:{digest.hex()}, but the "
                f"signature says {verified.hash_algorithm}:{job.expected.hex()}",  # type: ignore[union-attr]
            )

    mf.run_jobs(
        root, jobs, verified.hash_algorithm, allow_symlinks=verified.allow_symlinks, workers=workers, on_result=check
    )


def _some(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    if len(names) > limit:
        shown += f" and {len(names) - limit} more"
    return shown
