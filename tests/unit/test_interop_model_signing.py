"""Interoperability with the real `model_signing` package (1.1.x): signatures travel both ways, and both
tools refuse the same tampering.

model_signing's CLI (`sign key`) only signs per file with sha256; its Python API covers shards and blake2, so
the matrix uses the API and a few CLI runs cover the command line. model_signing's verifier, when left to
guess the hashing configuration from the signature, cannot handle blake2b (it records 'blake2b' but only
accepts 'blake2') nor its own sharded signatures (it records shard_size as a double): the API verifications
below give it the hashing configuration explicitly, as its own tests do.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modelhub.domain import signing

model_signing = pytest.importorskip("model_signing")

pytestmark = pytest.mark.interop

CURVES = ("p256", "p384", "p521")
CONFIGS = [
    pytest.param("files", "sha256", id="files-sha256"),
    pytest.param("files", "blake2b", id="files-blake2b"),
    pytest.param("shards", "sha256", id="shards-sha256"),
    pytest.param("shards", "blake2b", id="shards-blake2b"),
]
SHARD = 1000


@pytest.fixture
def key_files(tmp_path: Path, sig_keys) -> dict[str, tuple[Path, Path, bytes]]:
    """curve -> (private key path, public key path, public PEM)."""
    out = {}
    for curve, (priv, pub) in sig_keys.items():
        p = tmp_path / f"{curve}.key"
        p.write_bytes(priv)
        q = tmp_path / f"{curve}.pub"
        q.write_bytes(pub)
        out[curve] = (p, q, pub)
    return out


def ms_hashing(method: str, algorithm: str, *, ignore=(), allow_symlinks: bool = False):
    alg = "blake2" if algorithm == "blake2b" else algorithm
    hc = model_signing.hashing.Config()
    if method == "files":
        hc.use_file_serialization(hashing_algorithm=alg)
    else:
        hc.use_shard_serialization(hashing_algorithm=alg, shard_size=SHARD)
    return hc.set_ignored_paths(paths=list(ignore)).set_allow_symlinks(allow_symlinks)


def ms_sign(model: Path, key: Path, sig: Path, method: str, algorithm: str, **kw) -> None:
    model_signing.signing.Config().use_elliptic_key_signer(private_key=key).set_hashing_config(
        ms_hashing(method, algorithm, **kw)).sign(model, sig)


def ms_verify(model: Path, pub: Path, sig: Path, method: str, algorithm: str, **kw) -> None:
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=pub).set_hashing_config(
        ms_hashing(method, algorithm, **kw)).verify(model, sig)


def ours_sign(model: Path, priv: bytes, sig: Path, method: str, algorithm: str, **kw) -> None:
    sig.write_bytes(signing.sign_model_dir(
        model, priv, hash_algorithm=algorithm, shard_size=SHARD if method == "shards" else None, **kw))


def ours_verify(model: Path, pub: bytes, sig: Path) -> signing.VerifiedSignature:
    verified = signing.verify_bundle(sig.read_bytes(), {"trusted": pub})
    signing.verify_model_dir(model, verified)
    return verified


def statement(sig: Path) -> dict:
    return json.loads(base64.b64decode(json.loads(sig.read_bytes())["dsseEnvelope"]["payload"]))


# ------------------------------------------------------------------------------------------- both ways


@pytest.mark.parametrize("curve", CURVES)
@pytest.mark.parametrize(("method", "algorithm"), CONFIGS)
def test_model_signing_signs_we_verify(sig_model: Path, key_files, sig_keys, tmp_path: Path, curve, method, algorithm):
    key, _, pub = key_files[curve]
    sig = tmp_path / "ms.sig"
    ms_sign(sig_model, key, sig, method, algorithm)
    v = ours_verify(sig_model, pub, sig)
    assert (v.serialization, v.hash_algorithm) == (method, algorithm)
    assert v.shard_size == (SHARD if method == "shards" else None)
    assert v.key_fingerprint == json.loads(sig.read_bytes())["verificationMaterial"]["publicKey"]["hint"]
    # our hashing of the same directory gives the very manifest and subject digest model_signing signed
    mine = signing.compute_manifest(sig_model, hash_algorithm=algorithm,
                                    shard_size=SHARD if method == "shards" else None)
    assert mine == v.resources
    assert signing.subject_digest(mine) == v.subject_digest
    # and our own signature of it carries the same subject
    ours = tmp_path / "ours.sig"
    ours_sign(sig_model, sig_keys[curve][0], ours, method, algorithm)
    assert statement(ours)["subject"] == statement(sig)["subject"]
    assert statement(ours)["predicate"]["resources"] == statement(sig)["predicate"]["resources"]


@pytest.mark.parametrize("curve", CURVES)
@pytest.mark.parametrize(("method", "algorithm"), CONFIGS)
def test_we_sign_model_signing_verifies(sig_model: Path, key_files, sig_keys, tmp_path: Path, curve, method, algorithm):
    _, pub_path, _ = key_files[curve]
    sig = tmp_path / "ours.sig"
    ours_sign(sig_model, sig_keys[curve][0], sig, method, algorithm)
    ms_verify(sig_model, pub_path, sig, method, algorithm)
    # model_signing can read the manifest back, and agrees on it
    manifest = model_signing._signing.sign_ec_key.Verifier(pub_path).verify(
        model_signing._signing.sign_sigstore_pb.Signature.read(sig))
    assert [rd.identifier for rd in manifest.resource_descriptors()] == [
        r["name"] for r in statement(sig)["predicate"]["resources"]]


def test_model_signing_guesses_our_sharded_sha256_config(sig_model: Path, key_files, sig_keys, tmp_path: Path):
    """We write shard_size as an integer, so model_signing can even guess the configuration back."""
    _, pub_path, _ = key_files["p256"]
    sig = tmp_path / "ours.sig"
    ours_sign(sig_model, sig_keys["p256"][0], sig, "shards", "sha256")
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=pub_path).verify(sig_model, sig)
    (sig_model / "weights.bin").write_bytes(b"changed")
    with pytest.raises(ValueError):
        model_signing.verifying.Config().use_elliptic_key_verifier(public_key=pub_path).verify(sig_model, sig)


def test_ignore_paths_and_symlinks_both_ways(sig_model: Path, key_files, sig_keys, tmp_path: Path):
    key, pub_path, pub = key_files["p384"]
    (sig_model / "alias.json").symlink_to("config.json")
    (sig_model / "notes").mkdir()
    (sig_model / "notes" / "draft.md").write_text("draft")
    (sig_model / ".gitignore").write_text("*.tmp")
    ms_sig = tmp_path / "ms.sig"
    ms_sign(sig_model, key, ms_sig, "files", "sha256", ignore=["notes"], allow_symlinks=True)
    v = ours_verify(sig_model, pub, ms_sig)
    assert v.allow_symlinks and "alias.json" in v.files and set(v.ignore_paths) == {
        "notes", ".git", ".gitattributes", ".github", ".gitignore"}
    ours = tmp_path / "ours.sig"
    ours_sign(sig_model, sig_keys["p384"][0], ours, "files", "sha256", ignore_paths=["notes"], allow_symlinks=True)
    ms_verify(sig_model, pub_path, ours, "files", "sha256", allow_symlinks=True)
    assert statement(ours)["subject"] == statement(ms_sig)["subject"]
    # the ignored directory may change under both tools
    (sig_model / "notes" / "draft.md").write_text("rewritten")
    ours_verify(sig_model, pub, ms_sig)
    ms_verify(sig_model, pub_path, ours, "files", "sha256", allow_symlinks=True)
    # the symlink's target may not
    (sig_model / "alias.json").unlink()
    (sig_model / "alias.json").symlink_to("a.txt")
    with pytest.raises(signing.SignatureError) as info:
        ours_verify(sig_model, pub, ms_sig)
    assert info.value.reason == "FileMismatch"
    with pytest.raises(ValueError):
        ms_verify(sig_model, pub_path, ours, "files", "sha256", allow_symlinks=True)


# ---------------------------------------------------------------------------------- both refuse the same


def _tamper(root: Path) -> None:
    path = root / "weights.bin"
    data = bytearray(path.read_bytes())
    data[1234] ^= 0xFF
    path.write_bytes(bytes(data))


def _add(root: Path) -> None:
    (root / "extra.bin").write_bytes(b"not signed")


def _remove(root: Path) -> None:
    (root / "a" / "b.bin").unlink()


def _rename(root: Path) -> None:
    (root / "config.json").rename(root / "config2.json")


MUTATIONS = {"tamper": (_tamper, "FileMismatch"), "add": (_add, "ExtraFile"), "remove": (_remove, "MissingFile"),
             "rename": (_rename, "MissingFile")}


@pytest.mark.parametrize("signer", ["model_signing", "modelhub"])
@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@pytest.mark.parametrize(("method", "algorithm"), CONFIGS)
def test_both_refuse(sig_model: Path, key_files, sig_keys, tmp_path: Path, signer, mutation, method, algorithm):
    key, pub_path, pub = key_files["p256"]
    sig = tmp_path / "model.sig"
    if signer == "model_signing":
        ms_sign(sig_model, key, sig, method, algorithm)
    else:
        ours_sign(sig_model, sig_keys["p256"][0], sig, method, algorithm)
    # both accept the untouched model
    ours_verify(sig_model, pub, sig)
    ms_verify(sig_model, pub_path, sig, method, algorithm)
    mutate, reason = MUTATIONS[mutation]
    mutate(sig_model)
    with pytest.raises(signing.SignatureError) as info:
        ours_verify(sig_model, pub, sig)
    assert info.value.reason == reason, info.value.message
    with pytest.raises(ValueError, match="Signature mismatch"):
        ms_verify(sig_model, pub_path, sig, method, algorithm)


@pytest.mark.parametrize("signer", ["model_signing", "modelhub"])
def test_both_refuse_a_foreign_key(sig_model: Path, key_files, sig_keys, tmp_path: Path, signer):
    key, _, _ = key_files["p256"]
    _, other_pub_path, other_pub = key_files["p384"]
    sig = tmp_path / "model.sig"
    if signer == "model_signing":
        ms_sign(sig_model, key, sig, "files", "sha256")
    else:
        ours_sign(sig_model, sig_keys["p256"][0], sig, "files", "sha256")
    with pytest.raises(signing.SignatureError) as info:
        ours_verify(sig_model, other_pub, sig)
    assert info.value.reason == "UntrustedKey"
    with pytest.raises(ValueError, match="Key mismatch"):
        ms_verify(sig_model, other_pub_path, sig, "files", "sha256")


# ---------------------------------------------------------------------------------------- command lines


def _cli(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("model_signing") or shutil.which("model_signing", path=str(Path(sys.executable).parent))
    cmd = [exe, *args] if exe else [sys.executable, "-m", "model_signing", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def _modelhub(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "operator")}
    return subprocess.run([sys.executable, "-m", "modelhub", *args], capture_output=True, text=True, timeout=300,
                          env=env)


@pytest.mark.parametrize("curve", ["p256", "p521"])
def test_command_lines_both_ways(sig_model: Path, key_files, tmp_path: Path, curve: str):
    key, pub_path, _ = key_files[curve]
    (sig_model / ".git").mkdir()
    (sig_model / ".git" / "HEAD").write_text("ref: refs/heads/main")
    ms_sig = sig_model / "model.sig"  # model_signing's habit: the signature inside the model
    r = _cli("sign", "key", str(sig_model), "--private_key", str(key), "--signature", str(ms_sig))
    assert r.returncode == 0, r.stderr
    r = _modelhub("verify", str(sig_model), "--signature", str(ms_sig), "--public-key", str(pub_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK: 8 files")

    ours_sig = tmp_path / "modelhub.sig"  # outside: inside, it would be an extra file for the first signature
    r = _modelhub("sign", str(sig_model), "--private-key", str(key), "--signature", str(ours_sig),
                  "--ignore-paths", str(ms_sig))
    assert r.returncode == 0, r.stderr
    r = _cli("verify", "key", str(sig_model), "--signature", str(ours_sig), "--public_key", str(pub_path),
             "--ignore-paths", str(ms_sig))
    assert r.returncode == 0, r.stderr + r.stdout
    # the same subject digest, and `modelhub digest` predicts it
    assert statement(ours_sig)["subject"] == statement(ms_sig)["subject"]
    r = _modelhub("digest", str(sig_model), "--ignore-paths", str(ms_sig), "--signature", str(ours_sig))
    assert r.stdout.strip() == "sha256:" + statement(ms_sig)["subject"][0]["digest"]["sha256"]

    _tamper(sig_model)
    r = _modelhub("verify", str(sig_model), "--signature", str(ms_sig), "--public-key", str(pub_path))
    assert r.returncode == 1 and r.stderr.startswith("error: FileMismatch: 'weights.bin'")
    r = _cli("verify", "key", str(sig_model), "--signature", str(ours_sig), "--public_key", str(pub_path),
             "--ignore-paths", str(ms_sig))
    assert r.returncode != 0 and "weights.bin" in r.stderr
