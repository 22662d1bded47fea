"""X.509 certificates for the OMS ``certificate`` method, as model_signing 1.1.x checks them.

A certificate-signed bundle carries ``verificationMaterial.x509CertificateChain.certificates``: the signing
(leaf) certificate first, then whatever intermediates (and possibly the root) the signer added, DER in base64.
It verifies when:

* the chain leads from the leaf to one of the trusted CA certificates. Path building and checking is
  ``cryptography.x509.verification`` (RFC 5280: issuer signatures, names, basicConstraints cA on every issuer,
  path length and name constraints, no unknown critical extension, keyCertSign on an issuer that has a
  keyUsage). Every trusted certificate is an anchor: a Model may trust an intermediate without its root.
* every certificate on the path was valid at the time the signing certificate was issued (its notBefore).
  That is model_signing's rule: a bundle carries no trusted timestamp, so the issuance of the signing
  certificate is the latest moment the signature can be proven to be made at. A signing certificate that has
  expired since does not void the signatures made with it; revoke those by certificate fingerprint.
* the leaf may sign: its keyUsage has digitalSignature, or its extendedKeyUsage has codeSigning (the same rule
  as model_signing), and its key is ECDSA P-256/P-384/P-521 (the DSSE signature is checked with it).

Every refusal is a :class:`SignatureError`; hostile input is bounded (chain length, certificate size, number
of trusted CAs) and never escapes as another exception.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification as xv
from cryptography.x509.oid import ExtendedKeyUsageOID

from modelhub.domain.signing._errors import Reason, SignatureError
from modelhub.domain.signing._keys import PublicKey, canonical_public_pem, load_public_key

MAX_CHAIN_CERTIFICATES = 10  # in a bundle: the leaf and at most 9 more
MAX_CERTIFICATE_BYTES = 32 * 1024  # DER; real certificates are 0.5 to 3 KiB
MAX_CHAIN_DEPTH = 8  # intermediates between the leaf and the anchor
MAX_TRUSTED_CAS = 256  # certificates, over all trusted entries
MAX_CA_PEM_BYTES = 1024 * 1024  # one trusted entry (a ConfigMap value is at most 1 MiB anyway)
MAX_SUBJECT_CHARS = 1024
MAX_SANS = 32

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.*?-----END CERTIFICATE-----", re.S)


def fingerprint_der(der: bytes) -> str:
    """Hex sha256 of a certificate's DER: the fingerprint a Revocation names."""
    return hashlib.sha256(der).hexdigest()


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _describe(cert: x509.Certificate) -> str:
    try:
        text = cert.subject.rfc4514_string()
    except Exception:  # noqa: BLE001 - a subject that cannot be printed is still a subject
        text = "(unprintable subject)"
    text = text or "(empty subject)"
    return repr(text[:200] + ("…" if len(text) > 200 else ""))


# ------------------------------------------------------------------------------------------- trusted CAs


@dataclass(frozen=True)
class TrustedCA:
    name: str  # the trusted entry it came from, e.g. "<configmap>/<key>"
    certificate: x509.Certificate
    fingerprint: str


def parse_pem_certificates(pem: bytes | str, what: str) -> list[x509.Certificate]:
    """Every PEM certificate in `pem` (text around and between the blocks is ignored, as openssl does)."""
    if isinstance(pem, str):
        pem = pem.encode("utf-8", "replace")
    if not isinstance(pem, bytes | bytearray | memoryview):
        raise SignatureError(Reason.INVALID_CERTIFICATE, f"{what} must be PEM bytes, got {type(pem).__name__}")
    pem = bytes(pem)
    if len(pem) > MAX_CA_PEM_BYTES:
        raise SignatureError(
            Reason.INVALID_CERTIFICATE, f"{what} is {len(pem)} bytes, more than the {MAX_CA_PEM_BYTES} allowed"
        )
    blocks = _PEM_CERT.findall(pem)
    if not blocks:
        raise SignatureError(
            Reason.INVALID_CERTIFICATE, f"{what} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        )
    if len(blocks) > MAX_TRUSTED_CAS:
        raise SignatureError(
            Reason.INVALID_CERTIFICATE, f"{what} holds {len(blocks)} certificates, more than the {MAX_TRUSTED_CAS} allowed"
        )
    out = []
    for i, block in enumerate(blocks):
        try:
            cert = x509.load_pem_x509_certificate(block)
            # cryptography parses lazily: reach every part verification touches now
            cert.subject.rfc4514_string()
            _ = cert.issuer, cert.extensions, cert.not_valid_before_utc, cert.not_valid_after_utc, cert.serial_number
            cert.public_key()
        except Exception as exc:  # noqa: BLE001 - ValueError mostly; whatever it is, the entry is unusable
            raise SignatureError(
                Reason.INVALID_CERTIFICATE,
                f"{what}: certificate #{i + 1} is not a valid X.509 certificate ({_short(exc)})",
            ) from None
        out.append(cert)
    return out


@functools.lru_cache(maxsize=256)
def _load_entry(pem: bytes, what: str) -> tuple[tuple[x509.Certificate, str], ...]:
    return tuple((c, fingerprint_der(_der(c))) for c in parse_pem_certificates(pem, what))


def load_trusted_cas(trusted_cas: Mapping[str, bytes | str] | None) -> list[TrustedCA]:
    """The trust anchors of a name -> PEM mapping (each value one or more certificates); duplicates once."""
    if trusted_cas is None:
        return []
    if not isinstance(trusted_cas, Mapping):
        raise SignatureError(Reason.INVALID_CERTIFICATE, "trusted_cas must map names to PEM CA certificates")
    out: list[TrustedCA] = []
    seen: set[str] = set()
    for name in sorted(trusted_cas, key=str):
        pem = trusted_cas[name]
        data = pem.encode("utf-8", "replace") if isinstance(pem, str) else pem
        if not isinstance(data, bytes | bytearray | memoryview):
            raise SignatureError(
                Reason.INVALID_CERTIFICATE, f"trusted CA {name!r} must be PEM bytes, got {type(pem).__name__}"
            )
        for cert, fp in _load_entry(bytes(data), f"trusted CA {str(name)!r}"):
            if fp in seen:
                continue
            seen.add(fp)
            out.append(TrustedCA(str(name), cert, fp))
            if len(out) > MAX_TRUSTED_CAS:
                raise SignatureError(
                    Reason.INVALID_CERTIFICATE, f"more than {MAX_TRUSTED_CAS} trusted CA certificates were given"
                )
    return out


def certificate_fingerprints(pem: bytes | str) -> list[str]:
    """The sha256 DER fingerprints of the PEM certificates in `pem` (for Revocation.match)."""
    return [fingerprint_der(_der(c)) for c in parse_pem_certificates(pem, "the certificate file")]


# ------------------------------------------------------------------------------------ the bundle's chain


@dataclass(frozen=True)
class VerifiedCertificate:
    """Who the signing certificate names and how it chained to a trusted CA."""

    subject: str  # RFC 4514
    sans: tuple[str, ...]  # "email:…", "dns:…", "uri:…", "ip:…", "dirname:…", "rid:…", "othername:<oid>"
    fingerprint: str  # sha256 hex of the signing certificate's DER
    issuer: str
    serial: str  # hex
    not_before: str  # ISO 8601, UTC
    not_after: str
    authority_name: str  # the trusted entry whose certificate anchored the path
    authority_fingerprint: str
    ca_fingerprints: tuple[str, ...]  # every CA certificate on the path, the leaf's issuer first, the anchor last


def load_chain(ders: list[bytes]) -> list[x509.Certificate]:
    """Parse the bundle's certificates (leaf first), bounded."""
    if not ders:
        raise SignatureError(
            Reason.MALFORMED_BUNDLE, "bundle.verificationMaterial.x509CertificateChain.certificates is empty"
        )
    if len(ders) > MAX_CHAIN_CERTIFICATES:
        raise SignatureError(
            Reason.INVALID_CERTIFICATE_CHAIN,
            f"the bundle's certificate chain holds {len(ders)} certificates, more than the {MAX_CHAIN_CERTIFICATES} "
            "allowed",
        )
    certs = []
    for i, der in enumerate(ders):
        what = "the signing certificate (certificates[0])" if i == 0 else f"certificates[{i}]"
        if len(der) > MAX_CERTIFICATE_BYTES:
            raise SignatureError(
                Reason.INVALID_CERTIFICATE_CHAIN,
                f"{what} is {len(der)} bytes, more than the {MAX_CERTIFICATE_BYTES} allowed",
            )
        try:
            cert = x509.load_der_x509_certificate(der)
        except Exception as exc:  # noqa: BLE001
            raise SignatureError(
                Reason.INVALID_CERTIFICATE_CHAIN, f"{what} is not a DER X.509 certificate ({_short(exc)})"
            ) from None
        try:  # cryptography parses lazily: make every part we will touch fail here, with a clear reason
            cert.subject.rfc4514_string()
            cert.issuer.rfc4514_string()
            _ = cert.extensions, cert.not_valid_before_utc, cert.not_valid_after_utc
            serial = cert.serial_number
        except Exception as exc:  # noqa: BLE001
            raise SignatureError(Reason.INVALID_CERTIFICATE_CHAIN, f"{what} is malformed ({_short(exc)})") from None
        if serial <= 0:
            raise SignatureError(Reason.INVALID_CERTIFICATE_CHAIN, f"{what} has a serial number that is not positive")
        try:
            cert.public_key()
        except Exception as exc:  # noqa: BLE001
            reason = Reason.UNSUPPORTED_ALGORITHM if i == 0 else Reason.INVALID_CERTIFICATE_CHAIN
            raise SignatureError(reason, f"{what} holds an unusable public key ({_short(exc)})") from None
        certs.append(cert)
    return certs


def _short(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 200 else text[:200] + "…"


def _san(name: x509.GeneralName) -> str:
    if isinstance(name, x509.RFC822Name):
        return f"email:{name.value}"
    if isinstance(name, x509.DNSName):
        return f"dns:{name.value}"
    if isinstance(name, x509.UniformResourceIdentifier):
        return f"uri:{name.value}"
    if isinstance(name, x509.IPAddress):
        return f"ip:{name.value}"
    if isinstance(name, x509.DirectoryName):
        return f"dirname:{name.value.rfc4514_string()}"
    if isinstance(name, x509.RegisteredID):
        return f"rid:{name.value.dotted_string}"
    if isinstance(name, x509.OtherName):
        return f"othername:{name.type_id.dotted_string}"
    return f"other:{type(name).__name__}"


def _sans(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(_san(n) for n in list(ext.value)[:MAX_SANS])


def _may_sign(leaf: x509.Certificate) -> bool:
    """model_signing's rule: keyUsage digitalSignature, or else extendedKeyUsage codeSigning."""
    try:
        if leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature:
            return True
    except x509.ExtensionNotFound:
        pass
    try:
        return ExtendedKeyUsageOID.CODE_SIGNING in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False


def _ca_key_usage(_policy: xv.Policy, _cert: x509.Certificate, ku: x509.KeyUsage | None) -> None:
    # WebPKI requires a keyUsage on every CA; RFC 5280 (and OpenSSL, hence model_signing) only that a present
    # one allows keyCertSign. Enterprise CAs made with `openssl req -x509` often have none.
    if ku is not None and not ku.key_cert_sign:
        raise ValueError("the CA certificate's keyUsage lacks keyCertSign")


@functools.lru_cache(maxsize=1)
def _policies() -> tuple[xv.ExtensionPolicy, xv.ExtensionPolicy]:
    ca = xv.ExtensionPolicy.webpki_defaults_ca().may_be_present(x509.KeyUsage, xv.Criticality.AGNOSTIC, _ca_key_usage)
    # The leaf: no WebPKI profile (no serverAuth/clientAuth EKU, no SAN required); its usage is checked after.
    return ca, xv.ExtensionPolicy.permit_all()


def _at(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _validity_problem(certs: list[x509.Certificate], when: dt.datetime) -> str | None:
    for cert in certs:
        nb, na = cert.not_valid_before_utc, cert.not_valid_after_utc
        if when > na:
            return f"certificate {_describe(cert)} had expired ({_at(na)}) when the signing certificate was issued ({_at(when)})"
        if when < nb:
            return (
                f"certificate {_describe(cert)} was not yet valid (from {_at(nb)}) when the signing certificate was "
                f"issued ({_at(when)})"
            )
    return None


def _name_graph(
    leaf: x509.Certificate, pool: list[x509.Certificate], anchors: list[TrustedCA]
) -> tuple[list[x509.Certificate], bool]:
    """The certificates that issuer names alone (signatures ignored) lead to from the leaf, in path order, and
    whether they reach an anchor: tells 'untrusted' from 'broken', and which certificate a time problem is on."""
    anchor_certs = [a.certificate for a in anchors]
    reached: list[x509.Certificate] = [leaf]
    frontier, seen, anchored = [leaf], {id(leaf)}, False
    for _ in range(MAX_CHAIN_DEPTH + 2):
        nxt = []
        for c in frontier:
            for a in anchor_certs:
                if a.subject == c.issuer and id(a) not in seen:
                    seen.add(id(a))
                    reached.append(a)
                    anchored = True
            for p in pool:
                if p.subject == c.issuer and id(p) not in seen:
                    seen.add(id(p))
                    reached.append(p)
                    nxt.append(p)
        if not nxt:
            break
        frontier = nxt
    return reached, anchored


def _trusted_names(anchors: list[TrustedCA]) -> str:
    shown = ", ".join(f"{a.name!r} {_describe(a.certificate)}" for a in anchors[:4])
    return shown + (f" and {len(anchors) - 4} more" if len(anchors) > 4 else "")


def _library_detail(message: str) -> str:
    text = message.removeprefix("validation failed: ").removeprefix("candidates exhausted: ")
    text = re.sub(r"<Certificate\(subject=<Name\(([^)]*)\)>, \.\.\.\)>", r"'\1'", text)
    return text[:300]


def verify_chain(certs: list[x509.Certificate], anchors: list[TrustedCA]) -> tuple[VerifiedCertificate, PublicKey]:
    """Check the bundle's chain (leaf first) against the trusted CAs; return who it names and the leaf's key."""
    try:
        return _verify_chain(certs, anchors)
    except SignatureError:
        raise
    except Exception as exc:  # noqa: BLE001 - a certificate part the eager checks did not reach
        raise SignatureError(
            Reason.INVALID_CERTIFICATE_CHAIN, f"the certificate chain could not be processed ({_short(exc)})"
        ) from None


def _verify_chain(certs: list[x509.Certificate], anchors: list[TrustedCA]) -> tuple[VerifiedCertificate, PublicKey]:
    leaf, pool = certs[0], certs[1:]
    leaf_name = _describe(leaf)
    if not anchors:
        raise SignatureError(
            Reason.UNTRUSTED_CERTIFICATE,
            f"the bundle is signed with certificate {leaf_name}, but no trusted CA certificate was given to verify it "
            "with",
        )
    pub = leaf.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey):
        raise SignatureError(
            Reason.UNSUPPORTED_ALGORITHM,
            f"the signing certificate {leaf_name} holds a {type(pub).__name__.lstrip('_')}; only elliptic-curve keys "
            "(P-256, P-384, P-521) are supported",
        )
    key = load_public_key(canonical_public_pem(pub), f"the public key of the signing certificate {leaf_name}")
    when = leaf.not_valid_before_utc
    verifier = (
        xv.PolicyBuilder()
        .store(xv.Store([a.certificate for a in anchors]))
        .time(when)
        .max_chain_depth(MAX_CHAIN_DEPTH)
        .extension_policies(ca_policy=_policies()[0], ee_policy=_policies()[1])
        .build_client_verifier()
    )
    try:
        result = verifier.verify(leaf, pool)
    except xv.VerificationError as exc:
        raise _explain(str(exc), leaf, pool, anchors, when) from None
    chain = list(result.chain)
    by_fp = {a.fingerprint: a for a in anchors}
    fps = [fingerprint_der(_der(c)) for c in chain]
    anchor = by_fp.get(fps[-1])
    if anchor is None:  # the library ends every path at a certificate of the store
        raise SignatureError(Reason.UNTRUSTED_CERTIFICATE, f"the path of {leaf_name} does not end at a trusted CA")
    if not _may_sign(leaf):
        raise SignatureError(
            Reason.CERTIFICATE_NOT_FOR_SIGNING,
            f"the signing certificate {leaf_name} may not sign: its keyUsage lacks digitalSignature and its "
            "extendedKeyUsage lacks codeSigning",
        )
    try:
        subject = leaf.subject.rfc4514_string()[:MAX_SUBJECT_CHARS]
        issuer = leaf.issuer.rfc4514_string()[:MAX_SUBJECT_CHARS]
    except Exception as exc:  # noqa: BLE001
        raise SignatureError(Reason.INVALID_CERTIFICATE_CHAIN, f"the signing certificate's name is malformed ({exc})") from None
    return (
        VerifiedCertificate(
            subject=subject,
            sans=_sans(leaf),
            fingerprint=fps[0],
            issuer=issuer,
            serial=format(leaf.serial_number, "x"),
            not_before=_at(leaf.not_valid_before_utc),
            not_after=_at(leaf.not_valid_after_utc),
            authority_name=anchor.name,
            authority_fingerprint=anchor.fingerprint,
            ca_fingerprints=tuple(fps[1:]) if len(fps) > 1 else (fps[0],),
        ),
        key,
    )


def _explain(
    message: str, leaf: x509.Certificate, pool: list[x509.Certificate], anchors: list[TrustedCA], when: dt.datetime
) -> SignatureError:
    leaf_name = _describe(leaf)
    path, anchored = _name_graph(leaf, pool, anchors)
    if "not valid at validation time" in message:
        problem = _validity_problem(path, when)
        return SignatureError(
            Reason.CERTIFICATE_EXPIRED,
            f"the chain of the signing certificate {leaf_name} was not valid when it was issued: "
            f"{problem or _library_detail(message)}",
        )
    if (
        "signature does not match" in message
        or "no interior errors" in message
        or not anchored
    ):
        return SignatureError(
            Reason.UNTRUSTED_CERTIFICATE,
            f"the signing certificate {leaf_name} (issued by {_describe_name(leaf.issuer)}) does not chain to a "
            f"trusted CA ({_trusted_names(anchors)})",
        )
    return SignatureError(
        Reason.INVALID_CERTIFICATE_CHAIN,
        f"the chain of the signing certificate {leaf_name} is not valid: {_library_detail(message)}",
    )


def _describe_name(name: x509.Name) -> str:
    try:
        text = name.rfc4514_string()
    except Exception:  # noqa: BLE001
        text = "(unprintable name)"
    return repr(text[:200])


# --------------------------------------------------------------------------------------------- signing


@dataclass(frozen=True)
class SigningCertificate:
    """A signing certificate and the chain to put beside it in the bundle (DER, leaf first)."""

    ders: tuple[bytes, ...]


def signing_chain(
    private_public: ec.EllipticCurvePublicKey, signing_certificate_pem: bytes | str, chain_pems: list[bytes | str]
) -> SigningCertificate:
    """The bundle's certificates: the signing certificate (which must hold the private key's public half),
    then every certificate of the chain files in the order given (as model_signing writes them)."""
    leaves = parse_pem_certificates(signing_certificate_pem, "the signing certificate")
    if len(leaves) != 1:
        raise SignatureError(
            Reason.INVALID_CERTIFICATE,
            f"the signing certificate file holds {len(leaves)} certificates; put one there and the others in the "
            "certificate chain",
        )
    leaf = leaves[0]
    if leaf.public_key() != private_public:
        raise SignatureError(
            Reason.INVALID_CERTIFICATE,
            f"the signing certificate {_describe(leaf)} does not hold the public key of the private key",
        )
    ders = [_der(leaf)]
    for i, pem in enumerate(chain_pems):
        ders += [_der(c) for c in parse_pem_certificates(pem, f"certificate chain file #{i + 1}")]
    if len(ders) > MAX_CHAIN_CERTIFICATES:
        raise SignatureError(
            Reason.INVALID_CERTIFICATE,
            f"the chain holds {len(ders)} certificates, more than the {MAX_CHAIN_CERTIFICATES} a verifier accepts",
        )
    return SigningCertificate(tuple(ders))
