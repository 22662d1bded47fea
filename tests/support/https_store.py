"""An https artifact store with a private CA, for the real node's pods: the e2e tests and the demo.

The server runs on this host, bound to the real node's bridge address (pods reach the host there); its
certificate names that IP and is issued by a throwaway CA made here. The CA's PEM goes into the tenant's
ConfigMap (``spec.artifact.caConfigMapRef``). From the shell (the demo):

    python -m tests.support.https_store --dir DIR --host 10.88.x.1 --ca-out ca.crt --url-out url

serves DIR until killed and writes the CA and the base URL (``https://10.88.x.1:PORT``) once it listens.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import ipaddress
import signal
import ssl
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pki:
    ca_pem: bytes  # what the tenant puts in the ConfigMap
    cert_pem: bytes
    key_pem: bytes


def make_ca(name: str = "modelhub test store CA") -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_pki(host: str) -> Pki:
    """A CA and a server certificate for `host` (an IP address or a DNS name) issued by it."""
    ca_key, ca = make_ca()
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return Pki(
        ca_pem=ca.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
    )


def other_ca_pem() -> bytes:
    """A CA that issued nothing the store presents: the wrong CA."""
    return make_ca("modelhub some other CA")[1].public_bytes(serialization.Encoding.PEM)


@dataclass
class Store:
    url: str
    ca_pem: bytes
    requests: list[str] = field(default_factory=list)


class _Handler(SimpleHTTPRequestHandler):
    store: Store

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass

    def do_GET(self) -> None:
        self.store.requests.append(self.path)
        super().do_GET()


@contextlib.contextmanager
def serve(root: Path, host: str) -> Iterator[Store]:
    """Serve `root` over https on `host` (a free port) from a thread until the block ends."""
    pki = make_pki(host)
    store = Store(url="", ca_pem=pki.ca_pem)
    with tempfile.TemporaryDirectory(prefix="modelhub-store-") as tmp:
        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert.write_bytes(pki.cert_pem)
        key.write_bytes(pki.key_pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
    handler = type("Handler", (_Handler,), {"store": store})
    server = ThreadingHTTPServer((host, 0), functools.partial(handler, directory=str(root)))
    server.daemon_threads = True
    server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    store.url = f"https://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield store
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True, type=Path, help="directory to serve")
    parser.add_argument("--host", required=True, help="address to listen on (and to name in the certificate)")
    parser.add_argument("--ca-out", required=True, type=Path, help="where to write the CA certificate (PEM)")
    parser.add_argument("--url-out", required=True, type=Path, help="where to write the base URL")
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with serve(args.dir, args.host) as store:
        args.ca_out.write_bytes(store.ca_pem)
        args.url_out.write_text(store.url + "\n")
        stop.wait()


if __name__ == "__main__":
    main()
