"""Real local servers for the store and loader tests: a static HTTP(S) file server and a moto S3 server.

Import these helpers explicitly (``from tests.unit.store_servers import ...``); nothing here is a fixture that
pytest discovers by itself.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import functools
import ipaddress
import os
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

# ------------------------------------------------------------------------------------------ http(s) server


@dataclass
class ServedDir:
    """A directory served over HTTP(S). `requests` records every request path, in arrival order.

    Knobs for failure tests: `fail_first[path] = n` answers the first n requests for that path with 503;
    `redirects[path] = url` answers 302 to url; `delay` seconds are slept before each answer (to observe
    concurrency, reported as `max_in_flight`).
    """

    url: str
    root: Path
    requests: list[str] = field(default_factory=list)
    fail_first: dict[str, int] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def file_requests(self) -> list[str]:
        return [p for p in self.requests if not p.endswith("/model.sig")]


class _Handler(SimpleHTTPRequestHandler):
    served: ServedDir

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:
        served = self.served
        with served.lock:
            served.requests.append(self.path)
            served.in_flight += 1
            served.max_in_flight = max(served.max_in_flight, served.in_flight)
            failing = served.fail_first.get(self.path, 0)
            if failing:
                served.fail_first[self.path] = failing - 1
        try:
            if served.delay:
                time.sleep(served.delay)
        finally:
            # Counted only until the answer starts: once the client has its answer it may send the next request
            # before this thread gets here, and that overlap is not concurrency of the client.
            with served.lock:
                served.in_flight -= 1
        if failing:
            self.send_error(503, "try again")
        elif self.path in served.redirects:
            self.send_response(302)
            self.send_header("Location", served.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            super().do_GET()


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the CA certificate to trust (SSL_CERT_FILE)
    cert: Path  # the server certificate chain
    key: Path  # the server private key


def make_tls_files(directory: Path) -> TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost, signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelhub test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(ca=directory / "ca.pem", cert=directory / "server.pem", key=directory / "server.key")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files


@contextlib.contextmanager
def serve_directory(root: Path, *, tls: TlsFiles | None = None) -> Iterator[ServedDir]:
    """Serve `root` on 127.0.0.1 (random port) from a thread; https when `tls` is given."""
    scheme = "https" if tls else "http"
    served = ServedDir(url="", root=root)
    handler = type("Handler", (_Handler,), {"served": served})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    server.daemon_threads = True
    if tls is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls.cert, tls.key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    served.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (the port was just bound and released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def allow_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain http is refused by the stores unless MODELHUB_ALLOW_HTTP=1; tests serving http set it."""
    monkeypatch.setenv("MODELHUB_ALLOW_HTTP", "1")
    no_local_proxy(monkeypatch)


def no_local_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


# ---------------------------------------------------------------------------------------------- s3 (moto)

_MOTO_LOCK = threading.Lock()
_MOTO: dict[str, object] = {}


def moto_endpoint() -> str:
    """The URL of one moto S3 server per test process (started on first use, stopped at exit)."""
    with _MOTO_LOCK:
        if "url" not in _MOTO:
            from moto.server import ThreadedMotoServer

            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            _MOTO["server"] = server
            _MOTO["url"] = f"http://{host}:{port}"
            atexit.register(server.stop)
        return str(_MOTO["url"])


def s3_env(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """Point boto3 (through the standard variables only) at the local server with fake credentials."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    no_local_proxy(monkeypatch)


def upload_directory(endpoint: str, bucket: str, prefix: str, root: Path) -> list[str]:
    """Create `bucket` and upload every file under `root` to `prefix/<relative path>`; return the keys."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    try:
        client.create_bucket(Bucket=bucket)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    keys = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            key = (
                f"{prefix.rstrip('/')}/{path.relative_to(root).as_posix()}"
                if prefix
                else path.relative_to(root).as_posix()
            )
            client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
            keys.append(key)
    return keys
