"""A small real PKI for the certificate-signing tests: root CA -> intermediate CA -> signing certificates, made
with `cryptography`, with knobs for the ways a certificate can be wrong."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = dt.timedelta(days=1)
CURVES = {"p256": ec.SECP256R1, "p384": ec.SECP384R1, "p521": ec.SECP521R1}
_HASH = {"p256": hashes.SHA256, "p384": hashes.SHA384, "p521": hashes.SHA512}


def name(cn: str, org: str = "Example Corp") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def private_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

    @property
    def pem(self) -> bytes:
        return pem(self.cert)

    @property
    def key_pem(self) -> bytes:
        return private_pem(self.key)


def key_usage(*, signature: bool = False, cert_sign: bool = False, encipherment: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signature, content_commitment=False, key_encipherment=encipherment, data_encipherment=False,
        key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False, decipher_only=False,
    )


def issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    issuer: Issued | None = None,
    *,
    ca: bool = False,
    path_length: int | None = None,
    basic_constraints: bool = True,
    usage: x509.KeyUsage | None | bool = True,
    eku: Sequence[x509.ObjectIdentifier] | None = None,
    sans: Iterable[x509.GeneralName] = (),
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    extra: Iterable[tuple[x509.ExtensionType, bool]] = (),
    issuer_name: x509.Name | None = None,
) -> Issued:
    """A certificate for `key`, signed by `issuer` (self-signed when None)."""
    signer_key = issuer.key if issuer else key
    b = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(issuer_name or (issuer.cert.subject if issuer else name(subject)))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - DAY)
        .not_valid_after(not_after or NOW + 365 * DAY)
    )
    if basic_constraints:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    if usage is True:
        usage = key_usage(cert_sign=True) if ca else key_usage(signature=True)
    if usage:
        b = b.add_extension(usage, critical=True)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    sans = list(sans)
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()), critical=False)
    for ext, critical in extra:
        b = b.add_extension(ext, critical=critical)
    algorithm = hashes.SHA384() if isinstance(signer_key, ec.EllipticCurvePrivateKey) and signer_key.curve.name == "secp384r1" else hashes.SHA256()
    return Issued(b.sign(signer_key, algorithm), key)


def ec_key(curve: str = "p256") -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(CURVES[curve]())


class Pki:
    """Root (P-384) -> intermediate (P-256, pathlen 0) -> signing certificates."""

    def __init__(self) -> None:
        since = NOW - 365 * DAY  # older than any signing certificate the tests make
        self.root = issue("Example Root CA", ec_key("p384"), ca=True, not_before=since, not_after=NOW + 3650 * DAY)
        self.intermediate = issue(
            "Example Signing CA", ec_key("p256"), self.root, ca=True, path_length=0, not_before=since,
            not_after=NOW + 1000 * DAY,
        )

    def signer(
        self,
        curve: str = "p256",
        *,
        subject: str = "ml-release",
        issuer: Issued | None = None,
        sans: Iterable[x509.GeneralName] | None = None,
        eku: Sequence[x509.ObjectIdentifier] | None = (ExtendedKeyUsageOID.CODE_SIGNING,),
        **kw,
    ) -> Issued:
        if sans is None:
            sans = [x509.RFC822Name("ml-team@example.com"), x509.UniformResourceIdentifier("https://ci.example.com/ml")]
        return issue(subject, ec_key(curve), issuer or self.intermediate, eku=eku, sans=sans, **kw)

    def write(self, root: Path, signer: Issued, prefix: str = "") -> dict[str, Path]:
        """Files as the tools take them: key, cert, intermediate, root, and chain (intermediate + root)."""
        files = {
            "key": signer.key_pem,
            "cert": signer.pem,
            "intermediate": self.intermediate.pem,
            "root": self.root.pem,
            "chain": self.intermediate.pem + self.root.pem,
        }
        out = {}
        for k, data in files.items():
            path = root / f"{prefix}{k}.pem"
            path.write_bytes(data)
            out[k] = path
        return out
