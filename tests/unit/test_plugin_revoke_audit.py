"""The pure parts of `kubectl modelhub revoke` and `audit`: the Revocation built from flags (validated by the API
types, fingerprints computed from real PEM files), the enforcement report, and the audit timeline."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from modelhub.cli import kubectl as plugin
from modelhub.cli.main import build_parser

DIGEST = "sha256:" + "ab" * 32


def args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["revoke", *argv])


def pem(tmp_path: Path) -> tuple[Path, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    text = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    path = tmp_path / "release.pub"
    path.write_bytes(text)
    return path, hashlib.sha256(text).hexdigest()


def test_revocation_from_every_kind_of_flag(tmp_path: Path) -> None:
    path, fpr = pem(tmp_path)
    m = plugin.revocation_manifest(args(
        "--reason", "CVE-2026-1: pickle payload", "--digest", DIGEST, "--digest", DIGEST, "--public-key", str(path),
        "--key-fingerprint", "cd" * 32, "--model", "ml-prod/sentiment", "--model", "toxicity",
        "--versions", ">=1.2.0,<1.3.1", "--dataset-digest", "sha256:" + "ef" * 32,
    ))
    assert m["kind"] == "Revocation" and m["metadata"]["name"].startswith("revoke-")
    match = m["spec"]["match"]
    assert match["digests"] == [DIGEST]  # duplicates dropped
    assert match["keyFingerprints"] == ["cd" * 32, fpr]  # the PEM file's sha256, as `modelhub keygen` prints
    assert match["models"] == [
        {"name": "sentiment", "namespace": "ml-prod", "versions": ">=1.2.0,<1.3.1"},
        {"name": "toxicity", "versions": ">=1.2.0,<1.3.1"},  # no namespace: every namespace
    ]
    assert match["datasetDigests"] == ["sha256:" + "ef" * 32]
    # the same flags give the same name (re-running waits for the existing Revocation)
    again = plugin.revocation_manifest(args(
        "--reason", "other words", "--digest", DIGEST, "--public-key", str(path), "--key-fingerprint", "cd" * 32,
        "--model", "ml-prod/sentiment", "--model", "toxicity", "--versions", ">=1.2.0,<1.3.1",
        "--dataset-digest", "sha256:" + "ef" * 32,
    ))
    assert again["metadata"]["name"] == m["metadata"]["name"]
    assert plugin.revocation_manifest(args("mine", "--reason", "r", "--digest", DIGEST))["metadata"]["name"] == "mine"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--reason", "r"], "nothing to revoke"),
        (["--reason", "r", "--versions", ">=1.0.0"], "--versions needs --model"),
        (["--reason", "r", "--digest", "sha256:abc"], "spec.match.digests[0]"),
        (["--reason", "r", "--key-fingerprint", "xyz"], "spec.match.keyFingerprints[0]"),
        (["--reason", "r", "--model", "ns/Not_A_Name"], "spec.match.models[0].name"),
        (["--reason", "r", "--model", "m", "--versions", "about 1.2"], "spec.match.models[0].versions"),
        (["--reason", "", "--digest", DIGEST], "spec.reason"),
        (["--reason", "r", "--public-key", "/does/not/exist.pub"], "cannot read public key"),
    ],
)
def test_bad_flags_are_one_clear_error(argv: list[str], message: str) -> None:
    with pytest.raises(plugin.CommandError) as exc:
        plugin.revocation_manifest(args(*argv))
    assert message in exc.value.message and "\n" not in exc.value.message


def test_a_file_that_is_not_a_key(tmp_path: Path) -> None:
    bogus = tmp_path / "key.pub"
    bogus.write_text("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
    with pytest.raises(plugin.CommandError, match="not a usable public key"):
        plugin.revocation_manifest(args("--reason", "r", "--public-key", str(bogus)))
    big = tmp_path / "big.pub"
    big.write_bytes(b"x" * (70 * 1024))
    with pytest.raises(plugin.CommandError, match="larger than 64 KiB"):
        plugin.revocation_manifest(args("--reason", "r", "--public-key", str(big)))


def test_enforcement_report_lists_what_was_torn_down() -> None:
    obj = {"metadata": {"name": "cve-1"}, "status": {
        "matchedVersions": 3, "workloadsTornDown": 2, "enforcementSeconds": 0.84, "affectedTotal": 3,
        "affected": [{"namespace": "a", "name": "m-1-0-0", "model": "m", "version": "1.0.0"},
                     {"namespace": "b", "name": "m-1-0-0", "model": "m", "version": "1.0.0"}]}}
    lines = plugin.enforcement_report(obj)
    assert lines[0] == "revocation.modelhub.dev/cve-1 enforced in 0.84s: 3 versions revoked, 2 workloads torn down"
    assert lines[1:3] == ["  a/m-1-0-0  m 1.0.0", "  b/m-1-0-0  m 1.0.0"]
    assert lines[3] == "  ... and 1 more"


def _cond(t: str, status: str, reason: str, at: str, message: str = "") -> dict:
    return {"type": t, "status": status, "reason": reason, "message": message, "lastTransitionTime": at}


def test_audit_timeline_from_status_history_revocations_and_events() -> None:
    model = {
        "metadata": {"name": "clf", "namespace": "ml", "creationTimestamp": "2026-03-01T09:00:00Z"},
        "status": {"history": [
            {"at": "2026-03-01T10:00:00Z", "stable": "1.0.0", "canaryWeight": 0, "reason": "Promoted"},
            {"at": "2026-03-01T11:00:00Z", "stable": "1.0.0", "canary": "1.1.0", "canaryWeight": 20,
             "reason": "CanaryStarted"},
            {"at": "2026-03-01T12:00:05Z", "stable": "1.0.0", "canaryWeight": 0, "reason": "CanaryStopped"},
        ]},
    }
    v1 = {"metadata": {"name": "clf-1-0-0", "namespace": "ml", "creationTimestamp": "2026-03-01T09:10:00Z"},
          "spec": {"model": "clf", "version": "1.0.0"},
          "status": {"conditions": [_cond("SignatureVerified", "True", "Verified", "2026-03-01T09:10:02Z")],
                     "verified": {"keyName": "release", "keyFingerprint": "ab" * 32, "verifiedAt": "2026-03-01T09:10:02Z"},
                     "approval": {"approvedBy": "alice@example.com", "approvedAt": "2026-03-01T09:30:00Z"}}}
    v2 = {"metadata": {"name": "clf-1-1-0", "namespace": "ml", "creationTimestamp": "2026-03-01T10:30:00Z"},
          "spec": {"model": "clf", "version": "1.1.0"},
          "status": {"conditions": [_cond("SignatureVerified", "True", "Verified", "2026-03-01T10:30:01Z")],
                     "revocation": {"name": "cve-1", "reason": "pickle payload", "at": "2026-03-01T12:00:01Z"}}}
    revocations = [
        {"metadata": {"name": "cve-1", "creationTimestamp": "2026-03-01T12:00:00Z"}, "spec": {"reason": "pickle payload"},
         "status": {"affected": [{"namespace": "ml", "name": "clf-1-1-0", "model": "clf", "version": "1.1.0"}],
                    "enforcedAt": "2026-03-01T12:00:01Z", "enforcementSeconds": 0.9, "workloadsTornDown": 1}},
        {"metadata": {"name": "unrelated", "creationTimestamp": "2026-03-01T12:30:00Z"}, "spec": {"reason": "x"},
         "status": {"affected": [{"namespace": "other", "name": "clf-1-1-0"}]}},
    ]
    events = [
        {"eventTime": "2026-03-01T12:00:02.123456Z", "type": "Warning", "reason": "Revoked", "note": "Revoked=True: ...",
         "regarding": {"kind": "ModelVersion", "name": "clf-1-1-0"}},
        {"eventTime": "2026-03-01T12:00:03.000000Z", "type": "Normal", "reason": "Promoted", "note": "other model",
         "regarding": {"kind": "Model", "name": "someone-else"}},
    ]
    timeline = plugin.audit_entries(model, [v1, v2], events, revocations)
    whats = [(e["time"], e["object"], e["what"]) for e in timeline]
    times = [t for t, _, _ in whats]
    assert times == sorted(times)
    assert ("2026-03-01T09:30:00Z", "modelversion/clf-1-0-0", "approved by alice@example.com") in whats
    assert ("2026-03-01T10:00:00Z", "model/clf", "Promoted: stable 1.0.0") in whats
    assert ("2026-03-01T11:00:00Z", "model/clf", "CanaryStarted: stable 1.0.0, canary 1.1.0 at 20%") in whats
    assert ("2026-03-01T12:00:00Z", "revocation/cve-1", "created: pickle payload (covers 1.1.0)") in whats
    assert ("2026-03-01T12:00:01Z", "modelversion/clf-1-1-0", "revoked by Revocation cve-1: pickle payload") in whats
    assert ("2026-03-01T12:00:01Z", "revocation/cve-1", "enforced in 0.9s: 1 workloads torn down") in whats
    assert ("2026-03-01T12:00:02Z", "modelversion/clf-1-1-0", "Warning Revoked: Revoked=True: ...") in whats
    assert not any("unrelated" in o or "someone-else" in o for _, o, _ in whats)
    assert timeline[0]["what"] == "Model created"


def test_audit_orders_one_second_as_cause_then_effect() -> None:
    at = "2026-03-01T12:00:00Z"
    model = {"metadata": {"name": "clf", "namespace": "ml", "creationTimestamp": "2026-03-01T09:00:00Z"},
             "status": {"history": [{"at": at, "stable": "1.0.0", "canaryWeight": 0, "reason": "FellBack"}]}}
    v = {"metadata": {"name": "clf-1-1-0", "namespace": "ml", "creationTimestamp": "2026-03-01T09:00:00Z"},
         "spec": {"model": "clf", "version": "1.1.0"},
         "status": {"revocation": {"name": "r", "reason": "bad", "at": at}}}
    rev = {"metadata": {"name": "r", "creationTimestamp": at}, "spec": {"reason": "bad"},
           "status": {"affected": [{"namespace": "ml", "name": "clf-1-1-0", "version": "1.1.0"}], "enforcedAt": at,
                      "enforcementSeconds": 0.4, "workloadsTornDown": 1}}
    events = [{"eventTime": at + "", "type": "Warning", "reason": "FellBack", "note": "fell back",
               "regarding": {"kind": "Model", "name": "clf"}}]
    whats = [e["what"] for e in plugin.audit_entries(model, [v], events, [rev]) if e["time"] == at]
    assert whats[0] == "created: bad (covers 1.1.0)"
    assert whats[1] == "revoked by Revocation r: bad"
    assert whats[-1] == "Warning FellBack: fell back"
