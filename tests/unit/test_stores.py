"""Artifact stores against real local servers: files, PVC mounts, HTTP(S) and a moto S3 server."""

from __future__ import annotations

import os
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

from modelhub.adapters import stores
from modelhub.adapters.stores import StoreError


def reason(excinfo: pytest.ExceptionInfo[StoreError]) -> str:
    return excinfo.value.reason


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    root = tmp_path / "artifact"
    (root / "weights").mkdir(parents=True)
    (root / "config.json").write_text('{"layers": 2}\n')
    (root / "weights" / "model part 1.bin").write_bytes(os.urandom(300_000))
    (root / "model.sig").write_bytes(b"{}")
    return root


# ------------------------------------------------------------------------------------------- URIs


class TestUris:
    def test_join_file(self) -> None:
        assert stores.join("file:///data/models/x", "a/b.bin") == "file:///data/models/x/a/b.bin"
        assert stores.join("file:///data/models/x/", "c") == "file:///data/models/x/c"
        assert stores.join("file:///", "c") == "file:///c"

    def test_join_quotes_and_parse_unquotes(self) -> None:
        uri = stores.join("file:///data/my model", "w 1.bin")
        assert uri == "file:///data/my model/w%201.bin"
        assert stores.parse(uri).path == "/data/my model/w 1.bin"

    def test_join_https_keeps_query_and_quotes(self) -> None:
        uri = stores.join("https://h.example/m/1.0?sv=x&sig=y", "dir/a b#c.bin")
        assert uri == "https://h.example/m/1.0/dir/a%20b%23c.bin?sv=x&sig=y"

    def test_join_s3_is_literal(self) -> None:
        assert stores.join("s3://bucket/pre/fix/", "a b.bin") == "s3://bucket/pre/fix/a b.bin"
        assert stores.join("s3://bucket", "x") == "s3://bucket/x"

    def test_join_pvc(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("MODELHUB_PVC_ROOT", "/vol")
        uri = stores.join("pvc://models/sentiment/1.2.0", "w.bin")
        assert uri == "pvc://models/sentiment/1.2.0/w.bin"
        assert stores.parse(uri).path == "/vol/models/sentiment/1.2.0/w.bin"

    def test_pvc_root_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("MODELHUB_PVC_ROOT", raising=False)
        assert stores.parse("pvc://claim-a/x").path == "/mnt/pvc/claim-a/x"

    @pytest.mark.parametrize("name", ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a\\b", "a\x00"])
    def test_join_refuses_unsafe_names(self, name: str) -> None:
        with pytest.raises(StoreError) as excinfo:
            stores.join("file:///data/m", name)
        assert reason(excinfo) == "UnsafePath"

    @pytest.mark.parametrize(
        "uri",
        [
            "file:///data/../etc",
            "pvc://Bad_Claim/x",
            "pvc://claim/../other/x",
            "https:///nohost",
            "s3://bkt/../x",
            "just/a/path",
            "file://otherhost/x",
            "https://user:secret@h.example/m",
        ],
    )
    def test_parse_refuses_invalid(self, uri: str) -> None:
        with pytest.raises(StoreError) as excinfo:
            stores.parse(uri)
        assert reason(excinfo) == "InvalidURI"

    def test_unsupported_scheme(self) -> None:
        with pytest.raises(StoreError) as excinfo:
            stores.parse("ftp://host/x")
        assert reason(excinfo) == "Unsupported"

    def test_plain_http_refused_unless_allowed(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("MODELHUB_ALLOW_HTTP", raising=False)
        with pytest.raises(StoreError) as excinfo:
            stores.fetch_bytes("http://127.0.0.1:1/model.sig")
        assert reason(excinfo) == "Unsupported"
        assert "MODELHUB_ALLOW_HTTP" in excinfo.value.message
        monkeypatch.setenv("MODELHUB_ALLOW_HTTP", "1")
        assert stores.parse("http://127.0.0.1:1/m").scheme == "http"

    def test_default_signature_uri(self) -> None:
        assert stores.default_signature_uri("s3://bkt/m/1.0") == "s3://bkt/m/1.0/model.sig"
        assert stores.default_signature_uri("https://h/m/") == "https://h/m/model.sig"

    def test_redact(self) -> None:
        assert stores.redact("https://user:pw@h/m?sig=secret") == "https://h/m?<redacted>"
        assert stores.redact("s3://bkt/k") == "s3://bkt/k"


# ---------------------------------------------------------------------------------------- local


class TestLocal:
    def test_file_fetch(self, artifact: Path, tmp_path: Path) -> None:
        base = artifact.as_uri()
        assert stores.fetch_bytes(stores.join(base, "config.json")) == b'{"layers": 2}\n'
        out = tmp_path / "copy.bin"
        src = artifact / "weights" / "model part 1.bin"
        n = stores.fetch_to_file(stores.join(base, "weights/model part 1.bin"), out, expected_size=300_000)
        assert n == 300_000 and out.read_bytes() == src.read_bytes()
        assert not out.is_symlink() and out.stat().st_ino != src.stat().st_ino  # a copy, not a link

    def test_pvc_fetch(self, artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        root = tmp_path / "pvc"
        (root / "models-claim").mkdir(parents=True)
        (root / "models-claim" / "sentiment").symlink_to(artifact)  # the mount itself may be anything
        monkeypatch.setenv("MODELHUB_PVC_ROOT", str(root))
        data = stores.fetch_bytes(stores.join("pvc://models-claim/sentiment", "config.json"))
        assert data == b'{"layers": 2}\n'

    def test_missing(self, artifact: Path, tmp_path: Path) -> None:
        with pytest.raises(StoreError) as excinfo:
            stores.fetch_to_file(stores.join(artifact.as_uri(), "nope.bin"), tmp_path / "x")
        assert reason(excinfo) == "NotFound" and "nope.bin" in excinfo.value.message
        assert not (tmp_path / "x").exists()

    def test_directory_is_not_a_file(self, artifact: Path) -> None:
        with pytest.raises(StoreError) as excinfo:
            stores.fetch_bytes(stores.join(artifact.as_uri(), "weights"))
        assert reason(excinfo) == "NotFound"

    def test_symlink_refused_unless_followed(self, artifact: Path, tmp_path: Path) -> None:
        (artifact / "link.json").symlink_to(artifact / "config.json")
        uri = stores.join(artifact.as_uri(), "link.json")
        with pytest.raises(StoreError) as excinfo:
            stores.fetch_to_file(uri, tmp_path / "x")
        assert reason(excinfo) == "UnsafePath"
        stores.fetch_to_file(uri, tmp_path / "x", follow_symlinks=True)
        assert (tmp_path / "x").read_bytes() == b'{"layers": 2}\n' and not (tmp_path / "x").is_symlink()

    def test_fifo_refused(self, artifact: Path, tmp_path: Path) -> None:
        os.mkfifo(artifact / "pipe")
        with pytest.raises(StoreError) as excinfo:
            stores.fetch_to_file(stores.join(artifact.as_uri(), "pipe"), tmp_path / "x")
        assert reason(excinfo) == "UnsafePath"

    def test_size_mismatch_removes_partial(self, artifact: Path, tmp_path: Path) -> None:
        with pytest.raises(StoreError) as excinfo:
            stores.fetch_to_file(
                stores.join(artifact.as_uri(), "config.json"), tmp_path / "x", expected_size=3
            )
        assert reason(excinfo) == "SizeMismatch"
        assert not (tmp_path / "x").exists()

    def test_bundle_cap(self, artifact: Path) -> None:
        with pytest.raises(StoreError) as excinfo:
            stores.fetch_bytes(stores.join(artifact.as_uri(), "config.json"), max_bytes=4)
        assert reason(excinfo) == "TooLarge"


# ----------------------------------------------------------------------------------------- http


class TestHttp:
    def test_fetch(self, artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        allow_http(monkeypatch)
        with serve_directory(artifact) as served:
            base = served.url + "/"
            assert stores.fetch_bytes(stores.join(base, "config.json")) == b'{"layers": 2}\n'
            out = tmp_path / "w.bin"
            n = stores.fetch_to_file(
                stores.join(base, "weights/model part 1.bin"), out, expected_size=300_000
            )
            assert n == 300_000
            assert out.read_bytes() == (artifact / "weights" / "model part 1.bin").read_bytes()
            assert "/weights/model%20part%201.bin" in served.requests

    def test_not_found(self, artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        allow_http(monkeypatch)
        with serve_directory(artifact) as served:
            with pytest.raises(StoreError) as excinfo:
                stores.fetch_to_file(stores.join(served.url, "missing.bin"), tmp_path / "x")
        assert reason(excinfo) == "NotFound"
        assert "missing.bin" in excinfo.value.message and "404" in excinfo.value.message
        assert not (tmp_path / "x").exists()

    def test_size_checks(self, artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        allow_http(monkeypatch)
        with serve_directory(artifact) as served:
            uri = stores.join(served.url, "weights/model part 1.bin")
            with pytest.raises(StoreError) as excinfo:
                stores.fetch_bytes(uri, max_bytes=1000)
            assert reason(excinfo) == "TooLarge"
            with pytest.raises(StoreError) as excinfo:
                stores.fetch_to_file(uri, tmp_path / "x", expected_size=299_999)
            assert reason(excinfo) == "SizeMismatch"

    def test_unreachable(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        allow_http(monkeypatch)
        url = closed_port_url()
        with pytest.raises(StoreError) as excinfo:
            stores.fetch_to_file(url + "/m/w.bin", tmp_path / "x", timeout=5)
        assert reason(excinfo) == "Unreachable" and excinfo.value.retryable
        assert url in excinfo.value.message

    def test_https_with_private_ca(
        self, artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        tls = make_tls_files(tmp_path / "tls")
        no_local_proxy(monkeypatch)
        monkeypatch.delenv("MODELHUB_ALLOW_HTTP", raising=False)
        with serve_directory(artifact, tls=tls) as served:
            assert served.url.startswith("https://")
            uri = stores.join(served.url + "/", "config.json")
            # Not trusted by default: fail closed with a TLS reason.
            monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "tls" / "server.key"))  # no CA in there
            monkeypatch.delenv("SSL_CERT_DIR", raising=False)
            with pytest.raises(StoreError) as excinfo:
                stores.fetch_bytes(uri, timeout=5)
            assert reason(excinfo) == "TLSError"
            # Trusted through the standard SSL_CERT_FILE variable.
            monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca))
            assert stores.fetch_bytes(uri, timeout=5) == b'{"layers": 2}\n'


# ------------------------------------------------------------------------------------------- s3


class TestS3:
    @pytest.fixture
    def bucket(self, artifact: Path, monkeypatch: pytest.MonkeyPatch) -> str:
        endpoint = moto_endpoint()
        s3_env(monkeypatch, endpoint)
        name = f"models-{uuid.uuid4().hex[:12]}"
        upload_directory(endpoint, name, "sentiment/1.0", artifact)
        return name

    def test_fetch(self, bucket: str, artifact: Path, tmp_path: Path) -> None:
        base = f"s3://{bucket}/sentiment/1.0"
        assert stores.fetch_bytes(stores.join(base, "config.json")) == b'{"layers": 2}\n'
        out = tmp_path / "w.bin"
        n = stores.fetch_to_file(stores.join(base, "weights/model part 1.bin"), out, expected_size=300_000)
        assert n == 300_000
        assert out.read_bytes() == (artifact / "weights" / "model part 1.bin").read_bytes()

    def test_missing_key_and_bucket(self, bucket: str, tmp_path: Path) -> None:
        with pytest.raises(StoreError) as excinfo:
            stores.fetch_to_file(f"s3://{bucket}/sentiment/1.0/nope.bin", tmp_path / "x")
        assert reason(excinfo) == "NotFound" and "nope.bin" in excinfo.value.message
        assert not (tmp_path / "x").exists()
        with pytest.raises(StoreError) as excinfo:
            stores.fetch_bytes("s3://no-such-bucket-here/x/model.sig")
        assert reason(excinfo) == "NotFound"

    def test_size_checks(self, bucket: str, tmp_path: Path) -> None:
        uri = f"s3://{bucket}/sentiment/1.0/weights/model part 1.bin"
        with pytest.raises(StoreError) as excinfo:
            stores.fetch_bytes(uri, max_bytes=1000)
        assert reason(excinfo) == "TooLarge"
        with pytest.raises(StoreError) as excinfo:
            stores.fetch_to_file(uri, tmp_path / "x", expected_size=5)
        assert reason(excinfo) == "SizeMismatch"
        assert not (tmp_path / "x").exists()
