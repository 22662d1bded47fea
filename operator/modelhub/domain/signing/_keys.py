"""Elliptic-curve keys as model_signing uses them: P-256/P-384/P-521, ECDSA with SHA-256/384/512 by curve."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from modelhub.domain.signing._errors import Reason, SignatureError

# Our short names -> cryptography curve classes.
CURVES: dict[str, type[ec.EllipticCurve]] = {
    "p256": ec.SECP256R1,
    "p384": ec.SECP384R1,
    "p521": ec.SECP521R1,
}
_ALIASES = {
    "p256": "p256", "secp256r1": "p256", "prime256v1": "p256",
    "p384": "p384", "secp384r1": "p384",
    "p521": "p521", "secp521r1": "p521",
}
# The hash that goes with each curve (the Sigstore protobuf specs' choice, which model_signing follows).
_HASH_BY_CURVE: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}
MAX_PEM_BYTES = 64 * 1024


def curve_name(curve: str) -> str:
    """Normalise 'P-256', 'p256', 'secp256r1', 'prime256v1'... to 'p256' (and so on); refuse anything else."""
    key = str(curve).strip().lower().replace("-", "").replace("_", "")
    try:
        return _ALIASES[key]
    except KeyError:
        raise SignatureError(
            Reason.UNSUPPORTED_ALGORITHM, f"unsupported curve {curve!r}: use one of p256, p384, p521"
        ) from None


def _ecdsa_for(curve: ec.EllipticCurve, what: str) -> ec.ECDSA:
    try:
        return ec.ECDSA(_HASH_BY_CURVE[curve.name]())
    except KeyError:
        raise SignatureError(
            Reason.UNSUPPORTED_ALGORITHM,
            f"{what} is on curve {curve.name}; only P-256, P-384 and P-521 are supported",
        ) from None


def canonical_public_pem(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """The SubjectPublicKeyInfo PEM, as model_signing re-serialises a key before hashing it into the hint."""
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class PublicKey:
    key: ec.EllipticCurvePublicKey
    fingerprint: str  # hex sha256 of the canonical PEM: the bundle's verificationMaterial.publicKey.hint
    ecdsa: ec.ECDSA

    def verifies(self, signature: bytes, message: bytes) -> bool:
        try:
            self.key.verify(signature, message, self.ecdsa)
        except InvalidSignature:
            return False
        except Exception:  # noqa: BLE001 - malformed DER and the like: a signature that does not verify
            return False
        return True


def _as_bytes(pem: bytes | bytearray | memoryview | str, what: str) -> bytes:
    if isinstance(pem, str):
        pem = pem.encode("utf-8")
    if not isinstance(pem, bytes | bytearray | memoryview):
        raise SignatureError(Reason.INVALID_KEY, f"{what} must be PEM bytes, got {type(pem).__name__}")
    pem = bytes(pem)
    if len(pem) > MAX_PEM_BYTES:
        raise SignatureError(Reason.INVALID_KEY, f"{what} is {len(pem)} bytes long, not a PEM public key")
    return pem


@functools.lru_cache(maxsize=512)
def _load_public(pem: bytes, what: str) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SignatureError(
            Reason.INVALID_KEY, f"{what} is not a PEM SubjectPublicKeyInfo public key ({exc})"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SignatureError(
            Reason.UNSUPPORTED_ALGORITHM,
            f"{what} is a {type(key).__name__.lstrip('_')}; only elliptic-curve keys (P-256, P-384, P-521) are supported",
        )
    ecdsa = _ecdsa_for(key.curve, what)
    return PublicKey(key, hashlib.sha256(canonical_public_pem(key)).hexdigest(), ecdsa)


def load_public_key(pem: bytes | str, what: str = "public key") -> PublicKey:
    """Parse a PEM public key (cached: the operator verifies many bundles against the same keys)."""
    return _load_public(_as_bytes(pem, what), what)


def key_fingerprint(public_key_pem: bytes | str) -> str:
    """Hex sha256 of the key's SubjectPublicKeyInfo PEM, i.e. the bundle's ``verificationMaterial.publicKey.hint``.

    model_signing hashes the re-serialised PEM, so we do too: for a PEM file as written by ``modelhub keygen``,
    model_signing or ``openssl ec -pubout`` this is exactly the sha256 of the file's bytes.
    """
    return load_public_key(public_key_pem).fingerprint


@dataclass(frozen=True)
class PrivateKey:
    key: ec.EllipticCurvePrivateKey
    public: PublicKey

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message, self.public.ecdsa)


def load_private_key(pem: bytes | str, password: bytes | None = None, what: str = "private key") -> PrivateKey:
    data = _as_bytes(pem, what)
    try:
        key = serialization.load_pem_private_key(data, password)
    except TypeError as exc:  # encrypted without a password, or a password for an unencrypted key
        raise SignatureError(Reason.INVALID_KEY, f"{what}: {exc}") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SignatureError(
            Reason.INVALID_KEY, f"{what} is not a PEM private key, or the password is wrong ({exc})"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SignatureError(
            Reason.UNSUPPORTED_ALGORITHM,
            f"{what} is a {type(key).__name__.lstrip('_')}; only elliptic-curve keys (P-256, P-384, P-521) are supported",
        )
    public_pem = canonical_public_pem(key.public_key())
    return PrivateKey(key, load_public_key(public_pem, f"public half of the {what}"))


def public_key_pem(private_key_pem: bytes | str, password: bytes | None = None) -> bytes:
    """The SubjectPublicKeyInfo PEM of a private key."""
    return canonical_public_pem(load_private_key(private_key_pem, password).key.public_key())


def generate_private_key(curve: str = "p256") -> tuple[bytes, bytes]:
    """A new key pair: (unencrypted PKCS#8 private PEM, SubjectPublicKeyInfo public PEM)."""
    key = ec.generate_private_key(CURVES[curve_name(curve)]())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return private_pem, canonical_public_pem(key.public_key())
