"""`modelhub keygen | sign | verify | digest`, run in-process through the real argument parser."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from modelhub.cli.main import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def keypair(tmp_path: Path, capsys) -> tuple[Path, Path]:
    key = tmp_path / "keys" / "signer"
    key.parent.mkdir()
    code, out, _ = run(capsys, "keygen", "--out", key)
    assert code == 0
    return key, Path(f"{key}.pub")


def test_keygen(tmp_path: Path, capsys) -> None:
    key = tmp_path / "k"
    code, out, _ = run(capsys, "keygen", "--out", key, "--curve", "p521")
    assert code == 0
    pub = Path(f"{key}.pub")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert hashlib.sha256(pub.read_bytes()).hexdigest() in out
    from cryptography.hazmat.primitives import serialization

    assert serialization.load_pem_public_key(pub.read_bytes()).curve.name == "secp521r1"
    before = key.read_bytes()
    code, _, err = run(capsys, "keygen", "--out", key)
    assert code == 1 and "already exists" in err and key.read_bytes() == before
    code, _, _ = run(capsys, "keygen", "--out", key, "--force")
    assert code == 0 and key.read_bytes() != before and stat.S_IMODE(key.stat().st_mode) == 0o600
    with pytest.raises(SystemExit):
        main(["keygen", "--out", str(key), "--curve", "p192"])


def test_sign_verify_digest(sig_model: Path, keypair, capsys, tmp_path: Path) -> None:
    key, pub = keypair
    sig = sig_model / "model.sig"
    code, out, err = run(capsys, "sign", sig_model, "--private-key", key, "--signature", sig)
    assert code == 0, err
    assert sig.exists()
    statement_ignores = _ignores(sig)
    assert "model.sig" in statement_ignores  # the signature inside the model is left out
    code, out, err = run(capsys, "verify", sig_model, "--signature", sig, "--public-key", pub)
    assert code == 0, err
    line = out.strip()
    assert "\n" not in line and line.startswith("OK: 8 files")
    fingerprint = hashlib.sha256(pub.read_bytes()).hexdigest()
    assert fingerprint in line
    digest = line.split(" match ")[1].split(",")[0]
    assert digest.startswith("sha256:") and len(digest) == 71
    code, out, _ = run(capsys, "digest", sig_model, "--signature", sig)
    assert code == 0 and out.strip() == digest
    # by default the digest leaves MODEL_DIR/model.sig out, where the operator looks for the bundle
    code, out, _ = run(capsys, "digest", sig_model)
    assert code == 0 and out.strip() == digest
    # --signature '' leaves nothing out: one more file, another digest
    code, out, _ = run(capsys, "digest", sig_model, "--signature", "")
    assert code == 0 and out.strip() != digest


def _ignores(sig: Path) -> list[str]:
    import base64

    statement = json.loads(base64.b64decode(json.loads(sig.read_bytes())["dsseEnvelope"]["payload"]))
    return statement["predicate"]["serialization"].get("ignore_paths", [])


def test_verify_failures_exit_1_with_the_reason(sig_model: Path, keypair, capsys, tmp_path: Path) -> None:
    key, pub = keypair
    sig = tmp_path / "model.sig"
    assert run(capsys, "sign", sig_model, "--private-key", key, "--signature", sig)[0] == 0
    (sig_model / "config.json").write_text("tampered")
    code, out, err = run(capsys, "verify", sig_model, "--signature", sig, "--public-key", pub)
    assert code == 1 and out == ""
    assert err.startswith("error: FileMismatch: 'config.json' hashes to sha256:")
    other = tmp_path / "other"
    assert run(capsys, "keygen", "--out", other)[0] == 0
    code, _, err = run(capsys, "verify", sig_model, "--signature", sig, "--public-key", f"{other}.pub")
    assert code == 1 and err.startswith("error: UntrustedKey: ")
    code, _, err = run(capsys, "verify", sig_model, "--signature", tmp_path / "nope.sig", "--public-key", pub)
    assert code == 1 and err.startswith("error: MissingFile: cannot read signature")
    sig.write_text("{}")
    code, _, err = run(capsys, "verify", sig_model, "--signature", sig, "--public-key", pub)
    assert code == 1 and err.startswith("error: MalformedBundle: missing field bundle.mediaType")


def test_several_public_keys(sig_model: Path, keypair, capsys, tmp_path: Path) -> None:
    key, pub = keypair
    other = tmp_path / "other"
    assert run(capsys, "keygen", "--out", other, "--curve", "p384")[0] == 0
    sig = tmp_path / "s.sig"
    assert run(capsys, "sign", sig_model, "--private-key", key, "--signature", sig, "--shard-size", "512",
               "--hash", "blake2b")[0] == 0
    code, out, err = run(capsys, "verify", sig_model, "--signature", sig, "--public-key", f"{other}.pub",
                         "--public-key", pub)
    assert code == 0, err
    assert f"signed by {pub}" in out and "shards, blake2b" in out


def test_ignore_paths_are_relative_to_the_current_directory(sig_model: Path, keypair, capsys, tmp_path: Path,
                                                            monkeypatch) -> None:
    key, pub = keypair
    sig = tmp_path / "s.sig"
    monkeypatch.chdir(sig_model.parent)
    code, _, err = run(capsys, "sign", "model", "--private-key", key, "--signature", sig,
                       "--ignore-paths", "model/sub", "model/config.json")
    assert code == 0, err
    assert {"sub", "config.json"} <= set(_ignores(sig))
    code, _, err = run(capsys, "sign", "model", "--private-key", key, "--signature", sig, "--ignore-paths", "config.json")
    assert code == 1 and err.startswith("error: UnsafePath: --ignore-paths 'config.json' is not inside model")
    code, out, _ = run(capsys, "digest", "model", "--ignore-paths", "model/sub", "model/config.json")
    assert code == 0
    # the failed sign left the previous signature in place, and it still verifies, ignoring what it ignores
    (sig_model / "config.json").write_text("not signed")
    code, vout, err = run(capsys, "verify", "model", "--signature", sig, "--public-key", pub)
    assert code == 0, err
    assert f" match {out.strip()}, " in vout


def test_failed_sign_leaves_no_partial_signature(sig_model: Path, keypair, capsys, tmp_path: Path) -> None:
    key, _ = keypair
    sig = tmp_path / "s.sig"
    os.mkfifo(sig_model / "pipe")
    code, _, err = run(capsys, "sign", sig_model, "--private-key", key, "--signature", sig)
    assert code == 1 and err.startswith("error: UnsafePath: 'pipe' is a named pipe")
    assert not sig.exists() and list(tmp_path.glob("s.sig*")) == []


def test_symlinks_flag(sig_model: Path, keypair, capsys, tmp_path: Path) -> None:
    key, pub = keypair
    (sig_model / "alias").symlink_to("config.json")
    sig = tmp_path / "s.sig"
    code, _, err = run(capsys, "sign", sig_model, "--private-key", key, "--signature", sig)
    assert code == 1 and "UnsafePath" in err
    assert run(capsys, "sign", sig_model, "--private-key", key, "--signature", sig, "--allow-symlinks")[0] == 0
    code, out, err = run(capsys, "verify", sig_model, "--signature", sig, "--public-key", pub)
    assert code == 0, err
    assert out.startswith("OK: 9 files")


def test_console_entry_point(sig_model: Path, keypair, tmp_path: Path) -> None:
    key, pub = keypair
    sig = tmp_path / "s.sig"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "operator")}
    r = subprocess.run([sys.executable, "-m", "modelhub", "sign", str(sig_model), "--private-key", str(key),
                        "--signature", str(sig)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "modelhub", "verify", str(sig_model), "--signature", str(sig),
                        "--public-key", str(pub)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("OK: 8 files"), r.stderr
    (sig_model / "weights.bin").unlink()
    r = subprocess.run([sys.executable, "-m", "modelhub", "verify", str(sig_model), "--signature", str(sig),
                        "--public-key", str(pub)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and r.stderr.startswith("error: MissingFile: 'weights.bin' is signed but missing")
