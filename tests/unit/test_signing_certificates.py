"""The OMS certificate method on a real PKI (root -> intermediate -> signing certificate): what verifies, what
is recorded, and every refusal with its reason."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier
from tests.unit.pki import DAY, NOW, Issued, Pki, der, ec_key, issue, key_usage, pem

from modelhub.domain import signing
from modelhub.domain.signing import SignatureError, _certs


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


@pytest.fixture(scope="module")
def signer(pki: Pki):
    return pki.signer()


def sign(model: Path, signer, *chain: bytes, **kw) -> bytes:
    return signing.sign_model_dir(model, signer.key_pem, signing_certificate=signer.pem, certificate_chain=chain, **kw)


def refused(bundle: bytes, cas: dict[str, bytes] | None, reason: str, *fragments: str, keys=None) -> SignatureError:
    with pytest.raises(SignatureError) as info:
        signing.verify_bundle(bundle, keys, trusted_cas=cas)
    assert info.value.reason == reason, info.value.message
    for fragment in fragments:
        assert fragment in info.value.message, info.value.message
    return info.value


def edit(bundle: bytes, fn) -> bytes:
    doc = json.loads(bundle)
    fn(doc)
    return json.dumps(doc).encode()


def certs_of(doc: dict) -> list[dict]:
    return doc["verificationMaterial"]["x509CertificateChain"]["certificates"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ------------------------------------------------------------------------------------------- accepted


@pytest.mark.parametrize("curve", ["p256", "p384", "p521"])
def test_signs_and_verifies_with_what_it_records(sig_model: Path, pki: Pki, curve: str) -> None:
    s = pki.signer(curve)
    bundle = sign(sig_model, s, pki.intermediate.pem)
    doc = json.loads(bundle)
    # model_signing's layout: the chain, leaf first, and an empty tlogEntries; no publicKey
    assert set(doc["verificationMaterial"]) == {"x509CertificateChain", "tlogEntries"}
    assert [base64.b64decode(c["rawBytes"]) for c in certs_of(doc)] == [der(s.cert), der(pki.intermediate.cert)]

    v = signing.verify_bundle(bundle, None, trusted_cas={"pki/root.pem": pki.root.pem})
    c = v.certificate
    assert c is not None
    assert c.subject == "CN=ml-release,O=Example Corp"
    assert c.sans == ("email:ml-team@example.com", "uri:https://ci.example.com/ml")
    assert c.fingerprint == hashlib.sha256(der(s.cert)).hexdigest()
    assert c.issuer == "CN=Example Signing CA,O=Example Corp"
    assert c.authority_name == v.key_name == "pki/root.pem"
    assert c.authority_fingerprint == hashlib.sha256(der(pki.root.cert)).hexdigest()
    assert c.ca_fingerprints == (
        hashlib.sha256(der(pki.intermediate.cert)).hexdigest(), hashlib.sha256(der(pki.root.cert)).hexdigest())
    assert c.serial == format(s.cert.serial_number, "x")
    # the key fingerprint is the certificate's public key's, as a key signature by that key would record
    assert v.key_fingerprint == signing.key_fingerprint(signing.public_key_pem(s.key_pem))
    assert v.subject_digest == signing.subject_digest(signing.compute_manifest(sig_model))
    signing.verify_model_dir(sig_model, v)
    assert "ml-release" in v.signer and "pki/root.pem" in v.signer


def test_trusting_the_intermediate_alone_is_enough(sig_model: Path, pki: Pki, signer) -> None:
    v = signing.verify_bundle(sign(sig_model, signer), None, trusted_cas={"ca": pki.intermediate.pem})
    assert v.certificate.ca_fingerprints == (hashlib.sha256(der(pki.intermediate.cert)).hexdigest(),)


def test_root_in_the_bundle_and_several_cas_per_entry(sig_model: Path, pki: Pki, signer) -> None:
    other = Pki()
    bundle = sign(sig_model, signer, pki.intermediate.pem + pki.root.pem)
    assert len(certs_of(json.loads(bundle))) == 3
    v = signing.verify_bundle(bundle, {}, trusted_cas={"bundle": other.root.pem + pki.root.pem, "z": other.root.pem})
    assert v.certificate.authority_fingerprint == hashlib.sha256(der(pki.root.cert)).hexdigest()
    assert v.certificate.authority_name == "bundle"


def test_keys_and_cas_side_by_side(sig_model: Path, pki: Pki, signer, sig_keys) -> None:
    priv, pub = sig_keys["p256"]
    key_bundle = signing.sign_model_dir(sig_model, priv)
    cert_bundle = sign(sig_model, signer, pki.intermediate.pem)
    trusted = {"keys/k": pub}
    cas = {"pki/root": pki.root.pem}
    assert signing.verify_bundle(key_bundle, trusted, trusted_cas=cas).certificate is None
    assert signing.verify_bundle(cert_bundle, trusted, trusted_cas=cas).certificate is not None
    # each method needs its own kind of trust
    refused(cert_bundle, None, "UntrustedCertificate", "only public keys are trusted", keys=trusted)
    refused(key_bundle, cas, "UntrustedKey", "only CA certificates are trusted", keys={})


def test_an_expired_signing_certificate_still_verifies_what_it_signed(sig_model: Path, pki: Pki) -> None:
    """model_signing's rule: the chain is checked when the signing certificate was issued (no timestamp)."""
    old = pki.signer(not_before=NOW - 30 * DAY, not_after=NOW - 20 * DAY)
    v = signing.verify_bundle(sign(sig_model, old, pki.intermediate.pem), None, trusted_cas={"r": pki.root.pem})
    assert v.certificate.not_after < NOW.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_usage_rules_follow_model_signing(sig_model: Path, pki: Pki) -> None:
    cas = {"r": pki.root.pem}
    # codeSigning alone (no keyUsage) may sign; digitalSignature alone (no EKU) may sign
    for s in (pki.signer(usage=None), pki.signer(eku=None)):
        signing.verify_bundle(sign(sig_model, s, pki.intermediate.pem), None, trusted_cas=cas)
    # neither: refused
    s = pki.signer(usage=key_usage(encipherment=True), eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    refused(sign(sig_model, s, pki.intermediate.pem), cas, "CertificateNotForSigning", "digitalSignature", "codeSigning")
    s = pki.signer(usage=None, eku=None)
    refused(sign(sig_model, s, pki.intermediate.pem), cas, "CertificateNotForSigning")


def test_a_ca_without_key_usage_is_accepted_as_openssl_does(sig_model: Path) -> None:
    root = issue("Plain Root", ec_key(), ca=True, usage=None)
    inter = issue("Plain Intermediate", ec_key(), root, ca=True, usage=None)
    s = issue("signer", ec_key(), inter, eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    signing.verify_bundle(sign(sig_model, s, inter.pem), None, trusted_cas={"r": root.pem})


def test_sharded_blake2b_with_a_certificate(sig_model: Path, pki: Pki, signer) -> None:
    bundle = sign(sig_model, signer, pki.intermediate.pem, shard_size=1000, hash_algorithm="blake2b")
    v = signing.verify_bundle(bundle, None, trusted_cas={"r": pki.root.pem})
    assert (v.serialization, v.hash_algorithm, v.shard_size) == ("shards", "blake2b", 1000)
    signing.verify_model_dir(sig_model, v)


# ------------------------------------------------------------------------------------------- refused


def test_untrusted_ca(sig_model: Path, pki: Pki, signer) -> None:
    bundle = sign(sig_model, signer, pki.intermediate.pem)
    other = Pki()
    refused(bundle, {"other/root.pem": other.root.pem}, "UntrustedCertificate", "'CN=ml-release,O=Example Corp'",
            "does not chain", "other/root.pem")
    # the intermediate left out of the bundle, only the root trusted: no path
    refused(sign(sig_model, signer), {"r": pki.root.pem}, "UntrustedCertificate", "Example Signing CA")


def test_forged_intermediate_with_the_trusted_name(sig_model: Path, pki: Pki) -> None:
    """An intermediate with the real one's name and key, but signed by another root of the same name."""
    impostor_root = issue("Example Root CA", ec_key("p384"), ca=True)
    forged = issue("Example Signing CA", pki.intermediate.key, impostor_root, ca=True)
    s = pki.signer(issuer=forged)
    refused(sign(sig_model, s, forged.pem), {"r": pki.root.pem}, "UntrustedCertificate")


def test_chain_not_valid_when_the_signing_certificate_was_issued(sig_model: Path, pki: Pki) -> None:
    cas = {"r": pki.root.pem}
    expired = issue("Old Signing CA", ec_key(), pki.root, ca=True, not_before=NOW - 10 * DAY, not_after=NOW - 5 * DAY)
    s = pki.signer(issuer=expired, not_before=NOW - 2 * DAY)
    refused(sign(sig_model, s, expired.pem), cas, "CertificateExpired", "'CN=Old Signing CA", "had expired")
    late = issue("Late Signing CA", ec_key(), pki.root, ca=True, not_before=NOW + 5 * DAY)
    s = pki.signer(issuer=late, not_before=NOW)
    refused(sign(sig_model, s, late.pem), cas, "CertificateExpired", "'CN=Late Signing CA", "not yet valid")


def test_broken_paths(sig_model: Path, pki: Pki, signer) -> None:
    cas = {"r": pki.root.pem}
    # issued by a certificate that is not a CA
    s2 = pki.signer(issuer=signer)
    refused(sign(sig_model, s2, signer.pem, pki.intermediate.pem), cas, "InvalidCertificateChain", "basicConstraints")
    # path length: the intermediate allows no CA below it
    sub = issue("Sub CA", ec_key(), pki.intermediate, ca=True)
    refused(sign(sig_model, pki.signer(issuer=sub), sub.pem, pki.intermediate.pem), cas, "InvalidCertificateChain",
            "path length")
    # an unknown critical extension on the signing certificate
    odd = pki.signer(extra=[(x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00"), True)])
    refused(sign(sig_model, odd, pki.intermediate.pem), cas, "InvalidCertificateChain", "critical")
    # a CA whose keyUsage does not allow certificate signing
    ca = issue("Odd CA", ec_key(), pki.root, ca=True, usage=key_usage(signature=True))
    refused(sign(sig_model, pki.signer(issuer=ca), ca.pem), cas, "InvalidCertificateChain", "keyCertSign")


def test_rsa_signing_certificate_is_unsupported(sig_model: Path, pki: Pki, signer) -> None:
    rsa_cert = issue("rsa signer", rsa.generate_private_key(65537, 2048), pki.intermediate)
    bundle = edit(sign(sig_model, signer, pki.intermediate.pem),
                  lambda d: certs_of(d)[0].update(rawBytes=b64(der(rsa_cert.cert))))
    refused(bundle, {"r": pki.root.pem}, "UnsupportedAlgorithm", "RSA")


def test_altered_payload_or_swapped_certificate_is_a_bad_signature(sig_model: Path, pki: Pki, signer) -> None:
    cas = {"r": pki.root.pem}
    bundle = sign(sig_model, signer, pki.intermediate.pem)

    def alter(d):
        st = json.loads(base64.b64decode(d["dsseEnvelope"]["payload"]))
        st["predicate"]["resources"][0]["digest"] = "0" * 64
        d["dsseEnvelope"]["payload"] = b64(json.dumps(st).encode())

    refused(edit(bundle, alter), cas, "BadSignature", "ml-release")
    colleague = pki.signer(subject="someone-else")
    refused(edit(bundle, lambda d: certs_of(d)[0].update(rawBytes=b64(der(colleague.cert)))), cas, "BadSignature",
            "someone-else")


@pytest.mark.parametrize(
    ("change", "reason", "fragment"),
    [
        (lambda d: d["verificationMaterial"]["x509CertificateChain"].update(certificates=[]), "MalformedBundle", "empty"),
        (lambda d: d["verificationMaterial"]["x509CertificateChain"].update(extra=1), "MalformedBundle", "unknown field"),
        (lambda d: certs_of(d)[0].update(hint="x"), "MalformedBundle", "unknown field"),
        (lambda d: certs_of(d)[0].pop("rawBytes"), "MalformedBundle", "missing field"),
        (lambda d: certs_of(d)[0].update(rawBytes=5), "MalformedBundle", "must be a string"),
        (lambda d: certs_of(d)[0].update(rawBytes="AAAA"), "InvalidCertificateChain", "not a DER X.509 certificate"),
        (lambda d: certs_of(d)[0].update(rawBytes="QQ"), "MalformedBundle", "base64"),
        (lambda d: certs_of(d)[0].update(rawBytes=b64(os.urandom(40_000))), "InvalidCertificateChain", "allowed"),
        (lambda d: certs_of(d).extend([certs_of(d)[1]] * 10), "InvalidCertificateChain", "more than the 10 allowed"),
        (lambda d: d["verificationMaterial"].update(publicKey={"hint": ""}), "MalformedBundle", "both publicKey"),
        (lambda d: d["verificationMaterial"].update(certificate={"rawBytes": "AAAA"}), "UnsupportedAlgorithm",
         "x509CertificateChain"),
        (lambda d: d["verificationMaterial"].update(tlogEntries=[{}]), "MalformedBundle", "tlogEntries"),
        (lambda d: d["verificationMaterial"].update(x509CertificateChain=[]), "MalformedBundle", "must be an object"),
    ],
)
def test_malformed_chains(sig_model: Path, pki: Pki, signer, change, reason: str, fragment: str) -> None:
    refused(edit(sign(sig_model, signer, pki.intermediate.pem), change), {"r": pki.root.pem}, reason, fragment)


def test_trusted_ca_problems(sig_model: Path, pki: Pki, signer) -> None:
    bundle = sign(sig_model, signer, pki.intermediate.pem)
    refused(bundle, {"x": b"not a certificate"}, "InvalidCertificate", "no PEM certificate")
    broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    refused(bundle, {"x": broken}, "InvalidCertificate", "certificate #1")
    refused(bundle, {"x": pki.root.pem * 300}, "InvalidCertificate", "allowed")
    refused(bundle, {"x": b"x" * (_certs.MAX_CA_PEM_BYTES + 1)}, "InvalidCertificate", "allowed")
    refused(bundle, {"x": 5}, "InvalidCertificate", "PEM bytes")  # type: ignore[dict-item]
    refused(bundle, {}, "UntrustedCertificate", "no trusted CA")
    # text around the PEM blocks (as in a CA bundle file) is fine, and str works like bytes
    v = signing.verify_bundle(bundle, None, trusted_cas={"x": "# Example Root\n" + pki.root.pem.decode() + "\ntrailer"})
    assert v.certificate is not None


def test_signing_problems(sig_model: Path, pki: Pki, signer) -> None:
    other = pki.signer()
    with pytest.raises(SignatureError) as info:
        signing.sign_model_dir(sig_model, other.key_pem, signing_certificate=signer.pem)
    assert info.value.reason == "InvalidCertificate" and "does not hold the public key" in info.value.message
    with pytest.raises(SignatureError) as info:
        signing.sign_model_dir(sig_model, signer.key_pem, certificate_chain=[pki.root.pem])
    assert info.value.reason == "InvalidCertificate" and "without the signing certificate" in info.value.message
    with pytest.raises(SignatureError) as info:
        signing.sign_model_dir(sig_model, signer.key_pem, signing_certificate=signer.pem + pki.root.pem)
    assert info.value.reason == "InvalidCertificate" and "holds 2 certificates" in info.value.message
    with pytest.raises(SignatureError) as info:
        signing.sign_model_dir(sig_model, signer.key_pem, signing_certificate=signer.pem,
                               certificate_chain=[pki.root.pem * 10])
    assert info.value.reason == "InvalidCertificate" and "more than the 10" in info.value.message


@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")  # non-positive serials
def test_nothing_but_signature_errors_escape_from_mangled_certificates(sig_model: Path, pki: Pki, signer) -> None:
    bundle = sign(sig_model, signer, pki.intermediate.pem)
    rng = random.Random(13)
    leaf, inter = der(signer.cert), der(pki.intermediate.cert)
    reasons = set()
    for i in range(300):
        target = bytearray(leaf if i % 2 else inter)
        for _ in range(rng.randint(1, 4)):
            target[rng.randrange(len(target))] = rng.randrange(256)
        if i % 7 == 0:
            target = target[: rng.randrange(len(target))]
        idx = i % 2 ^ 1

        def put(d, raw=bytes(target), idx=idx):
            certs_of(d)[idx]["rawBytes"] = b64(raw)

        try:
            signing.verify_bundle(edit(bundle, put), None, trusted_cas={"r": pki.root.pem})
        except SignatureError as exc:
            reasons.add(exc.reason)
    assert reasons <= {"InvalidCertificateChain", "UntrustedCertificate", "BadSignature", "CertificateExpired",
                       "CertificateNotForSigning", "UnsupportedAlgorithm", "InvalidKey"}, reasons
    assert {"InvalidCertificateChain", "UntrustedCertificate"} <= reasons


def test_certificate_fingerprints(pki: Pki, signer) -> None:
    assert signing.certificate_fingerprints(pem(signer.cert, pki.root.cert)) == [
        hashlib.sha256(signer.cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
        hashlib.sha256(der(pki.root.cert)).hexdigest(),
    ]


def test_a_hostile_tangle_of_same_named_cas_is_refused_within_the_path_budget(sig_model: Path) -> None:
    """Nine CAs all named 'Loop', each issued by the next, and 250 trusted anchors of that name: path building
    has a bounded budget, and the answer is a refusal, not a hang or a crash."""
    keys = [ec_key() for _ in range(9)]
    cas = []
    for i, k in enumerate(keys):
        signer_key = keys[(i + 1) % 9]
        cas.append(issue("Loop", k, Issued(issue("Loop", signer_key).cert, signer_key), ca=True))
    leaf = issue("signer", ec_key(), Issued(cas[0].cert, keys[0]), eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    bundle = sign(sig_model, leaf, *[c.pem for c in cas])
    anchors = b"".join(issue("Loop", ec_key(), ca=True).pem for _ in range(250))
    for trusted in ({"a": anchors[: len(anchors) // 250]}, {"a": anchors}):
        with pytest.raises(SignatureError) as info:
            signing.verify_bundle(bundle, None, trusted_cas=trusted)
        assert info.value.reason in {"UntrustedCertificate", "InvalidCertificateChain"}
