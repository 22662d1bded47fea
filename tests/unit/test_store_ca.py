"""The https store's CA per namespace (spec.artifact.caConfigMapRef): reading the ConfigMap into PEM (what the
operator's own bundle fetch uses), and the loader trusting exactly that CA, instead of the system roots, against
real TLS servers."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from tests.unit.store_servers import make_tls_files, no_local_proxy, serve_directory
from tests.unit.test_loader import Signed, assert_loaded, load_args, run_load

from modelhub.api.modelversion import ModelVersionSpec
from modelhub.domain import storeca
from modelhub.loader import load

pytest_plugins = ["tests.unit.test_loader"]  # the `signed` fixture


# --------------------------------------------------------------------------------------------- the API field


def test_the_field_parses_and_the_key_defaults_to_ca_crt() -> None:
    spec = ModelVersionSpec.model_validate({
        "model": "m", "version": "1.0.0",
        "artifact": {"uri": "https://store.internal/m/", "digest": "sha256:" + "a" * 64,
                     "caConfigMapRef": {"name": "store-ca"}},
    })
    assert spec.artifact.ca_config_map_ref is not None
    assert spec.artifact.ca_config_map_ref.key == "ca.crt"
    dumped = spec.model_dump(by_alias=True, exclude_none=True)
    assert storeca.store_ca_ref(dumped["artifact"]) == storeca.StoreCARef("store-ca", "ca.crt")
    assert storeca.store_ca_ref({"uri": "https://x/"}) is None
    with pytest.raises(ValueError, match="caConfigMapRef"):
        ModelVersionSpec.model_validate({
            "model": "m", "version": "1.0.0",
            "artifact": {"uri": "https://s/m/", "digest": "sha256:" + "a" * 64,
                         "caConfigMapRef": {"name": "Not_A_Name"}},
        })


# ------------------------------------------------------------------------------- the ConfigMap into PEM bytes


@pytest.fixture(scope="module")
def ca_pem(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_tls_files(tmp_path_factory.mktemp("tls")).ca.read_bytes()


def test_ca_from_configmap_data_and_binary_data(ca_pem: bytes) -> None:
    ref = storeca.StoreCARef("store-ca")
    assert storeca.ca_pem_from_configmap({"data": {"ca.crt": ca_pem.decode()}}, ref) == ca_pem
    binary = {"binaryData": {"root.pem": base64.b64encode(ca_pem).decode()}}
    assert storeca.ca_pem_from_configmap(binary, storeca.StoreCARef("store-ca", "root.pem")) == ca_pem
    two = ca_pem + b"\n" + ca_pem  # a bundle of several roots is fine
    assert storeca.ca_pem_from_configmap({"data": {"ca.crt": two.decode()}}, ref) == two


@pytest.mark.parametrize(("configmap", "reason", "needle"), [
    (None, "StoreCANotFound", "ConfigMap tenant/store-ca (spec.artifact.caConfigMapRef) does not exist"),
    ({"data": {"other": "x"}}, "StoreCANotFound", "ConfigMap tenant/store-ca has no key ca.crt"),
    ({"data": {"ca.crt": "hello"}}, "InvalidCertificate", "holds no PEM certificate"),
    ({"data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}},
     "InvalidCertificate", "ConfigMap tenant/store-ca key ca.crt"),
    ({"binaryData": {"ca.crt": "!!!"}}, "InvalidCertificate", "is not base64"),
    ({"data": {"ca.crt": "x" * (storeca.MAX_STORE_CA_BYTES + 1)}}, "InvalidCertificate", "more than the"),
])
def test_ca_from_configmap_refusals(configmap: dict | None, reason: str, needle: str) -> None:
    with pytest.raises(storeca.StoreCAError) as err:
        storeca.ca_pem_from_configmap(configmap, storeca.StoreCARef("store-ca"), "tenant")
    assert err.value.reason == reason
    assert needle in err.value.message and "\n" not in err.value.message


# ------------------------------------------------------------------------------ the loader against real TLS


@pytest.fixture
def tls_env(monkeypatch: pytest.MonkeyPatch) -> None:
    no_local_proxy(monkeypatch)
    monkeypatch.delenv("MODELHUB_ALLOW_HTTP", raising=False)
    for name in load.STORE_CA_ENV:
        monkeypatch.delenv(name, raising=False)


def test_the_loader_trusts_the_store_ca(signed: Signed, tmp_path: Path, tls_env: None) -> None:
    tls = make_tls_files(tmp_path / "tls")
    dest = tmp_path / "dest"
    with serve_directory(signed.root, tls=tls) as served:
        assert run_load(*load_args(served.url + "/", signed, dest, "--store-ca-file", str(tls.ca))) == 0
    assert_loaded(dest, signed)
    assert all(name not in os.environ for name in load.STORE_CA_ENV)  # put back as it was


def test_the_store_ca_replaces_the_system_roots(
    signed: Signed, tmp_path: Path, tls_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The server's CA is in the roots the environment names (a file and a hashed directory, as the system's):
    without --store-ca-file the load succeeds; with another CA as the store CA it is refused, since the store CA
    stands instead of those roots, not beside them."""
    import subprocess

    tls = make_tls_files(tmp_path / "tls")
    other = make_tls_files(tmp_path / "other")
    hashed = tmp_path / "hashed"
    hashed.mkdir()
    subject_hash = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", str(tls.ca)], capture_output=True,
                                  text=True, check=True).stdout.strip()
    (hashed / f"{subject_hash}.0").write_bytes(tls.ca.read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "absent.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(hashed))
    with serve_directory(signed.root, tls=tls) as served:
        assert run_load(*load_args(served.url + "/", signed, tmp_path / "system")) == 0
        capsys.readouterr()
        dest = tmp_path / "dest"
        assert run_load(*load_args(served.url + "/", signed, dest, "--store-ca-file", str(other.ca))) == 1
    # (the test server's thread prints the failed handshake on stderr too)
    line = next(ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error: "))
    assert line.startswith("error: TLSError: ") and "CERTIFICATE_VERIFY_FAILED" in line, line
    assert not (dest / "model").exists()
    assert os.environ["SSL_CERT_DIR"] == str(hashed)  # put back as it was


def test_the_store_ca_also_covers_a_bundle_at_an_https_uri(signed: Signed, tmp_path: Path, tls_env: None) -> None:
    tls = make_tls_files(tmp_path / "tls")
    dest = tmp_path / "dest"
    with serve_directory(signed.root, tls=tls) as served:
        args = load_args(served.url + "/", signed, dest, "--store-ca-file", str(tls.ca),
                         "--signature-uri", served.url + "/model.sig")
        assert run_load(*args) == 0
    assert served.requests.count("/model.sig") == 1


@pytest.mark.parametrize(("content", "needle"), [
    (None, "cannot read the store CA"),
    (b"not a certificate", "holds no PEM certificate"),
    (b"x" * (storeca.MAX_STORE_CA_BYTES + 10), "more than the"),
])
def test_an_unusable_store_ca_file_is_refused_before_any_fetch(
    signed: Signed, tmp_path: Path, tls_env: None, capsys: pytest.CaptureFixture[str], content: bytes | None,
    needle: str,
) -> None:
    ca = tmp_path / "ca.crt"
    if content is not None:
        ca.write_bytes(content)
    dest = tmp_path / "dest"
    with serve_directory(signed.root, tls=make_tls_files(tmp_path / "tls")) as served:
        assert run_load(*load_args(served.url + "/", signed, dest, "--store-ca-file", str(ca))) == 1
    assert served.requests == []
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("error: InvalidCertificate: ") and needle in line, line


def test_store_ca_points_every_tls_client_at_the_file_and_puts_the_environment_back(
    tmp_path: Path, ca_pem: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The https stores (OpenSSL's file and directory variables) and the S3 endpoint (AWS_CA_BUNDLE, read by the
    fetch engine for s3://) all see the store CA and nothing else while inside; the caller's values come back."""
    ca = tmp_path / "ca.crt"
    ca.write_bytes(ca_pem)
    monkeypatch.setenv("SSL_CERT_DIR", "/etc/ssl/certs")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("AWS_CA_BUNDLE", "/somewhere/else.pem")
    path = load.read_store_ca(ca)
    assert path == str(ca.resolve())
    with load.store_ca(path):
        assert (os.environ["SSL_CERT_FILE"], os.environ["SSL_CERT_DIR"], os.environ["AWS_CA_BUNDLE"]) == (path, "", path)
    assert os.environ["SSL_CERT_DIR"] == "/etc/ssl/certs" and "SSL_CERT_FILE" not in os.environ
    assert os.environ["AWS_CA_BUNDLE"] == "/somewhere/else.pem"
    with pytest.raises(RuntimeError), load.store_ca(path):
        raise RuntimeError("a failed load")
    assert "SSL_CERT_FILE" not in os.environ  # put back on the way out of a failure too
