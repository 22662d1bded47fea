"""version_status and verification_of: what a ModelVersion's status says after verification, for key and
certificate signatures made on real files, and how the revocation index reads it back."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import pytest
from tests.unit.pki import Pki, der

from modelhub.api.modelversion import ModelVersionStatus
from modelhub.domain import signing
from modelhub.domain.revocation import VersionFacts, VersionIndex, first_covering
from modelhub.domain.versions import Revoked, Verification, WorkloadState, verification_of, version_status

NOW, LATER = "2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z"


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def mv(status: dict | None = None, digest: str = "") -> dict:
    obj = {
        "metadata": {"namespace": "ml", "name": "m-1-0-0", "generation": 2},
        "spec": {"model": "m", "version": "1.0.0", "artifact": {"uri": "file:///m", "digest": digest}},
    }
    if status is not None:
        obj["status"] = status
    return obj


def status_of(obj: dict, verification: Verification, *, now: str = NOW, revoked: Revoked | None = None,
              require_approval: bool = False) -> dict:
    return version_status(obj, now=now, verification=verification, require_approval=require_approval, approval=None,
                          revoked=revoked, workload=WorkloadState(), promoted=False)


def cond(status: dict, kind: str) -> dict:
    return next(c for c in status["conditions"] if c["type"] == kind)


def stored(v):
    """What the API server keeps of a merge patch: nulls removed."""
    if isinstance(v, dict):
        return {k: stored(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [stored(x) for x in v]
    return v


def valid(status: dict) -> ModelVersionStatus:
    """The status fits the CRD's types."""
    return ModelVersionStatus.model_validate(stored(status))


@pytest.fixture
def cert_signed(sig_model: Path, pki: Pki):
    s = pki.signer()
    bundle = signing.sign_model_dir(sig_model, s.key_pem, signing_certificate=s.pem,
                                    certificate_chain=[pki.intermediate.pem])
    return signing.verify_bundle(bundle, None, trusted_cas={"pki/root.pem": pki.root.pem}), s


@pytest.fixture
def key_signed(sig_model: Path, sig_keys):
    priv, pub = sig_keys["p256"]
    return signing.verify_bundle(signing.sign_model_dir(sig_model, priv), {"signers/k": pub})


def test_key_signature_status(key_signed) -> None:
    v = verification_of(key_signed, key_signed.subject_digest)
    assert v.ok and v.reason == "Verified" and "signers/k" in v.message
    st = status_of(mv(digest=key_signed.subject_digest), v)
    assert st["verified"] == {
        "digest": key_signed.subject_digest, "keyName": "signers/k", "keyFingerprint": key_signed.key_fingerprint,
        "files": 8, "verifiedAt": NOW,
    }
    assert cond(st, "SignatureVerified")["status"] == "True"
    valid(st)


def test_certificate_signature_status(cert_signed, pki: Pki) -> None:
    verified, s = cert_signed
    v = verification_of(verified, verified.subject_digest)
    assert v.ok and "certificate CN=ml-release,O=Example Corp [email:ml-team@example.com" in v.message
    assert "trusted CA pki/root.pem" in v.message
    st = status_of(mv(digest=verified.subject_digest), v)
    leaf_fp = hashlib.sha256(der(s.cert)).hexdigest()
    assert st["verified"] == {
        "digest": verified.subject_digest,
        "keyFingerprint": signing.key_fingerprint(signing.public_key_pem(s.key_pem)),
        "certificateSubject": "CN=ml-release,O=Example Corp",
        "certificateSans": ["email:ml-team@example.com", "uri:https://ci.example.com/ml"],
        "certificateFingerprint": leaf_fp,
        "certificateAuthority": "pki/root.pem",
        "certificateAuthorityFingerprints": [hashlib.sha256(der(pki.intermediate.cert)).hexdigest(),
                                             hashlib.sha256(der(pki.root.cert)).hexdigest()],
        "files": 8,
        "verifiedAt": NOW,
    }
    parsed = valid(st)
    assert parsed.verified.certificate_fingerprint == leaf_fp


def test_pinned_digest_mismatch_is_refused(cert_signed) -> None:
    verified, _ = cert_signed
    v = verification_of(verified, "sha256:" + "0" * 64)
    assert not v.ok and v.reason == "DigestMismatch"
    st = status_of(mv(digest="sha256:" + "0" * 64), v)
    assert "verified" not in st
    assert cond(st, "SignatureVerified")["reason"] == "DigestMismatch"
    assert cond(st, "Ready")["status"] == "False"


def test_verified_at_is_kept_while_the_signer_is_the_same(cert_signed) -> None:
    verified, _ = cert_signed
    v = verification_of(verified, verified.subject_digest)
    first = status_of(mv(digest=verified.subject_digest), v)
    again = status_of(mv(first, verified.subject_digest), v, now=LATER)
    assert again["verified"]["verifiedAt"] == NOW
    assert again["verified"] == first["verified"]


def test_switching_signature_method_nulls_out_the_old_fields(cert_signed, key_signed) -> None:
    """status is merge-patched: fields of the previous signer must be named with null to go away."""
    verified, _ = cert_signed
    assert verified.subject_digest == key_signed.subject_digest  # the same files
    by_cert = status_of(mv(digest=verified.subject_digest), verification_of(verified, verified.subject_digest))
    by_key = status_of(mv(stored(by_cert), verified.subject_digest), verification_of(key_signed, key_signed.subject_digest),
                       now=LATER)
    assert by_key["verified"]["certificateFingerprint"] is None
    assert by_key["verified"]["certificateAuthorityFingerprints"] is None
    assert by_key["verified"]["keyName"] == "signers/k"
    assert by_key["verified"]["verifiedAt"] == LATER  # another signer: verified anew
    # and back: keyName goes away
    by_cert2 = status_of(mv(stored(by_key), verified.subject_digest), verification_of(verified, verified.subject_digest))
    assert by_cert2["verified"]["keyName"] is None
    assert by_cert2["verified"]["certificateFingerprint"]


def test_failed_verification_drops_verified_and_blocks_serving(cert_signed) -> None:
    verified, _ = cert_signed
    ok = status_of(mv(digest=verified.subject_digest), verification_of(verified, verified.subject_digest))
    failed = status_of(mv(ok, verified.subject_digest),
                       Verification(False, "UntrustedCertificate", "does not chain to a trusted CA"), now=LATER)
    assert "verified" not in failed
    assert cond(failed, "SignatureVerified")["reason"] == "UntrustedCertificate"
    assert cond(failed, "Available")["reason"] == "UntrustedCertificate"


def test_revocation_by_certificate_and_by_ca_reads_the_status(cert_signed, key_signed, pki: Pki) -> None:
    verified, s = cert_signed
    cert_obj = mv(digest=verified.subject_digest)
    cert_obj["status"] = status_of(cert_obj, verification_of(verified, verified.subject_digest))
    key_obj = mv(digest=key_signed.subject_digest)
    key_obj["metadata"] = {**key_obj["metadata"], "name": "k-1-0-0"}
    key_obj["status"] = status_of(key_obj, verification_of(key_signed, key_signed.subject_digest))
    idx = VersionIndex()
    for o in (cert_obj, key_obj):
        idx.upsert(VersionFacts.from_object(o))
    leaf_fp = hashlib.sha256(der(s.cert)).hexdigest()
    inter_fp = hashlib.sha256(der(pki.intermediate.cert)).hexdigest()
    root_fp = hashlib.sha256(der(pki.root.cert)).hexdigest()
    assert idx.match({"certificateFingerprints": [leaf_fp]}) == {("ml", "m-1-0-0")}
    assert idx.match({"certificateAuthorities": [inter_fp]}) == {("ml", "m-1-0-0")}
    assert idx.match({"certificateAuthorities": [root_fp]}) == {("ml", "m-1-0-0")}
    assert idx.match({"certificateAuthorities": [hashlib.sha256(der(Pki().root.cert)).hexdigest()]}) == set()
    # the certificate's key fingerprint is a key fingerprint like any other
    assert idx.match({"keyFingerprints": [verified.key_fingerprint]}) == {("ml", "m-1-0-0")}
    rev = {"metadata": {"name": "pki-compromise"}, "spec": {"match": {"certificateAuthorities": [inter_fp]}}}
    hit = first_covering([rev], VersionFacts.from_object(cert_obj))
    assert hit is not None and hit[1].startswith("certificate authority")
    assert first_covering([rev], VersionFacts.from_object(key_obj)) is None
    rev = {"metadata": {"name": "leaked-cert"}, "spec": {"match": {"certificateFingerprints": [leaf_fp]}}}
    assert first_covering([rev], VersionFacts.from_object(cert_obj))[1].startswith("signing certificate")
    # revoked: the status says by whom
    st = status_of(cert_obj, verification_of(verified, verified.subject_digest),
                   revoked=Revoked("leaked-cert", "key left on a laptop", LATER, "signing certificate"))
    assert cond(st, "Revoked")["status"] == "True" and "leaked-cert" in cond(st, "Revoked")["message"]
    idx.remove(("ml", "m-1-0-0"))
    assert not idx.by_certificate and not idx.by_ca


# --- when a Deployment's pods are asked why they do not serve ---------------------------------------------------
_NOON = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.UTC)


def _moved(at: str, replicas: int | None = 1) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [{"type": "Progressing", "status": "True", "lastUpdateTime": at}]}
    if replicas is not None:
        status["replicas"] = replicas  # the pods its controller counts
    return {"status": status}


@pytest.mark.parametrize(("deployment", "asked", "expected"), [
    (_moved("2026-12-01T11:59:55Z"), None, (False, False, 5.0)),  # moved 5 s ago: asked in 5 s
    (_moved("2026-12-01T11:59:45Z"), None, (True, False, 30.0)),  # stalled 15 s, never asked: ask
    ({"metadata": {"creationTimestamp": "2026-12-01T11:59:59Z"}, "status": {"replicas": 1}}, None,
     (False, False, 9.0)),
    ({"metadata": {"creationTimestamp": "2026-12-01T11:00:00Z"}, "status": {"replicas": 1}}, None,
     (True, False, 30.0)),
    (_moved("garbage"), None, (True, False, 30.0)),  # unknown progress: stalled
    ({"status": {"replicas": 2}}, None, (True, False, 30.0)),
    ({"status": {"conditions": "not a list", "replicas": 1}}, None, (True, False, 30.0)),
    # stalled, but its controller counts no pod yet (it lags, or a quota refuses them): nothing to ask, look in 10 s
    (_moved("2026-12-01T11:59:45Z", replicas=None), None, (False, False, 10.0)),
    (_moved("2026-12-01T11:59:45Z", replicas=0), None, (False, False, 10.0)),
    ({"metadata": {"creationTimestamp": "2026-12-01T11:00:00Z"}, "status": {}}, None, (False, False, 10.0)),
    ({}, None, (False, False, 10.0)),
    ({"status": {"replicas": "1"}}, None, (False, False, 10.0)),  # not a count
    (_moved("2026-12-01T11:59:55Z", replicas=None), None, (False, False, 5.0)),  # not due either way
    # asked 10 s ago, after its last progress: that answer holds for 20 s more
    (_moved("2026-12-01T11:59:00Z"), "2026-12-01T11:59:50Z", (False, True, 20.0)),
    ({"status": {"replicas": 1}}, "2026-12-01T11:59:50Z", (False, True, 20.0)),  # no progress time: same
    (_moved("2026-12-01T11:59:00Z"), "2026-12-01T11:59:29Z", (True, False, 30.0)),  # 31 s ago: ask again
    # it moved after the last answer: that answer is stale, and it is asked once it stalls again
    (_moved("2026-12-01T11:59:58Z"), "2026-12-01T11:59:50Z", (False, False, 8.0)),
    (_moved("2026-12-01T11:59:59Z"), "2026-12-01T11:59:50Z", (False, False, 9.0)),
])
def test_pods_are_asked_once_a_deployment_with_pods_stalls_and_then_at_most_every_30s(
        deployment: dict[str, Any], asked: str | None, expected: tuple[bool, bool, float]) -> None:
    from modelhub.domain import requeue
    from modelhub.domain.versions import pods_question

    q = pods_question(deployment, _NOON, requeue.parse_time(asked) if asked else None)
    assert (q.ask, q.reuse, q.again_in) == pytest.approx(expected)


def test_pods_question_looks_again_no_sooner_than_a_second() -> None:
    from modelhub.domain.versions import pods_question

    q = pods_question(_moved("2026-12-01T11:59:50Z"), _NOON - dt.timedelta(seconds=0.5), None)  # due in 0.5 s
    assert not q.ask and q.again_in == 1.0
