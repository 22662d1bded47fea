"""oci:// artifacts end to end: a real `distribution` registry on 127.0.0.1, artifacts pushed by the real `oras`
client (ModelPack media types, and a plain image from an OCI layout), signed with the project's signer, pulled
and verified by the loader CLI run as a process. No cluster needed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelhub.adapters import fetch, oci
from tests.support.manifests import Key, Signed, make_model, new_key
from tests.support.registry import (
    Registry,
    TokenServer,
    image_layout,
    oras,
    push_layout,
    push_modelpack,
    run_registry,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with run_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(autouse=True)
def plain_http(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """This process (resolve, the operator's bundle read) speaks plain http to the test registry."""
    monkeypatch.setenv(oci.PLAIN_HTTP_ENV, registry.host)


@pytest.fixture(scope="module")
def key() -> Key:
    return new_key()


@pytest.fixture
def keyfile(key: Key, tmp_path: Path) -> Path:
    path = tmp_path / "release.pub"
    path.write_bytes(key.public)
    return path


def load(uri: str, digest: str, dest: Path, keyfile: Path, *extra: str, registry: Registry,
         docker_config: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`modelhub load` as a process, as the init container runs it."""
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_CONFIG"}
    env["MODELHUB_OCI_PLAIN_HTTP"] = registry.host
    env["MODELHUB_TERMINATION_LOG"] = str(dest.parent / "termination-log")
    env["PYTHONPATH"] = str(ROOT / "operator")
    if docker_config is not None:
        env["DOCKER_CONFIG"] = str(docker_config)
    return subprocess.run(
        [sys.executable, "-m", "modelhub", "load", "--uri", uri, "--digest", digest, "--dest", str(dest),
         "--public-key", str(keyfile), "--deadline", "120", *extra],
        capture_output=True, text=True, env=env, timeout=300,
    )


def loaded_files(dest: Path) -> dict[str, bytes]:
    root = dest / "model"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and p.name != ".modelhub-verified"}


def failure(proc: subprocess.CompletedProcess[str], dest: Path) -> str:
    """The loader's one-line reason: the termination message, the same as the last stderr line."""
    assert proc.returncode == 1, proc.stderr
    line = (dest.parent / "termination-log").read_text()
    assert "\n" not in line
    assert proc.stderr.strip().splitlines()[-1] == f"error: {line}"
    assert not (dest / "model").exists()
    print(f"refused: {line}")
    return line


def model_files(name: str) -> dict[str, bytes]:
    return {"weights.bin": os.urandom(300_000) + name.encode(), "config.json": b'{"arch": "tiny"}',
            "tokenizer/vocab.txt": b"a\nb\nc\n"}


@pytest.fixture
def modelpack(registry: Registry, key: Key, tmp_path: Path) -> tuple[Signed, str, dict[str, bytes]]:
    files = model_files("mp")
    signed = make_model(tmp_path / "src", "mp", key, files)  # writes model.sig beside the files
    digest = push_modelpack(registry, signed.path, "models/sentiment:1.0")
    return signed, digest, files


def test_modelpack_tag_resolves_and_loader_pulls_by_digest(
    registry: Registry, modelpack: tuple[Signed, str, dict[str, bytes]], keyfile: Path, tmp_path: Path
) -> None:
    signed, digest, files = modelpack
    pinned = oci.resolve(f"oci://{registry.host}/models/sentiment:1.0", None)
    assert pinned == f"oci://{registry.host}/models/sentiment@{digest}"

    manifest = json.loads(oras("manifest", "fetch", pinned.removeprefix("oci://"), registry=registry).stdout)
    assert manifest["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    assert {layer["annotations"]["org.cncf.model.filepath"] for layer in manifest["layers"]} == {*files, "model.sig"}

    dest = tmp_path / "dest"
    proc = load(pinned, signed.digest, dest, keyfile, registry=registry)
    assert proc.returncode == 0, proc.stderr
    assert loaded_files(dest) == files  # model.sig is not a model file
    marker = json.loads((dest / "model" / ".modelhub-verified").read_text())
    assert marker["digest"] == signed.digest and marker["uri"] == pinned

    again = load(pinned, signed.digest, dest, keyfile, registry=registry)  # the bundle layer alone is pulled
    assert again.returncode == 0, again.stderr
    assert "re-verified 3 files" in again.stderr

    # The operator's bounded bundle read of the same artifact.
    bundle = fetch.read_oci_bytes(
        pinned + "#model.sig", limits=fetch.Limits.within(20, max_bytes=1 << 20),
        net=fetch.NetworkPolicy.unrestricted(), credentials=None,
    )
    assert bundle == signed.bundle


def test_a_tag_is_refused_by_the_loader(registry: Registry, modelpack: tuple[Signed, str, dict[str, bytes]],
                                        keyfile: Path, tmp_path: Path) -> None:
    signed, _, _ = modelpack
    dest = tmp_path / "dest"
    line = failure(load(f"oci://{registry.host}/models/sentiment:1.0", signed.digest, dest, keyfile,
                        registry=registry), dest)
    assert line.startswith("InvalidURI: ") and "by digest" in line


def test_plain_image_with_model_directory(registry: Registry, key: Key, keyfile: Path, tmp_path: Path) -> None:
    files = model_files("img")
    signed = make_model(tmp_path / "src", "img", key, files)
    old = [("models", None), ("models/m", None), ("models/m/weights.bin", b"an older layer's weights"),
           ("models/m/stale.txt", b"removed by a whiteout above"), ("etc", None), ("etc/os-release", b"ID=test\n")]
    top = [("models/m/.wh.stale.txt", b""), ("models/m/weights.bin", files["weights.bin"]),
           ("models/m/config.json", files["config.json"]), ("models/m/tokenizer", None),
           ("models/m/tokenizer/vocab.txt", files["tokenizer/vocab.txt"]),
           ("models/m/model.sig", signed.bundle)]
    layout = image_layout(tmp_path / "layout", [old, top], "v1")
    digest = push_layout(registry, layout, "v1", "images/sentiment:v1")
    uri = f"oci://{registry.host}/images/sentiment@{digest}#/models/m"

    dest = tmp_path / "dest"
    proc = load(uri, signed.digest, dest, keyfile, registry=registry)
    assert proc.returncode == 0, proc.stderr
    assert loaded_files(dest) == files


def test_tampered_layer_repushed_under_the_same_tag(
    registry: Registry, modelpack: tuple[Signed, str, dict[str, bytes]], keyfile: Path, tmp_path: Path
) -> None:
    signed, first, _ = modelpack
    (signed.path / "weights.bin").write_bytes(b"backdoored weights")  # model.sig stays the signed one
    second = push_modelpack(registry, signed.path, "models/sentiment:1.0")
    assert second != first
    pinned = oci.resolve(f"oci://{registry.host}/models/sentiment:1.0", None)
    assert pinned.endswith(second)

    dest = tmp_path / "dest"
    line = failure(load(pinned, signed.digest, dest, keyfile, registry=registry), dest)
    assert "weights.bin" in line, line
    # The version pinned to the first digest still loads what was signed.
    ok = load(f"oci://{registry.host}/models/sentiment@{first}", signed.digest, tmp_path / "dest2", keyfile,
              registry=registry)
    assert ok.returncode == 0, ok.stderr


def test_blob_corrupted_in_the_registry_is_refused(registry: Registry, key: Key, keyfile: Path,
                                                   tmp_path: Path) -> None:
    files = model_files("corrupt")
    signed = make_model(tmp_path / "src", "corrupt", key, files)
    digest = push_modelpack(registry, signed.path, "models/corrupt:1")
    manifest = json.loads(oras("manifest", "fetch", f"{registry.host}/models/corrupt@{digest}",
                               registry=registry).stdout)
    weights = next(layer for layer in manifest["layers"]
                   if layer["annotations"]["org.cncf.model.filepath"] == "weights.bin")
    blob = registry.blob_path(weights["digest"])
    data = bytearray(blob.read_bytes())
    data[1000] ^= 0xFF  # same size, other bytes: only the digest check can tell
    blob.write_bytes(bytes(data))

    dest = tmp_path / "dest"
    line = failure(load(f"oci://{registry.host}/models/corrupt@{digest}", signed.digest, dest, keyfile,
                        registry=registry), dest)
    assert line.startswith("DigestMismatch: ") and weights["digest"] in line, line


def test_manifest_pointing_to_another_blob(registry: Registry, key: Key, keyfile: Path, tmp_path: Path) -> None:
    """A manifest written by hand whose weights layer is a different (valid) blob: the registry accepts it,
    the loader refuses the file the OMS manifest did not sign."""
    files = model_files("swap")
    signed = make_model(tmp_path / "src", "swap", key, files)
    digest = push_modelpack(registry, signed.path, "models/swap:1")
    manifest = json.loads(oras("manifest", "fetch", f"{registry.host}/models/swap@{digest}", registry=registry).stdout)
    other = tmp_path / "other.bin"
    other.write_bytes(b"other weights")
    other_digest = "sha256:" + hashlib.sha256(other.read_bytes()).hexdigest()
    oras("blob", "push", f"{registry.host}/models/swap", str(other), registry=registry)
    for layer in manifest["layers"]:
        if layer["annotations"]["org.cncf.model.filepath"] == "weights.bin":
            layer["digest"], layer["size"] = other_digest, other.stat().st_size
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    oras("manifest", "push", f"{registry.host}/models/swap:swapped", str(tmp_path / "m.json"), registry=registry)
    swapped = oci.resolve(f"oci://{registry.host}/models/swap:swapped", None)

    dest = tmp_path / "dest"
    line = failure(load(swapped, signed.digest, dest, keyfile, registry=registry), dest)
    assert "weights.bin" in line, line


def test_basic_auth_with_a_dockerconfigjson(key: Key, keyfile: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with run_registry(tmp_path / "authreg", htpasswd=("puller", "s3cret-pass")) as reg:
        monkeypatch.setenv(oci.PLAIN_HTTP_ENV, reg.host)
        files = model_files("auth")
        signed = make_model(tmp_path / "src", "auth", key, files)
        digest = push_modelpack(reg, signed.path, "private/model:1")
        uri = f"oci://{reg.host}/private/model@{digest}"

        dest = tmp_path / "dest"
        line = failure(load(uri, signed.digest, dest, keyfile, registry=reg), dest)
        assert line.startswith("Forbidden: ") and "anonymously" in line, line

        wrong = tmp_path / "wrong"
        wrong.mkdir()
        (wrong / "config.json").write_text(json.dumps(
            {"auths": {reg.host: {"username": "puller", "password": "not-it"}}}))
        line = failure(load(uri, signed.digest, dest, keyfile, registry=reg, docker_config=wrong), dest)
        assert line.startswith("Forbidden: ") and "not-it" not in line, line

        good = tmp_path / "docker"
        good.mkdir()
        (good / "config.json").write_bytes(reg.dockerconfig())  # what an imagePullSecret's .dockerconfigjson holds
        proc = load(uri, signed.digest, dest, keyfile, registry=reg, docker_config=good)
        assert proc.returncode == 0, proc.stderr
        assert loaded_files(dest) == files
        creds = oci.credentials_from_dockerconfig(reg.dockerconfig(), reg.host)
        assert oci.resolve(f"oci://{reg.host}/private/model:1", creds) == uri


def test_modelpack_archive_layer_and_the_total_limit(registry: Registry, key: Key, keyfile: Path,
                                                     tmp_path: Path) -> None:
    files = model_files("tar")
    signed = make_model(tmp_path / "src", "tar", key, files)
    push = tmp_path / "push" / "tar"
    push.mkdir(parents=True)
    with tarfile.open(push / "weights.tar", "w") as tf:  # a weight.v1.tar layer: files of the model tree
        tf.add(signed.path / "weights.bin", arcname="weights.bin")
        tf.add(signed.path / "tokenizer" / "vocab.txt", arcname="tokenizer/vocab.txt")
    (push / "config.json").write_bytes(files["config.json"])
    (push / "model.sig").write_bytes(signed.bundle)
    digest = push_modelpack(registry, push, "models/tarred:1",
                            media_types={"weights.tar": "application/vnd.cncf.model.weight.v1.tar"})
    uri = f"oci://{registry.host}/models/tarred@{digest}"

    dest = tmp_path / "dest"
    proc = load(uri, signed.digest, dest, keyfile, registry=registry)
    assert proc.returncode == 0, proc.stderr
    assert loaded_files(dest) == files

    small = tmp_path / "small"
    line = failure(load(uri, signed.digest, small, keyfile, "--max-total-bytes", "100000", registry=registry), small)
    assert line.startswith("TooLarge: ") and "total limit of 100000" in line, line


def test_oras_directory_push_with_the_bundle_inside(registry: Registry, key: Key, keyfile: Path,
                                                    tmp_path: Path) -> None:
    """`oras push REF DIR` makes one tar+gzip layer of the directory; the bundle comes from inside it."""
    files = model_files("dir")
    signed = make_model(tmp_path / "src", "mdir", key, files)
    oras("push", f"{registry.host}/models/dir:1", "mdir", cwd=tmp_path / "src", registry=registry)
    pinned = oci.resolve(f"oci://{registry.host}/models/dir:1#mdir", None)
    manifest = json.loads(oras("manifest", "fetch", pinned.split("#")[0].removeprefix("oci://"),
                               registry=registry).stdout)
    assert [layer["mediaType"] for layer in manifest["layers"]] == ["application/vnd.oci.image.layer.v1.tar+gzip"]

    dest = tmp_path / "dest"
    proc = load(pinned, signed.digest, dest, keyfile, registry=registry)
    assert proc.returncode == 0, proc.stderr
    assert loaded_files(dest) == files


def test_bundle_attached_as_a_referrer(registry: Registry, key: Key, keyfile: Path, tmp_path: Path) -> None:
    """The bundle beside the artifact as an OCI 1.1 referrer (`oras attach`; distribution has no referrers API,
    so oras writes the referrers tag, which the loader reads too). A bundle by an untrusted key attached as
    well is passed over."""
    files = model_files("ref")
    signed = make_model(tmp_path / "src", "ref", key, files, write_sig=False)
    digest = push_modelpack(registry, signed.path, "models/referred:1")
    subject = f"{registry.host}/models/referred@{digest}"
    stranger = make_model(tmp_path / "other", "ref", new_key(), files, write_sig=False)
    for i, bundle in enumerate((stranger.bundle, signed.bundle)):
        sig = tmp_path / f"sig{i}" / "model.sig"
        sig.parent.mkdir()
        sig.write_bytes(bundle)
        oras("attach", "--artifact-type", "application/vnd.dev.sigstore.bundle.v0.3+json", subject,
             "model.sig:application/vnd.dev.sigstore.bundle.v0.3+json", cwd=sig.parent, registry=registry)

    dest = tmp_path / "dest"
    proc = load(f"oci://{subject}", signed.digest, dest, keyfile, registry=registry)
    assert proc.returncode == 0, proc.stderr
    assert loaded_files(dest) == files
    again = load(f"oci://{subject}", signed.digest, dest, keyfile, registry=registry)
    assert again.returncode == 0 and "re-verified 3 files" in again.stderr, again.stderr

    wrong = tmp_path / "wrong.pub"
    wrong.write_bytes(new_key().public)
    line = failure(load(f"oci://{subject}", signed.digest, tmp_path / "d2", wrong, registry=registry), tmp_path / "d2")
    assert "referrer of" in line and "none of 2 verifies" in line, line


def test_token_auth_with_a_dockerconfigjson(key: Key, keyfile: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry with token auth (distribution's `auth.token`, a JWKS-trusted ES256 token server on
    127.0.0.1): the loader answers the Bearer challenge with the dockerconfigjson's credentials."""
    (tmp_path / "tok").mkdir()
    with TokenServer(tmp_path / "tok", "robot", "t0ken-pass") as tokens, \
            run_registry(tmp_path / "tokreg", token=tokens) as reg:
        monkeypatch.setenv(oci.PLAIN_HTTP_ENV, reg.host)
        files = model_files("token")
        signed = make_model(tmp_path / "src", "token", key, files)
        digest = push_modelpack(reg, signed.path, "private/tokened:1")
        uri = f"oci://{reg.host}/private/tokened@{digest}"

        dest = tmp_path / "dest"
        line = failure(load(uri, signed.digest, dest, keyfile, registry=reg), dest)
        assert line.startswith("Forbidden: ") and "anonymously" in line, line

        docker = tmp_path / "docker"
        docker.mkdir()
        (docker / "config.json").write_bytes(reg.dockerconfig())
        issued = tokens.issued
        proc = load(uri, signed.digest, dest, keyfile, registry=reg, docker_config=docker)
        assert proc.returncode == 0, proc.stderr
        assert loaded_files(dest) == files
        assert tokens.issued > issued
