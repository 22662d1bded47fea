"""`modelhub load` end to end on real signed model directories, served by real local servers."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from tests.unit.store_servers import (
    allow_http,
    closed_port_url,
    make_tls_files,
    moto_endpoint,
    no_local_proxy,
    s3_env,
    serve_directory,
    upload_directory,
)

from modelhub.cli import loadcmd
from modelhub.domain import signing
from modelhub.loader import load

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------------------------- helpers


class Signed:
    """A signed model directory: files, `model.sig` inside it, the trusted key on disk, and the digest."""

    def __init__(self, root: Path, keys_dir: Path, digest: str, private_pem: bytes) -> None:
        self.root = root
        self.keys_dir = keys_dir
        self.digest = digest
        self.private_pem = private_pem

    @property
    def key_file(self) -> Path:
        return self.keys_dir / "team-a.pem"

    def files(self) -> dict[str, bytes]:
        return {
            p.relative_to(self.root).as_posix(): p.read_bytes()
            for p in sorted(self.root.rglob("*"))
            if p.is_file() and p.name != "model.sig"
        }


def write_model(root: Path) -> None:
    (root / "weights").mkdir(parents=True)
    (root / "tokenizer").mkdir()
    (root / "config.json").write_text('{"architectures": ["Tiny"], "hidden": 8}\n')
    (root / "weights" / "model-00001.safetensors").write_bytes(os.urandom(700_000))
    (root / "weights" / "model-00002.safetensors").write_bytes(os.urandom(123_457))
    (root / "tokenizer" / "vocab file.txt").write_text("\n".join(f"tok{i}" for i in range(500)))
    (root / "empty.txt").write_bytes(b"")


def sign(root: Path, private_pem: bytes, **kwargs: object) -> str:
    # model.sig sits in the artifact directory, as with the model_signing tool: never part of the manifest
    bundle = signing.sign_model_dir(root, private_pem, ignore_paths=[root / "model.sig"], **kwargs)  # type: ignore[arg-type]
    (root / "model.sig").write_bytes(bundle)
    return signing.verify_bundle(bundle, {"k": public_of(private_pem)}).subject_digest


_KEYS: dict[str, tuple[bytes, bytes]] = {}


def keypair(name: str) -> tuple[bytes, bytes]:
    if name not in _KEYS:
        _KEYS[name] = signing.generate_private_key("p256")
    return _KEYS[name]


def public_of(private_pem: bytes) -> bytes:
    for priv, pub in _KEYS.values():
        if priv == private_pem:
            return pub
    raise KeyError("unknown test key")


@pytest.fixture
def signed(tmp_path: Path) -> Signed:
    root = tmp_path / "artifact"
    write_model(root)
    private_pem, public_pem = keypair("team-a")
    digest = sign(root, private_pem)
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    (keys_dir / "team-a.pem").write_bytes(public_pem)
    return Signed(root, keys_dir, digest, private_pem)


def run_load(*argv: str) -> int:
    """The `load` subcommand exactly as `modelhub` wires it (register → parse → func)."""
    parser = argparse.ArgumentParser(prog="modelhub")
    loadcmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["load", *argv])
    return int(args.func(args))


def load_args(uri: str, signed: Signed, dest: Path, *extra: str, digest: str | None = None) -> list[str]:
    return [
        "--uri",
        uri,
        "--digest",
        digest or signed.digest,
        "--dest",
        str(dest),
        "--keys-dir",
        str(signed.keys_dir),
        "--retries",
        "0",
        "--timeout",
        "5",
        *extra,
    ]


def assert_loaded(dest: Path, signed: Signed, exclude: set[str] = frozenset()) -> dict[str, object]:  # type: ignore[assignment]
    model = dest / "model"
    got = {
        p.relative_to(model).as_posix(): p.read_bytes()
        for p in sorted(model.rglob("*"))
        if p.is_file() and p.name != load.MARKER_NAME
    }
    expected = {name: data for name, data in signed.files().items() if name not in exclude}
    assert got == expected
    for p in model.rglob("*"):
        assert not p.is_symlink()
    marker = json.loads((model / load.MARKER_NAME).read_text())
    assert marker["digest"] == signed.digest
    assert marker["keyFingerprint"] == signing.key_fingerprint(signed.key_file.read_bytes())
    assert marker["files"] == len(expected)
    assert marker["verifiedAt"].endswith("Z")
    assert_no_leftovers(dest)
    return marker


def assert_no_leftovers(dest: Path) -> None:
    names = sorted(p.name for p in dest.iterdir()) if dest.exists() else []
    assert [n for n in names if n.startswith((".staging-", ".old-", ".marker-"))] == []


def assert_nothing_verified(dest: Path) -> None:
    assert not (dest / "model").exists()
    assert not list(dest.rglob(load.MARKER_NAME))
    assert_no_leftovers(dest)


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


# ----------------------------------------------------------------------------------------- happy paths


def test_file_uri(signed: Signed, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "dest"
    assert run_load(*load_args(signed.root.as_uri(), signed, dest)) == 0
    marker = assert_loaded(dest, signed)
    assert marker["keyName"] == "team-a.pem"
    # copies, not links, of the source files
    src = signed.root / "weights" / "model-00001.safetensors"
    assert (dest / "model" / "weights" / "model-00001.safetensors").stat().st_ino != src.stat().st_ino
    out = capsys.readouterr()
    assert "fetched and verified" in out.out and signed.digest in out.out
    assert "files" in out.err


def test_pvc_uri(signed: Signed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pvc_root = tmp_path / "mnt"
    claim_dir = pvc_root / "models" / "sentiment"
    claim_dir.parent.mkdir(parents=True)
    signed.root.rename(claim_dir)
    signed.root = claim_dir
    monkeypatch.setenv("MODELHUB_PVC_ROOT", str(pvc_root))
    dest = tmp_path / "dest"
    assert run_load(*load_args("pvc://models/sentiment", signed, dest)) == 0
    assert_loaded(dest, signed)


def test_http_fetches_only_signed_files(
    signed: Signed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    allow_http(monkeypatch)
    (signed.root / "README.unsigned").write_text(
        "not in the manifest"
    )  # present on the server, never fetched
    dest = tmp_path / "dest"
    with serve_directory(signed.root.parent) as served:
        assert run_load(*load_args(f"{served.url}/artifact", signed, dest, "--workers", "3")) == 0
    (signed.root / "README.unsigned").unlink()
    assert_loaded(dest, signed)
    assert sorted(served.file_requests()) == sorted(
        "/artifact/" + name.replace(" ", "%20") for name in signed.files()
    )
    assert served.requests.count("/artifact/model.sig") == 1


def test_https_with_private_ca(signed: Signed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tls = make_tls_files(tmp_path / "tls")
    no_local_proxy(monkeypatch)
    monkeypatch.delenv("MODELHUB_ALLOW_HTTP", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    dest = tmp_path / "dest"
    with serve_directory(signed.root, tls=tls) as served:
        assert run_load(*load_args(served.url + "/", signed, dest)) == 0
    assert_loaded(dest, signed)


def test_s3(signed: Signed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = moto_endpoint()
    s3_env(monkeypatch, endpoint)
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    upload_directory(endpoint, bucket, "sentiment/1.2.0", signed.root)
    dest = tmp_path / "dest"
    assert run_load(*load_args(f"s3://{bucket}/sentiment/1.2.0", signed, dest)) == 0
    assert_loaded(dest, signed)


def test_sharded_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "artifact"
    write_model(root)
    private_pem, public_pem = keypair("team-a")
    digest = sign(root, private_pem, shard_size=100_000)
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    (keys_dir / "team-a.pem").write_bytes(public_pem)
    s = Signed(root, keys_dir, digest, private_pem)
    verified = signing.verify_bundle((root / "model.sig").read_bytes(), {"k": public_pem})
    assert verified.serialization == "shards" and len(verified.resources) > len(s.files())
    planned = dict(load.planned_files(verified))
    assert planned["weights/model-00001.safetensors"] == 700_000
    assert "empty.txt" not in planned  # model_signing's shard format has no resource for an empty file
    allow_http(monkeypatch)
    dest = tmp_path / "dest"
    with serve_directory(root) as served:
        assert run_load(*load_args(served.url, s, dest)) == 0
    assert_loaded(dest, s, exclude={"empty.txt"})
    assert len(served.file_requests()) == len(planned)  # one request per distinct path, not per shard


def test_signature_file_and_public_key(signed: Signed, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.json"
    (signed.root / "model.sig").rename(bundle)
    dest = tmp_path / "dest"
    argv = [
        "--uri",
        signed.root.as_uri(),
        "--digest",
        signed.digest,
        "--dest",
        str(dest),
        "--signature-file",
        str(bundle),
        "--public-key",
        str(signed.key_file),
    ]
    assert run_load(*argv) == 0
    assert_loaded(dest, signed)


def test_keys_dir_laid_out_like_a_configmap(signed: Signed, tmp_path: Path) -> None:
    cm = tmp_path / "cm"
    data = cm / "..2026_01_01_00_00_00.000000001"
    data.mkdir(parents=True)
    other_private, other_public = keypair("team-b")
    (data / "team-b.pem").write_bytes(other_public)
    (data / "team-a.pem").write_bytes(signed.key_file.read_bytes())
    (cm / "..data").symlink_to(data.name)
    (cm / "team-a.pem").symlink_to("..data/team-a.pem")
    (cm / "team-b.pem").symlink_to("..data/team-b.pem")
    keys = load.read_trusted_keys(keys_dir=cm)
    assert sorted(keys) == ["team-a.pem", "team-b.pem"]
    signed.keys_dir = cm
    dest = tmp_path / "dest"
    assert run_load(*load_args(signed.root.as_uri(), signed, dest)) == 0
    assert_loaded(dest, signed)


def test_rerun_reverifies_in_place(signed: Signed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    allow_http(monkeypatch)
    dest = tmp_path / "dest"
    with serve_directory(signed.root) as served:
        assert run_load(*load_args(served.url, signed, dest)) == 0
        first = len(served.file_requests())
        before = (dest / "model" / "config.json").stat().st_ino
        result = load.load_model(
            uri=served.url,
            digest=signed.digest,
            dest=dest,
            trusted_keys=load.read_trusted_keys(keys_dir=signed.keys_dir),
            log=None,
        )
        assert result.reused and result.files == len(signed.files())
        assert len(served.file_requests()) == first  # no file downloaded again
        assert (dest / "model" / "config.json").stat().st_ino == before
        assert_loaded(dest, signed)

        # Someone changed a file in the volume: the copy is thrown away and fetched again.
        (dest / "model" / "config.json").write_text('{"evil": true}\n')
        result = load.load_model(
            uri=served.url,
            digest=signed.digest,
            dest=dest,
            trusted_keys=load.read_trusted_keys(keys_dir=signed.keys_dir),
            log=None,
        )
        assert not result.reused
        assert len(served.file_requests()) == 2 * first
    assert_loaded(dest, signed)


def test_subprocess_entry_point(signed: Signed, tmp_path: Path) -> None:
    """The real command line, as the init container runs it."""
    dest = tmp_path / "dest"
    env = {**os.environ, "PYTHONPATH": str(REPO / "operator")}
    proc = subprocess.run(
        [sys.executable, "-m", "modelhub", "load", *load_args(signed.root.as_uri(), signed, dest)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert_loaded(dest, signed)
    bad = tmp_path / "dest2"
    (signed.root / "config.json").write_text("{}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "modelhub", "load", *load_args(signed.root.as_uri(), signed, bad)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: FileMismatch: ")
    assert "config.json" in proc.stderr
    assert_nothing_verified(bad)


def test_bounded_parallel_downloads(signed: Signed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    allow_http(monkeypatch)
    for i in range(12):
        (signed.root / "weights" / f"extra-{i:02d}.bin").write_bytes(os.urandom(1000))
    signed.digest = sign(signed.root, signed.private_pem)
    dest = tmp_path / "dest"
    with serve_directory(signed.root) as served:
        served.delay = 0.05
        assert run_load(*load_args(served.url, signed, dest, "--workers", "3")) == 0
    assert_loaded(dest, signed)
    assert 2 <= served.max_in_flight <= 3


def test_transient_errors_are_retried(
    signed: Signed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    allow_http(monkeypatch)
    with serve_directory(signed.root) as served:
        served.fail_first["/config.json"] = 1
        served.fail_first["/model.sig"] = 1
        argv = load_args(served.url, signed, tmp_path / "dest")
        argv[argv.index("--retries") + 1] = "2"
        assert run_load(*argv) == 0
        assert served.requests.count("/config.json") == 2
        assert_loaded(tmp_path / "dest", signed)

        served.fail_first["/config.json"] = 5  # more than the retries: fail, naming the file
        assert run_load(*load_args(served.url, signed, tmp_path / "dest2")) == 1  # --retries 0
    line = error_line(capsys)
    assert line.startswith("error: Unreachable: ") and "config.json" in line and "503" in line
    assert_nothing_verified(tmp_path / "dest2")


def test_https_never_redirects_to_plain_http(
    signed: Signed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tls = make_tls_files(tmp_path / "tls")
    no_local_proxy(monkeypatch)
    monkeypatch.delenv("MODELHUB_ALLOW_HTTP", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca))
    dest = tmp_path / "dest"
    with serve_directory(signed.root) as plain, serve_directory(signed.root, tls=tls) as secure:
        secure.redirects["/config.json"] = plain.url + "/config.json"
        assert run_load(*load_args(secure.url, signed, dest)) == 1
    line = error_line(capsys)
    assert line.startswith("error: Unsupported: ") and "config.json" in line
    assert plain.requests == []
    assert_nothing_verified(dest)


# -------------------------------------------------------------------------------------------- failures


def test_tampered_file_on_server(
    signed: Signed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    allow_http(monkeypatch)
    target = signed.root / "weights" / "model-00002.safetensors"
    data = bytearray(target.read_bytes())
    data[1000] ^= 0x01
    target.write_bytes(bytes(data))
    dest = tmp_path / "dest"
    with serve_directory(signed.root) as served:
        assert run_load(*load_args(served.url, signed, dest)) == 1
    line = error_line(capsys)
    assert line.startswith("error: FileMismatch: ") and "weights/model-00002.safetensors" in line
    assert_nothing_verified(dest)


def test_failure_removes_a_previous_copy(
    signed: Signed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "dest"
    assert run_load(*load_args(signed.root.as_uri(), signed, dest)) == 0
    (signed.root / "config.json").write_text('{"changed": 1}\n')
    sign(signed.root, signed.private_pem)  # a new version (new digest) ...
    new_digest = signing.verify_bundle(
        (signed.root / "model.sig").read_bytes(), {"k": public_of(signed.private_pem)}
    )
    (signed.root / "tokenizer" / "vocab file.txt").write_text("tampered")  # ... tampered after signing
    capsys.readouterr()
    assert run_load(*load_args(signed.root.as_uri(), signed, dest, digest=new_digest.subject_digest)) == 1
    assert "tokenizer/vocab file.txt" in error_line(capsys)
    assert_nothing_verified(dest)


def test_missing_file_on_server(
    signed: Signed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    allow_http(monkeypatch)
    (signed.root / "tokenizer" / "vocab file.txt").unlink()
    dest = tmp_path / "dest"
    with serve_directory(signed.root) as served:
        assert run_load(*load_args(served.url, signed, dest)) == 1
    line = error_line(capsys)
    assert line.startswith("error: MissingFile: ") and "tokenizer/vocab file.txt" in line
    assert_nothing_verified(dest)


def test_wrong_pinned_digest(signed: Signed, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "dest"
    assert run_load(*load_args(signed.root.as_uri(), signed, dest)) == 0  # a verified copy is there ...
    capsys.readouterr()
    wrong = "sha256:" + "ab" * 32
    assert run_load(*load_args(signed.root.as_uri(), signed, dest, digest=wrong)) == 1
    line = error_line(capsys)
    assert line.startswith("error: DigestMismatch: ") and wrong in line and signed.digest in line
    assert_nothing_verified(dest)  # ... and is gone: a failed load never leaves a verified-looking model


def test_malformed_pinned_digest(signed: Signed, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_load(*load_args(signed.root.as_uri(), signed, tmp_path / "d", digest="md5:abc")) == 1
    assert error_line(capsys).startswith("error: InvalidDigest: ")


def test_untrusted_key(signed: Signed, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other_keys = tmp_path / "other-keys"
    other_keys.mkdir()
    (other_keys / "team-b.pem").write_bytes(keypair("team-b")[1])
    signed.keys_dir = other_keys
    dest = tmp_path / "dest"
    assert run_load(*load_args(signed.root.as_uri(), signed, dest)) == 1
    assert error_line(capsys).startswith("error: UntrustedKey: ")
    assert_nothing_verified(dest)


def test_unreachable_server(
    signed: Signed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    allow_http(monkeypatch)
    dest = tmp_path / "dest"
    url = closed_port_url()
    assert run_load(*load_args(url + "/m", signed, dest)) == 1
    line = error_line(capsys)
    assert line.startswith("error: Unreachable: ") and url in line
    assert_nothing_verified(dest)


def test_bundle_not_found(
    signed: Signed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    allow_http(monkeypatch)
    (signed.root / "model.sig").unlink()
    dest = tmp_path / "dest"
    with serve_directory(signed.root) as served:
        assert run_load(*load_args(served.url, signed, dest)) == 1
        assert served.file_requests() == []
    line = error_line(capsys)
    assert line.startswith("error: NotFound: ") and "model.sig" in line
    assert_nothing_verified(dest)


def test_s3_missing_object(
    signed: Signed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = moto_endpoint()
    s3_env(monkeypatch, endpoint)
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    (signed.root / "weights" / "model-00001.safetensors").unlink()
    upload_directory(endpoint, bucket, "m", signed.root)
    dest = tmp_path / "dest"
    assert run_load(*load_args(f"s3://{bucket}/m", signed, dest)) == 1
    line = error_line(capsys)
    assert line.startswith("error: MissingFile: ") and "weights/model-00001.safetensors" in line
    assert_nothing_verified(dest)


def test_symlink_in_source_refused(
    signed: Signed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = signed.root / "config.json"
    elsewhere = tmp_path / "elsewhere.json"
    target.rename(elsewhere)
    target.symlink_to(elsewhere)  # same bytes, but the signature did not allow symlinks
    dest = tmp_path / "dest"
    assert run_load(*load_args(signed.root.as_uri(), signed, dest)) == 1
    line = error_line(capsys)
    assert line.startswith("error: UnsafePath: ") and "config.json" in line
    assert_nothing_verified(dest)


def test_invalid_key_file(signed: Signed, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "dest"
    assert run_load(*load_args(signed.root.as_uri(), signed, dest)) == 0
    capsys.readouterr()
    (signed.keys_dir / "broken.pem").write_text("not a key")
    assert run_load(*load_args(signed.root.as_uri(), signed, dest)) == 1
    line = error_line(capsys)
    assert line.startswith("error: InvalidKey: ") and "broken.pem" in line
    assert_nothing_verified(dest)


def test_leftovers_of_a_crashed_run_are_cleaned(signed: Signed, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / ".staging-crashed" / "weights").mkdir(parents=True)
    (dest / ".staging-crashed" / "weights" / "half.bin").write_bytes(b"x" * 10)
    assert run_load(*load_args(signed.root.as_uri(), signed, dest)) == 0
    assert_loaded(dest, signed)


# --------------------------------------------------------------------------------------------- interop


@pytest.mark.interop
def test_bundle_from_the_model_signing_tool(tmp_path: Path) -> None:
    """A bundle made by the real `model_signing` package (key-based) loads and verifies."""
    ms_signing = pytest.importorskip("model_signing.signing")
    ms_hashing = pytest.importorskip("model_signing.hashing")
    root = tmp_path / "artifact"
    write_model(root)
    private_pem, public_pem = keypair("team-a")
    key_file = tmp_path / "signer.key"
    key_file.write_bytes(private_pem)
    hashing_config = ms_hashing.Config().set_ignored_paths(paths=[root / "model.sig"], ignore_git_paths=True)
    ms_signing.Config().use_elliptic_key_signer(private_key=key_file).set_hashing_config(hashing_config).sign(
        root, root / "model.sig"
    )
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "team-a.pem").write_bytes(public_pem)
    digest = signing.verify_bundle(
        (root / "model.sig").read_bytes(), {"team-a.pem": public_pem}
    ).subject_digest
    s = Signed(root, keys, digest, private_pem)
    dest = tmp_path / "dest"
    assert run_load(*load_args(root.as_uri(), s, dest)) == 0
    assert_loaded(dest, s)


def test_certificate_signed_artifact_with_cas_dir(tmp_path: Path) -> None:
    from tests.unit.pki import Pki

    pki = Pki()
    s = pki.signer()
    root = tmp_path / "artifact"
    write_model(root)
    bundle = signing.sign_model_dir(root, s.key_pem, ignore_paths=[root / "model.sig"], signing_certificate=s.pem,
                                    certificate_chain=[pki.intermediate.pem])
    (root / "model.sig").write_bytes(bundle)
    digest = signing.verify_bundle(bundle, None, trusted_cas={"r": pki.root.pem}).subject_digest
    cas = tmp_path / "cas"
    cas.mkdir()
    (cas / "corp-pki--root.pem").write_bytes(pki.root.pem)
    dest = tmp_path / "dest"
    assert run_load("--uri", root.as_uri(), "--digest", digest, "--dest", str(dest), "--cas-dir", str(cas)) == 0
    marker = json.loads((dest / "model" / load.MARKER_NAME).read_text())
    assert marker["digest"] == digest and marker["certificateSubject"] == "CN=ml-release,O=Example Corp"
    assert marker["keyName"] == "corp-pki--root.pem"
    # another CA: refused, nothing left behind
    (cas / "corp-pki--root.pem").write_bytes(Pki().root.pem)
    dest2 = tmp_path / "dest2"
    assert run_load("--uri", root.as_uri(), "--digest", digest, "--dest", str(dest2), "--cas-dir", str(cas)) == 1
    assert not (dest2 / "model").exists()
    # no trust at all
    assert run_load("--uri", root.as_uri(), "--digest", digest, "--dest", str(dest2)) == 1
