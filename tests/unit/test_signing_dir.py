"""compute_manifest / sign_model_dir / verify_model_dir on real directories."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
from pathlib import Path

import pytest

from modelhub.domain import signing
from modelhub.domain.signing import SignatureError, _manifest

CONFIGS = [
    pytest.param(None, "sha256", id="files-sha256"),
    pytest.param(None, "blake2b", id="files-blake2b"),
    pytest.param(1000, "sha256", id="shards-sha256"),
    pytest.param(1000, "blake2b", id="shards-blake2b"),
]


def sign_and_verify(root: Path, keys, **options) -> signing.VerifiedSignature:
    priv, pub = keys["p256"]
    bundle = signing.sign_model_dir(root, priv, **options)
    verified = signing.verify_bundle(bundle, {"k": pub})
    signing.verify_model_dir(root, verified)
    return verified


def refused(root: Path, verified, reason: str, *fragments: str, **kwargs) -> SignatureError:
    with pytest.raises(SignatureError) as info:
        signing.verify_model_dir(root, verified, **kwargs)
    assert info.value.reason == reason, info.value.message
    for fragment in fragments:
        assert fragment in info.value.message, info.value.message
    return info.value


# ----------------------------------------------------------------------------------------------- hashing


@pytest.mark.parametrize(("shard_size", "algorithm"), CONFIGS)
def test_digests_are_the_real_hashes(sig_model: Path, shard_size, algorithm: str) -> None:
    resources = signing.compute_manifest(sig_model, hash_algorithm=algorithm, shard_size=shard_size)
    data = (sig_model / "weights.bin").read_bytes()
    mine = {r.name: r for r in resources}
    if shard_size is None:
        r = mine["weights.bin"]
        assert r.algorithm == algorithm
        assert r.digest == hashlib.new(algorithm, data).hexdigest()
        assert mine["empty"].digest == hashlib.new(algorithm, b"").hexdigest()
    else:
        r = mine["weights.bin:9000:10000"]
        assert r.algorithm == f"{algorithm}-sharded-1000"
        assert r.digest == hashlib.new(algorithm, data[9000:]).hexdigest()
        assert not any(name.startswith("empty:") for name in mine)
    raw = b"".join(bytes.fromhex(r.digest) for r in resources)
    assert signing.subject_digest(resources) == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_multi_chunk_file_and_worker_counts(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    data = os.urandom(_manifest.CHUNK_SIZE * 2 + 12345)
    (root / "big").write_bytes(data)
    for i in range(12):
        (root / f"small{i}").write_bytes(os.urandom(100 + i))
    one = signing.compute_manifest(root, workers=1)
    many = signing.compute_manifest(root, workers=4)
    assert one == many
    assert dict((r.name, r.digest) for r in one)["big"] == hashlib.sha256(data).hexdigest()
    shards = signing.compute_manifest(root, shard_size=_manifest.CHUNK_SIZE + 1, workers=3)
    big = [r for r in shards if r.name.startswith("big:")]
    assert [r.name for r in big] == [
        f"big:0:{_manifest.CHUNK_SIZE + 1}",
        f"big:{_manifest.CHUNK_SIZE + 1}:{2 * _manifest.CHUNK_SIZE + 2}",
        f"big:{2 * _manifest.CHUNK_SIZE + 2}:{len(data)}",
    ]
    assert (
        big[1].digest
        == hashlib.sha256(data[_manifest.CHUNK_SIZE + 1 : 2 * _manifest.CHUNK_SIZE + 2]).hexdigest()
    )
    with pytest.raises(ValueError):
        signing.compute_manifest(root, workers=0)


def test_blake2_alias_and_unknown_algorithms(sig_model: Path) -> None:
    assert signing.compute_manifest(sig_model, hash_algorithm="blake2") == signing.compute_manifest(
        sig_model, hash_algorithm="blake2b"
    )
    for bad in ("md5", "blake3", "sha512"):
        with pytest.raises(SignatureError) as info:
            signing.compute_manifest(sig_model, hash_algorithm=bad)
        assert info.value.reason == "UnsupportedAlgorithm"
    with pytest.raises(SignatureError) as info:
        signing.compute_manifest(sig_model, shard_size=0)
    assert "shard size" in info.value.message


def test_generate_key_curves() -> None:
    for curve, alias in (("p256", "P-256"), ("p384", "secp384r1"), ("p521", "P521")):
        priv, pub = signing.generate_private_key(alias)
        assert priv.startswith(b"-----BEGIN PRIVATE KEY-----")
        assert pub.startswith(b"-----BEGIN PUBLIC KEY-----")
        assert signing.public_key_pem(priv) == pub
        assert signing.curve_name(alias) == curve
    with pytest.raises(SignatureError) as info:
        signing.generate_private_key("p192")
    assert info.value.reason == "UnsupportedAlgorithm"


def test_signing_key_problems(sig_model: Path, sig_keys) -> None:
    _, pub = sig_keys["p256"]
    with pytest.raises(SignatureError) as info:
        signing.sign_model_dir(sig_model, pub)  # a public key is no signing key
    assert info.value.reason == "InvalidKey"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    encrypted = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(SignatureError) as info:
        signing.sign_model_dir(sig_model, encrypted)
    assert info.value.reason == "InvalidKey" and "encrypted" in info.value.message
    assert signing.sign_model_dir(sig_model, encrypted, password=b"pw")


# ------------------------------------------------------------------------------------ verify: accepted


@pytest.mark.parametrize(("shard_size", "algorithm"), CONFIGS)
def test_untouched_model_verifies(sig_model: Path, sig_keys, shard_size, algorithm: str) -> None:
    v = sign_and_verify(sig_model, sig_keys, shard_size=shard_size, hash_algorithm=algorithm)
    assert v.hash_algorithm == algorithm
    signing.verify_model_dir(sig_model, v, workers=1)
    signing.verify_model_dir(str(sig_model), v, workers=8)


def test_unlisted_empty_file_with_shards_is_accepted(sig_model: Path, sig_keys) -> None:
    """model_signing gives an empty file no shard; an empty file cannot be told apart from an absent one."""
    v = sign_and_verify(sig_model, sig_keys, shard_size=1000)
    (sig_model / "another-empty").write_bytes(b"")
    signing.verify_model_dir(sig_model, v)
    (sig_model / "another-empty").write_bytes(b"x")
    refused(sig_model, v, "ExtraFile", "'another-empty'")


# -------------------------------------------------------------------------------------- verify: refused


@pytest.mark.parametrize(("shard_size", "algorithm"), CONFIGS)
def test_changed_file(sig_model: Path, sig_keys, shard_size, algorithm: str) -> None:
    v = sign_and_verify(sig_model, sig_keys, shard_size=shard_size, hash_algorithm=algorithm)
    path = sig_model / "weights.bin"
    data = bytearray(path.read_bytes())
    data[5555] ^= 0x01
    path.write_bytes(bytes(data))
    err = refused(sig_model, v, "FileMismatch", "'weights.bin'", algorithm)
    if shard_size:
        assert "bytes 5000..6000 of 'weights.bin'" in err.message


@pytest.mark.parametrize(("shard_size", "algorithm"), CONFIGS)
def test_missing_extra_renamed(sig_model: Path, sig_keys, shard_size, algorithm: str) -> None:
    v = sign_and_verify(sig_model, sig_keys, shard_size=shard_size, hash_algorithm=algorithm)
    (sig_model / "new.txt").write_text("surprise")
    refused(sig_model, v, "ExtraFile", "'new.txt'", "not in the signature")
    (sig_model / "new.txt").unlink()
    (sig_model / "a" / "b.bin").rename(sig_model / "a" / "c.bin")
    refused(sig_model, v, "MissingFile", "'a/b.bin'", "'a/c.bin'", "renamed?")
    (sig_model / "a" / "c.bin").unlink()
    refused(sig_model, v, "MissingFile", "'a/b.bin' is signed but missing")


def test_extra_file_in_new_directory_and_extra_ignore(sig_model: Path, sig_keys) -> None:
    v = sign_and_verify(sig_model, sig_keys)
    (sig_model / "deep" / "er").mkdir(parents=True)
    (sig_model / "deep" / "er" / "x").write_text("x")
    refused(sig_model, v, "ExtraFile", "'deep/er/x'")
    signing.verify_model_dir(sig_model, v, extra_ignore_paths=["deep"])
    signing.verify_model_dir(sig_model, v, extra_ignore_paths=[sig_model / "deep" / "er" / "x"])
    # an extra ignore never excuses a signed file
    (sig_model / "config.json").write_text("{}")
    refused(sig_model, v, "FileMismatch", "'config.json'", extra_ignore_paths=["deep", "config.json"])


def test_many_missing_files_are_summarised(tmp_path: Path, sig_keys) -> None:
    root = tmp_path / "m"
    root.mkdir()
    for i in range(9):
        (root / f"f{i}").write_text(str(i))
    v = sign_and_verify(root, sig_keys)
    for i in range(9):
        (root / f"f{i}").unlink()
    refused(root, v, "MissingFile", "'f0'", "and 4 more")


def test_shard_size_changes_are_caught_before_hashing(sig_model: Path, sig_keys) -> None:
    v = sign_and_verify(sig_model, sig_keys, shard_size=1000)
    path = sig_model / "weights.bin"
    data = path.read_bytes()
    path.write_bytes(data + b"tail")
    refused(sig_model, v, "FileMismatch", "'weights.bin' is 10004 bytes", "cover 10000 bytes")
    path.write_bytes(data[:-1])
    refused(sig_model, v, "FileMismatch", "9999 bytes")


def test_file_growing_during_verification_is_caught(sig_model: Path, sig_keys, monkeypatch) -> None:
    v = sign_and_verify(sig_model, sig_keys, shard_size=1000)
    real_walk = _manifest.walk

    def walk_then_append(*args, **kwargs):
        found = real_walk(*args, **kwargs)
        with open(sig_model / "weights.bin", "ab") as f:
            f.write(b"appended after the size check")
        return found

    monkeypatch.setattr(_manifest, "walk", walk_then_append)
    refused(sig_model, v, "FileMismatch", "'weights.bin' is longer than signed")


def test_file_shrinking_during_verification_is_caught(sig_model: Path, sig_keys, monkeypatch) -> None:
    v = sign_and_verify(sig_model, sig_keys, shard_size=1000)
    real_walk = _manifest.walk

    def walk_then_truncate(*args, **kwargs):
        found = real_walk(*args, **kwargs)
        os.truncate(sig_model / "weights.bin", 9500)
        return found

    monkeypatch.setattr(_manifest, "walk", walk_then_truncate)
    refused(sig_model, v, "FileMismatch", "'weights.bin' is shorter than signed")


def test_model_dir_itself(sig_model: Path, sig_keys, tmp_path: Path) -> None:
    v = sign_and_verify(sig_model, sig_keys)
    refused(tmp_path / "nope", v, "MissingFile", "does not exist")
    refused(sig_model / "config.json", v, "MissingFile", "not a directory")
    with pytest.raises(TypeError):
        signing.verify_model_dir(sig_model, object())  # type: ignore[arg-type]
    # the model directory may be reached through a symlink (a mount point, a 'current' link...)
    link = tmp_path / "current"
    link.symlink_to(sig_model)
    signing.verify_model_dir(link, v)


def test_empty_model_cannot_be_signed(tmp_path: Path, sig_keys) -> None:
    root = tmp_path / "m"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref")
    with pytest.raises(SignatureError) as info:
        signing.sign_model_dir(root, sig_keys["p256"][0])
    assert info.value.reason == "EmptyModel"
    (root / "empty").write_bytes(b"")
    with pytest.raises(SignatureError) as info:
        signing.sign_model_dir(root, sig_keys["p256"][0], shard_size=10)
    assert info.value.reason == "EmptyModel"
    assert signing.sign_model_dir(root, sig_keys["p256"][0])  # per file, an empty file is a resource


# ----------------------------------------------------------------------------------------- ignore paths


def test_ignore_paths(sig_model: Path, sig_keys) -> None:
    v = sign_and_verify(sig_model, sig_keys, ignore_paths=["sub", sig_model / "config.json", "model.sig"])
    assert v.ignore_paths == (
        ".git",
        ".gitattributes",
        ".github",
        ".gitignore",
        "config.json",
        "model.sig",
        "sub",
    )
    assert not any(name.startswith("sub/") or name == "config.json" for name in v.files)
    # ignored content may change, appear or vanish
    (sig_model / "config.json").write_text("changed")
    (sig_model / "sub" / "dir" / "tokenizer.txt").unlink()
    (sig_model / "sub" / "new").write_text("new")
    (sig_model / "model.sig").write_text("{}")
    signing.verify_model_dir(sig_model, v)
    # a prefix of a name is not an ignored directory
    (sig_model / "subway").write_text("x")
    refused(sig_model, v, "ExtraFile", "'subway'")


def test_git_paths_are_ignored_by_default(sig_model: Path, sig_keys) -> None:
    (sig_model / ".git" / "objects").mkdir(parents=True)
    (sig_model / ".git" / "objects" / "x").write_text("obj")
    (sig_model / ".gitattributes").write_text("*.bin filter=lfs")
    v = sign_and_verify(sig_model, sig_keys)
    assert ".gitattributes" not in v.files
    (sig_model / ".git" / "objects" / "y").write_text("more")
    signing.verify_model_dir(sig_model, v)
    v2 = sign_and_verify(sig_model, sig_keys, ignore_git_paths=False)
    assert ".gitattributes" in v2.files and ".git/objects/y" in v2.files
    assert v2.ignore_paths == ()
    (sig_model / ".gitattributes").write_text("changed")
    refused(sig_model, v2, "FileMismatch", "'.gitattributes'")


@pytest.mark.parametrize("bad", ["../outside", "/etc", ".", "", "a/../.."])
def test_ignore_paths_outside_the_model_are_refused(sig_model: Path, bad: str) -> None:
    with pytest.raises(SignatureError) as info:
        signing.compute_manifest(sig_model, ignore_paths=[bad])
    assert info.value.reason == "UnsafePath"


# ------------------------------------------------------------------------------- symlinks, special files


def test_symlinks_refused_unless_allowed(sig_model: Path, sig_keys, tmp_path: Path) -> None:
    (sig_model / "link.json").symlink_to("config.json")
    with pytest.raises(SignatureError) as info:
        signing.sign_model_dir(sig_model, sig_keys["p256"][0])
    assert info.value.reason == "UnsafePath"
    assert "'link.json' is a symbolic link (to 'config.json')" in info.value.message

    v = sign_and_verify(sig_model, sig_keys, allow_symlinks=True)
    assert v.allow_symlinks and "link.json" in v.files
    assert (
        dict((r.name, r.digest) for r in v.resources)["link.json"]
        == hashlib.sha256(b'{"layers": 2}\n').hexdigest()
    )
    # the link's target changes: the link's digest no longer matches
    (sig_model / "link.json").unlink()
    (sig_model / "link.json").symlink_to("a.txt")
    refused(sig_model, v, "FileMismatch", "'link.json'")


def test_symlinked_file_swapped_in_is_refused(sig_model: Path, sig_keys, tmp_path: Path) -> None:
    v = sign_and_verify(sig_model, sig_keys)
    outside = tmp_path / "outside.json"
    shutil.copy(sig_model / "config.json", outside)  # same bytes: only the link is wrong
    (sig_model / "config.json").unlink()
    (sig_model / "config.json").symlink_to(outside)
    refused(sig_model, v, "UnsafePath", "'config.json' is a symbolic link", "does not allow symlinks")


def test_symlinked_directory_swapped_in_is_refused(sig_model: Path, sig_keys, tmp_path: Path) -> None:
    v = sign_and_verify(sig_model, sig_keys)
    shutil.move(sig_model / "sub", tmp_path / "elsewhere")
    (sig_model / "sub").symlink_to(tmp_path / "elsewhere")
    refused(sig_model, v, "UnsafePath", "'sub' is a symbolic link")


def test_symlinked_directory_with_symlinks_allowed_is_not_followed(
    sig_model: Path, sig_keys, tmp_path: Path
) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "vocab.txt").write_text("v")
    (sig_model / "shared").symlink_to(tmp_path / "shared")
    v = sign_and_verify(sig_model, sig_keys, allow_symlinks=True)
    assert not any(
        name.startswith("shared") for name in v.files
    )  # as model_signing: neither followed nor hashed


def test_open_never_follows_a_directory_symlink(
    sig_model: Path, sig_keys, tmp_path: Path, monkeypatch
) -> None:
    """Even if a directory is swapped for a symlink after the walk, opening a file below it refuses."""
    v = sign_and_verify(sig_model, sig_keys, allow_symlinks=True)
    real_walk = _manifest.walk

    def walk_then_swap(*args, **kwargs):
        found = real_walk(*args, **kwargs)
        shutil.move(sig_model / "sub", tmp_path / "moved")
        (sig_model / "sub").symlink_to(tmp_path / "moved")
        return found

    monkeypatch.setattr(_manifest, "walk", walk_then_swap)
    refused(sig_model, v, "UnsafePath", "'sub/dir/tokenizer.txt'")


def test_broken_symlink(sig_model: Path, sig_keys) -> None:
    (sig_model / "dangling").symlink_to("nowhere")
    with pytest.raises(SignatureError) as info:
        signing.compute_manifest(sig_model, allow_symlinks=True)
    assert info.value.reason == "UnsafePath" and "broken symbolic link" in info.value.message


def test_fifo_is_refused(sig_model: Path, sig_keys) -> None:
    v = sign_and_verify(sig_model, sig_keys)
    os.mkfifo(sig_model / "pipe")
    refused(sig_model, v, "UnsafePath", "'pipe' is a named pipe (fifo)")
    with pytest.raises(SignatureError) as info:
        signing.compute_manifest(sig_model)
    assert info.value.reason == "UnsafePath"
    # a fifo where a signed file was
    os.unlink(sig_model / "pipe")
    (sig_model / "config.json").unlink()
    os.mkfifo(sig_model / "config.json")
    refused(sig_model, v, "UnsafePath", "'config.json' is a named pipe")
    # ... even when it appears after the walk (the open must not block on it)
    os.unlink(sig_model / "config.json")
    (sig_model / "config.json").write_bytes(b'{"layers": 2}\n')
    signing.verify_model_dir(sig_model, v)


def test_fifo_swapped_in_after_the_walk_does_not_hang(sig_model: Path, sig_keys, monkeypatch) -> None:
    v = sign_and_verify(sig_model, sig_keys)
    real_walk = _manifest.walk

    def walk_then_swap(*args, **kwargs):
        found = real_walk(*args, **kwargs)
        os.unlink(sig_model / "config.json")
        os.mkfifo(sig_model / "config.json")
        return found

    monkeypatch.setattr(_manifest, "walk", walk_then_swap)
    refused(sig_model, v, "UnsafePath", "'config.json' is a named pipe")


def test_socket_is_refused(tmp_path: Path, sig_keys) -> None:
    root = tmp_path / "m"  # AF_UNIX paths are short: keep it close to tmp_path
    root.mkdir()
    (root / "f").write_text("f")
    v = sign_and_verify(root, sig_keys)
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(root / "sock"))
        refused(root, v, "UnsafePath", "'sock' is a socket")
    finally:
        s.close()


def test_ignored_special_files_are_skipped(sig_model: Path, sig_keys) -> None:
    (sig_model / ".git").mkdir()
    os.mkfifo(sig_model / ".git" / "fifo")
    (sig_model / ".git" / "link").symlink_to("/etc/passwd")
    sign_and_verify(sig_model, sig_keys)
