"""verify_bundle on real keys and real signatures: what it accepts, and every refusal with its reason."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from modelhub.domain import signing
from modelhub.domain.signing import SignatureError, _bundle

CURVES = ("p256", "p384", "p521")


@pytest.fixture
def signed(sig_model: Path, sig_keys) -> tuple[bytes, bytes, bytes]:
    """(bundle, private PEM, public PEM) for the sample model, P-256, per-file sha256."""
    priv, pub = sig_keys["p256"]
    return signing.sign_model_dir(sig_model, priv), priv, pub


@pytest.fixture
def sharded(sig_model: Path, sig_keys) -> tuple[bytes, bytes, bytes]:
    priv, pub = sig_keys["p256"]
    return signing.sign_model_dir(sig_model, priv, shard_size=1000), priv, pub


def refused(bundle: bytes, keys: dict[str, bytes], reason: str, *fragments: str) -> SignatureError:
    with pytest.raises(SignatureError) as info:
        signing.verify_bundle(bundle, keys)
    assert info.value.reason == reason, info.value.message
    for fragment in fragments:
        assert fragment in info.value.message, info.value.message
    return info.value


def statement_of(bundle: bytes) -> dict:
    return json.loads(base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"]))


# ------------------------------------------------------------------------------------------- accepted


@pytest.mark.parametrize("curve", CURVES)
def test_every_curve_signs_and_verifies(sig_model: Path, sig_keys, curve: str) -> None:
    priv, pub = sig_keys[curve]
    bundle = signing.sign_model_dir(sig_model, priv)
    v = signing.verify_bundle(bundle, {"mine": pub})
    assert v.key_name == "mine"
    assert v.key_fingerprint == hashlib.sha256(pub).hexdigest() == signing.key_fingerprint(pub)
    assert json.loads(bundle)["verificationMaterial"]["publicKey"]["hint"] == v.key_fingerprint
    assert v.subject_digest == signing.subject_digest(signing.compute_manifest(sig_model))
    assert v.subject_name == "model"
    assert (v.hash_algorithm, v.serialization, v.shard_size, v.allow_symlinks) == (
        "sha256",
        "files",
        None,
        False,
    )
    assert v.ignore_paths == (".git", ".gitattributes", ".github", ".gitignore")
    assert v.file_count == 8 and len(v.resources) == 8
    # the key of another curve does not verify it
    others = {c: sig_keys[c][1] for c in CURVES if c != curve}
    refused(bundle, others, "UntrustedKey", v.key_fingerprint)


def test_statement_layout_matches_model_signing(signed) -> None:
    bundle, _, pub = signed
    doc = json.loads(bundle)
    assert list(doc) == ["mediaType", "verificationMaterial", "dsseEnvelope"]
    assert doc["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert doc["verificationMaterial"] == {
        "publicKey": {"hint": hashlib.sha256(pub).hexdigest()},
        "tlogEntries": [],
    }
    assert doc["dsseEnvelope"]["payloadType"] == "application/vnd.in-toto+json"
    assert doc["dsseEnvelope"]["signatures"][0]["keyid"] == ""
    st = statement_of(bundle)
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    assert st["predicateType"] == "https://model_signing/signature/v1.0"
    names = [r["name"] for r in st["predicate"]["resources"]]
    # model_signing orders by path components: 'a/b.bin' sorts before 'a-b' and 'a.txt'
    assert names == [
        "A",
        "a/b.bin",
        "a-b",
        "a.txt",
        "config.json",
        "empty",
        "sub/dir/tokenizer.txt",
        "weights.bin",
    ]
    raw = b"".join(bytes.fromhex(r["digest"]) for r in st["predicate"]["resources"])
    assert st["subject"][0]["digest"]["sha256"] == hashlib.sha256(raw).hexdigest()
    assert st["predicate"]["serialization"] == {
        "method": "files",
        "hash_type": "sha256",
        "allow_symlinks": False,
        "ignore_paths": [".git", ".gitattributes", ".github", ".gitignore"],
    }


def test_shards_and_blake2b_are_recorded_like_model_signing(sig_model: Path, sig_keys) -> None:
    priv, pub = sig_keys["p384"]
    bundle = signing.sign_model_dir(sig_model, priv, shard_size=4096, hash_algorithm="blake2b")
    v = signing.verify_bundle(bundle, {"k": pub})
    assert (v.serialization, v.hash_algorithm, v.shard_size) == ("shards", "blake2b", 4096)
    assert {r.algorithm for r in v.resources} == {"blake2b-sharded-4096"}
    assert all(len(r.digest) == 128 for r in v.resources)
    names = [r.name for r in v.resources]
    assert names[-3:] == ["weights.bin:0:4096", "weights.bin:4096:8192", "weights.bin:8192:10000"]
    assert not any(n.startswith("empty:") for n in names)  # an empty file has no shard
    assert v.file_sizes["weights.bin"] == 10_000 and v.total_size == sum(v.file_sizes.values())
    assert v.file_count == 7


def test_hint_is_only_a_hint(signed, sig_keys, sig_tamper) -> None:
    bundle, _, pub = signed
    other = sig_keys["p384"][1]
    # the hint names another trusted key: the right one is still found
    wrong_hint = sig_tamper(
        bundle,
        lambda d: d["verificationMaterial"]["publicKey"].update(hint=hashlib.sha256(other).hexdigest()),
    )
    assert signing.verify_bundle(wrong_hint, {"other": other, "signer": pub}).key_name == "signer"
    # no hint at all (older model_signing bundles)
    no_hint = sig_tamper(bundle, lambda d: d["verificationMaterial"]["publicKey"].pop("hint"))
    assert signing.verify_bundle(no_hint, {"other": other, "signer": pub}).key_name == "signer"
    refused(no_hint, {"other": other}, "UntrustedKey", "no hint")


def test_trusted_key_with_crlf_pem_matches_the_hint(signed) -> None:
    bundle, _, pub = signed
    crlf = pub.replace(b"\n", b"\r\n")
    assert signing.key_fingerprint(crlf) == hashlib.sha256(pub).hexdigest()
    assert signing.verify_bundle(bundle, {"crlf": crlf}).key_name == "crlf"


def test_unknown_predicate_fields_are_ignored_as_the_spec_says(signed, sig_resign) -> None:
    bundle, priv, pub = signed
    resigned = sig_resign(
        bundle, priv, lambda st: st["predicate"].update(modelCard={"license": "apache-2.0"})
    )
    assert signing.verify_bundle(resigned, {"k": pub}).file_count == 8


def test_shard_size_as_protobuf_double_is_accepted(sharded, sig_resign) -> None:
    bundle, priv, pub = sharded
    resigned = sig_resign(bundle, priv, lambda st: st["predicate"]["serialization"].update(shard_size=1000.0))
    assert b"1000.0" in base64.b64decode(json.loads(resigned)["dsseEnvelope"]["payload"])
    assert signing.verify_bundle(resigned, {"k": pub}).shard_size == 1000


def test_bundle_as_str_or_bytearray(signed) -> None:
    bundle, _, pub = signed
    assert signing.verify_bundle(bundle.decode(), {"k": pub}).file_count == 8
    assert signing.verify_bundle(bytearray(bundle), {"k": pub}).file_count == 8


# ------------------------------------------------------------------------------------ signature checks


def test_payload_altered_after_signing_is_a_bad_signature(signed, sig_tamper) -> None:
    bundle, _, pub = signed
    payload = base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"])
    # same JSON meaning, different bytes: the exact bytes are what is signed
    reformatted = json.dumps(json.loads(payload)).encode()
    assert json.loads(reformatted) == json.loads(payload)
    altered = sig_tamper(
        bundle, lambda d: d["dsseEnvelope"].update(payload=base64.b64encode(reformatted).decode())
    )
    refused(altered, {"k": pub}, "BadSignature", hashlib.sha256(pub).hexdigest())


def test_signature_bytes_altered(signed, sig_tamper) -> None:
    bundle, _, pub = signed

    def flip(d):
        raw = bytearray(base64.b64decode(d["dsseEnvelope"]["signatures"][0]["sig"]))
        raw[-1] ^= 1
        d["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()

    refused(sig_tamper(bundle, flip), {"k": pub}, "BadSignature")
    garbage = sig_tamper(
        bundle,
        lambda d: d["dsseEnvelope"]["signatures"][0].update(
            sig=base64.b64encode(b"\x30\x03garbage").decode()
        ),
    )
    refused(garbage, {"k": pub}, "BadSignature")


def test_untrusted_signer(signed, sig_keys) -> None:
    bundle, _, pub = signed
    err = refused(bundle, {"a": sig_keys["p384"][1], "b": sig_keys["p521"][1]}, "UntrustedKey", "'a', 'b'")
    assert hashlib.sha256(pub).hexdigest() in err.message


def test_wrong_payload_type_in_pae_does_not_verify(signed, sig_keys) -> None:
    bundle, priv, pub = signed
    payload = base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"])
    key = serialization.load_pem_private_key(priv, None)
    sig = key.sign(_bundle.pae("application/json", payload), ec.ECDSA(signing._keys.hashes.SHA256()))
    doc = json.loads(bundle)
    doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(sig).decode()
    refused(json.dumps(doc).encode(), {"k": pub}, "BadSignature")


def test_trusted_key_problems(signed) -> None:
    bundle, _, _ = signed
    refused(bundle, {}, "UntrustedKey", "no trusted public key")
    refused(bundle, {"junk": b"not a pem"}, "InvalidKey", "'junk'")
    rsa_pub = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    refused(bundle, {"rsa": rsa_pub}, "UnsupportedAlgorithm", "elliptic-curve")
    k1 = (
        ec.generate_private_key(ec.SECP256K1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    refused(bundle, {"k1": k1}, "UnsupportedAlgorithm", "secp256k1")
    with pytest.raises(SignatureError) as info:
        signing.key_fingerprint(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    assert info.value.reason == "InvalidKey"


# --------------------------------------------------------------------------------------- bundle layer


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"not json", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[]", "must be an object"),
        (b'{"mediaType": NaN}', "NaN"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"", "not valid JSON"),
    ],
)
def test_not_a_bundle(data: bytes, fragment: str, sig_keys) -> None:
    refused(data, {"k": sig_keys["p256"][1]}, "MalformedBundle", fragment)


def test_bundle_is_not_bytes(sig_keys) -> None:
    refused(42, {"k": sig_keys["p256"][1]}, "MalformedBundle", "must be bytes")  # type: ignore[arg-type]


def test_duplicate_json_keys(signed) -> None:
    bundle, _, pub = signed
    text = bundle.decode()
    dup = text.replace('"mediaType":', '"mediaType":"x","mediaType":', 1)
    refused(dup.encode(), {"k": pub}, "MalformedBundle", "duplicate key 'mediaType'")


@pytest.mark.parametrize(
    ("edit", "reason", "fragment"),
    [
        (lambda d: d.update(extra=1), "MalformedBundle", "unknown field bundle.extra"),
        (lambda d: d.pop("dsseEnvelope"), "MalformedBundle", "missing field bundle.dsseEnvelope"),
        (
            lambda d: d["verificationMaterial"].update(timestampVerificationData={}),
            "MalformedBundle",
            "unknown field bundle.verificationMaterial.timestampVerificationData",
        ),
        (
            lambda d: d["verificationMaterial"]["publicKey"].update(foo="x"),
            "MalformedBundle",
            "unknown field bundle.verificationMaterial.publicKey.foo",
        ),
        (
            lambda d: d["dsseEnvelope"].update(extra=[]),
            "MalformedBundle",
            "unknown field bundle.dsseEnvelope.extra",
        ),
        (
            lambda d: d["dsseEnvelope"]["signatures"][0].update(extra=""),
            "MalformedBundle",
            "unknown field bundle.dsseEnvelope.signatures[0].extra",
        ),
        (
            lambda d: d.update(mediaType="application/vnd.dev.sigstore.bundle+json;version=0.2"),
            "MalformedBundle",
            "bundle.mediaType",
        ),
        (lambda d: d.update(mediaType=3), "MalformedBundle", "bundle.mediaType must be a string"),
        (
            lambda d: d["dsseEnvelope"].update(payloadType="application/json"),
            "MalformedBundle",
            "bundle.dsseEnvelope.payloadType is 'application/json'",
        ),
        (
            lambda d: d["verificationMaterial"].update(certificate={"rawBytes": "AAAA"}),
            "UnsupportedAlgorithm",
            "certificate",
        ),
        (
            lambda d: d["verificationMaterial"].update(x509CertificateChain={}),
            "MalformedBundle",
            "both publicKey and x509CertificateChain",
        ),
        (lambda d: d.update(messageSignature={}), "UnsupportedAlgorithm", "messageSignature"),
        (lambda d: d["verificationMaterial"].update(tlogEntries=[{}]), "MalformedBundle", "tlogEntries"),
        (lambda d: d["verificationMaterial"]["publicKey"].update(hint="ABC"), "MalformedBundle", "hint"),
        (lambda d: d["dsseEnvelope"].update(signatures=[]), "MalformedBundle", "holds 0 signatures"),
        (
            lambda d: d["dsseEnvelope"]["signatures"].append(d["dsseEnvelope"]["signatures"][0]),
            "MalformedBundle",
            "holds 2 signatures",
        ),
        (lambda d: d["dsseEnvelope"]["signatures"][0].update(sig=""), "MalformedBundle", "0 bytes"),
        (
            lambda d: d["dsseEnvelope"]["signatures"][0].update(keyid=5),
            "MalformedBundle",
            "keyid must be a string",
        ),
        (lambda d: d["dsseEnvelope"].update(signatures={}), "MalformedBundle", "must be an array"),
    ],
)
def test_bundle_fields(signed, sig_tamper, edit, reason: str, fragment: str) -> None:
    bundle, _, pub = signed
    refused(sig_tamper(bundle, edit), {"k": pub}, reason, fragment)


def test_legacy_public_key_fields_are_accepted_but_never_trusted(signed, sig_tamper, sig_keys) -> None:
    bundle, _, pub = signed
    other = sig_keys["p384"][1]
    legacy = sig_tamper(
        bundle,
        lambda d: d["verificationMaterial"]["publicKey"].update(
            rawBytes=base64.b64encode(other).decode(), keyDetails="PKIX_ECDSA_P384_SHA_384"
        ),
    )
    assert signing.verify_bundle(legacy, {"k": pub}).key_name == "k"
    refused(legacy, {"other": other}, "UntrustedKey")


def _payload(bundle: bytes) -> str:
    return json.loads(bundle)["dsseEnvelope"]["payload"]


@pytest.fixture
def padded(signed, sig_resign) -> tuple[bytes, bytes]:
    """A bundle whose payload and signature base64 both end in '=' padding."""
    bundle, priv, pub = signed
    payload = base64.b64decode(_payload(bundle))
    for extra in range(200):  # trailing JSON whitespace changes the length, and the signature is random
        raw = payload + b" " * extra
        if len(raw) % 3 == 0:
            continue
        candidate = sig_resign(bundle, priv, raw=raw)
        doc = json.loads(candidate)
        sig = doc["dsseEnvelope"]["signatures"][0]["sig"]
        if sig.endswith("=") and _payload(candidate).endswith("="):
            assert signing.verify_bundle(candidate, {"k": pub})
            return candidate, pub
    raise AssertionError("could not build a padded bundle")


@pytest.mark.parametrize("field", ["payload", "sig"])
@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s.rstrip("="),  # missing padding
        lambda s: "-" + s[1:],  # URL-safe alphabet
        lambda s: s[:10] + "_" + s[11:],
        lambda s: s[:20] + "\n" + s[20:],  # whitespace
        lambda s: s[:20] + " " + s[20:],
        lambda s: s + "=",  # extra padding
        lambda s: "=" + s,
        lambda s: s[:-4] + "*" + s[-3:],  # not base64 at all
    ],
)
def test_non_canonical_base64(padded, sig_tamper, field: str, mangle) -> None:
    bundle, pub = padded

    def edit(d):
        holder = d["dsseEnvelope"] if field == "payload" else d["dsseEnvelope"]["signatures"][0]
        mangled = mangle(holder[field])
        assert mangled != holder[field]
        holder[field] = mangled

    refused(sig_tamper(bundle, edit), {"k": pub}, "MalformedBundle", "base64")


def test_non_zero_padding_bits_are_refused(signed, sig_tamper) -> None:
    bundle, _, pub = signed
    sig = json.loads(bundle)["dsseEnvelope"]["signatures"][0]["sig"]
    raw = base64.b64decode(sig)
    # find an encoding of the same bytes with non-zero trailing bits: only possible when len % 3 != 0
    body = raw + b"x" if len(raw) % 3 == 0 else raw
    canonical = base64.b64encode(body).decode()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    stripped = canonical.rstrip("=")
    last = stripped[-1]
    twin = stripped[:-1] + alphabet[alphabet.index(last) + 1] + canonical[len(stripped) :]
    assert base64.b64decode(twin) == body and twin != canonical
    refused(
        sig_tamper(bundle, lambda d: d["dsseEnvelope"]["signatures"][0].update(sig=twin)),
        {"k": pub},
        "MalformedBundle",
        "not canonical base64",
    )


def test_size_limits(signed, monkeypatch) -> None:
    bundle, _, pub = signed
    monkeypatch.setattr(_bundle, "MAX_BUNDLE_BYTES", len(bundle) - 1)
    refused(bundle, {"k": pub}, "MalformedBundle", "bytes, more than")
    monkeypatch.setattr(_bundle, "MAX_BUNDLE_BYTES", 10**9)
    monkeypatch.setattr(_bundle, "MAX_RESOURCES", 7)
    refused(bundle, {"k": pub}, "MalformedBundle", "lists 8 resources (at most 7)")


# ------------------------------------------------------------------------------------ statement layer


@pytest.mark.parametrize(
    ("edit", "reason", "fragment"),
    [
        (
            lambda st: st.update(_type="https://in-toto.io/Statement/v0.1"),
            "MalformedBundle",
            "statement._type",
        ),
        (
            lambda st: st.update(predicateType="https://slsa.dev/provenance/v1"),
            "MalformedBundle",
            "statement.predicateType",
        ),
        (
            lambda st: st.update(predicateType="https://model_signing/Digests/v0.1"),
            "MalformedBundle",
            "pre-1.0",
        ),
        (lambda st: st.update(extra=True), "MalformedBundle", "unknown field statement.extra"),
        (lambda st: st["subject"].append(st["subject"][0]), "MalformedBundle", "holds 2 subjects"),
        (
            lambda st: st["subject"][0]["digest"].update(sha512="00"),
            "MalformedBundle",
            "unknown field statement.subject[0].digest.sha512",
        ),
        (
            lambda st: st["subject"][0].update(uri="https://x"),
            "MalformedBundle",
            "unknown field statement.subject[0].uri",
        ),
        (lambda st: st.pop("predicate"), "MalformedBundle", "missing field statement.predicate"),
        (lambda st: st["predicate"].pop("resources"), "MalformedBundle", "missing field predicate.resources"),
        (
            lambda st: st["predicate"]["serialization"].update(hash_type="blake3"),
            "UnsupportedAlgorithm",
            "blake3",
        ),
        (
            lambda st: st["predicate"]["serialization"].update(method="tensors"),
            "UnsupportedAlgorithm",
            "tensors",
        ),
        (lambda st: st["predicate"]["serialization"].pop("method"), "MalformedBundle", "method"),
        (
            lambda st: st["predicate"]["serialization"].update(allow_symlinks="false"),
            "MalformedBundle",
            "allow_symlinks must be a boolean",
        ),
        (
            lambda st: st["predicate"]["serialization"].update(chunk_size=4),
            "MalformedBundle",
            "unknown field predicate.serialization.chunk_size",
        ),
        (
            lambda st: st["predicate"]["serialization"].update(shard_size=10),
            "MalformedBundle",
            "unknown field predicate.serialization.shard_size",
        ),
        (
            lambda st: st["predicate"]["serialization"].update(ignore_paths=["../outside"]),
            "UnsafePath",
            "'..'",
        ),
        (lambda st: st["predicate"]["serialization"].update(ignore_paths=["/etc"]), "UnsafePath", "absolute"),
        (lambda st: st["predicate"]["serialization"].update(ignore_paths=["."]), "UnsafePath", "normalised"),
        (
            lambda st: st["predicate"]["serialization"].update(ignore_paths=["config.json"]),
            "MalformedBundle",
            "lies under one of the signature's ignore_paths",
        ),
        (
            lambda st: st["predicate"]["serialization"].update(ignore_paths=["sub"]),
            "MalformedBundle",
            "'sub/dir/tokenizer.txt' lies under",
        ),
        (lambda st: st["predicate"].update(resources=[]), "EmptyModel", "covers no file"),
        (
            lambda st: st["predicate"].update(resources={}),
            "MalformedBundle",
            "predicate.resources must be an array",
        ),
    ],
)
def test_statement_fields(signed, sig_resign, edit, reason: str, fragment: str) -> None:
    bundle, priv, pub = signed
    refused(sig_resign(bundle, priv, edit), {"k": pub}, reason, fragment)


def _set_resource(index: int, **changes):
    def edit(st):
        st["predicate"]["resources"][index].update(changes)

    return edit


@pytest.mark.parametrize(
    ("edit", "reason", "fragment"),
    [
        (_set_resource(0, name=""), "UnsafePath", "is empty"),
        (_set_resource(0, name="/etc/passwd"), "UnsafePath", "absolute"),
        (_set_resource(0, name="../../etc/passwd"), "UnsafePath", "'..'"),
        (_set_resource(0, name="sub/../../x"), "UnsafePath", "'..'"),
        (_set_resource(0, name="a//b"), "UnsafePath", "normalised"),
        (_set_resource(0, name="./A"), "UnsafePath", "normalised"),
        (_set_resource(0, name="dir/"), "UnsafePath", "normalised"),
        (_set_resource(0, name="a\x00b"), "UnsafePath", "NUL"),
        (_set_resource(0, name="x" * 5000), "UnsafePath", "characters long"),
        (_set_resource(0, name=7), "MalformedBundle", "name must be a string"),
        (_set_resource(1, name="A"), "MalformedBundle", "listed twice"),
        (_set_resource(0, name="a"), "MalformedBundle", "both as a file and as a directory"),
        (_set_resource(0, algorithm="sha512"), "MalformedBundle", "algorithm is 'sha512'"),
        (_set_resource(0, digest="AB" * 32), "MalformedBundle", "64 lowercase hex digits"),
        (_set_resource(0, digest="ab" * 31), "MalformedBundle", "64 lowercase hex digits"),
        (_set_resource(0, digest="zz" * 32), "MalformedBundle", "64 lowercase hex digits"),
        (_set_resource(0, extra=1), "MalformedBundle", "unknown field predicate.resources[0].extra"),
        (
            lambda st: st["predicate"]["resources"][0].pop("digest"),
            "MalformedBundle",
            "missing field predicate.resources[0].digest",
        ),
        (
            lambda st: st["predicate"]["resources"].append("x"),
            "MalformedBundle",
            "predicate.resources[8] must be an object",
        ),
    ],
)
def test_resources(signed, sig_resign, edit, reason: str, fragment: str) -> None:
    bundle, priv, pub = signed
    refused(sig_resign(bundle, priv, edit), {"k": pub}, reason, fragment)


def test_subject_digest_must_match_the_resources(signed, sig_resign) -> None:
    bundle, priv, pub = signed

    def swap(st):  # listed order matters: swapping two resources changes the digest
        r = st["predicate"]["resources"]
        r[0], r[1] = r[1], r[0]

    err = refused(
        sig_resign(bundle, priv, swap, fix_digest=False), {"k": pub}, "DigestMismatch", "hash to sha256:"
    )
    assert statement_of(bundle)["subject"][0]["digest"]["sha256"] in err.message
    # with the digest recomputed, another order is a valid (different) subject
    v = signing.verify_bundle(sig_resign(bundle, priv, swap), {"k": pub})
    assert v.subject_digest != signing.verify_bundle(bundle, {"k": pub}).subject_digest
    bad = sig_resign(
        bundle, priv, lambda st: st["subject"][0]["digest"].update(sha256="0" * 64), fix_digest=False
    )
    refused(bad, {"k": pub}, "DigestMismatch")
    upper = sig_resign(
        bundle, priv, lambda st: st["subject"][0]["digest"].update(sha256="A" * 64), fix_digest=False
    )
    refused(upper, {"k": pub}, "MalformedBundle", "64 lowercase hex digits")


@pytest.mark.parametrize(
    ("shard_size", "fragment"),
    [
        (1000.5, "not an integer"),
        (0, "out of range"),
        (-5, "out of range"),
        (True, "must be a number"),
        ("1000", "must be a number"),
        (2**60, "out of range"),
    ],
)
def test_bad_shard_size(sharded, sig_resign, shard_size, fragment: str) -> None:
    bundle, priv, pub = sharded
    edit = lambda st: st["predicate"]["serialization"].update(shard_size=shard_size)  # noqa: E731
    refused(sig_resign(bundle, priv, edit), {"k": pub}, "MalformedBundle", fragment)


def _shard_names(st) -> list[str]:
    return [r["name"] for r in st["predicate"]["resources"]]


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("weights.bin:1000:2000", "weights.bin:1000:1999", "only the last shard may be shorter"),
        ("weights.bin:1000:2000", "weights.bin:01000:2000", "not a shard name"),
        ("weights.bin:1000:2000", "weights.bin:+1000:2000", "not a shard name"),
        ("weights.bin:1000:2000", "weights.bin:1000", "not a shard name"),
        ("weights.bin:1000:2000", "weights.bin:1000:1000", "not a shard of at most 1000 bytes"),
        ("weights.bin:1000:2000", "weights.bin:1000:2500", "not a shard of at most 1000 bytes"),
        ("weights.bin:1000:2000", "weights.bin:1100:2100", "do not tile the file"),
        ("weights.bin:0:1000", "weights.bin:5:1005", "do not tile the file"),
        ("weights.bin:0:1000", "/abs:0:1000", "absolute"),
        ("weights.bin:0:1000", "../x:0:1000", "'..'"),
        ("weights.bin:0:1000", ":0:1000", "is empty"),
    ],
)
def test_bad_shards(sharded, sig_resign, old: str, new: str, fragment: str) -> None:
    bundle, priv, pub = sharded

    def edit(st):
        names = _shard_names(st)
        st["predicate"]["resources"][names.index(old)]["name"] = new

    err = refused(
        sig_resign(bundle, priv, edit),
        {"k": pub},
        "MalformedBundle"
        if "'..'" not in fragment and "absolute" not in fragment and "empty" not in fragment
        else "UnsafePath",
        fragment,
    )
    assert err.message


def test_duplicate_shard(sharded, sig_resign) -> None:
    bundle, priv, pub = sharded
    edit = lambda st: st["predicate"]["resources"].append(dict(st["predicate"]["resources"][0]))  # noqa: E731
    refused(sig_resign(bundle, priv, edit), {"k": pub}, "MalformedBundle", "listed twice")


def test_shard_names_with_colons_in_the_path(tmp_path: Path, sig_keys) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (root / "odd:name:1").write_bytes(b"x" * 2500)
    priv, pub = sig_keys["p256"]
    v = signing.verify_bundle(signing.sign_model_dir(root, priv, shard_size=1000), {"k": pub})
    assert [r.name for r in v.resources] == [
        "odd:name:1:0:1000",
        "odd:name:1:1000:2000",
        "odd:name:1:2000:2500",
    ]
    assert v.files == ("odd:name:1",)
    signing.verify_model_dir(root, v)


def test_nothing_but_signature_error_escapes(signed, sig_keys) -> None:
    """Random corruption of a valid bundle: always a SignatureError, never another exception."""
    import random

    bundle, _, pub = signed
    rng = random.Random(1234)
    reasons = set()
    for _ in range(300):
        data = bytearray(bundle)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            signing.verify_bundle(bytes(data), {"k": pub})
        except SignatureError as exc:
            reasons.add(exc.reason)
        else:  # a flip inside e.g. the unused keyid or hint still verifies; that is fine
            pass
    assert reasons <= {"MalformedBundle", "BadSignature", "UntrustedKey"}
    assert "MalformedBundle" in reasons and "BadSignature" in reasons


@pytest.mark.parametrize("fixture", ["signed", "sharded"])
def test_corrupted_but_signed_statements_only_raise_signature_errors(fixture, request, sig_resign) -> None:
    """The statement parser sees arbitrary (validly signed) bytes: SignatureError or success, nothing else."""
    import random

    bundle, priv, pub = request.getfixturevalue(fixture)
    payload = base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"])
    rng = random.Random(99)
    reasons = set()
    for _ in range(150):
        data = bytearray(payload)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] = rng.choice(b'{}[]":,0123456789abcdef/.\\ \x00\xff')
        try:
            signing.verify_bundle(sig_resign(bundle, priv, raw=bytes(data)), {"k": pub})
        except SignatureError as exc:
            reasons.add(exc.reason)
    assert "MalformedBundle" in reasons
    assert reasons <= {"MalformedBundle", "DigestMismatch", "UnsafePath", "UnsupportedAlgorithm", "EmptyModel"}
