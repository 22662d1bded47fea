"""Remote artifact stores for the signature e2e tests: a local HTTPS server and a local S3 (moto) server.

The test module starts its operator process with :attr:`RemoteStores.env`: ``SSL_CERT_FILE`` with the system
CAs plus a throwaway test CA, and the standard ``AWS_*`` variables pointing at a port reserved for the moto
server. The servers themselves start lazily, when a test asks for them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.unit.store_servers import ServedDir, TlsFiles, make_tls_files, serve_directory, upload_directory

__all__ = ["RemoteStores", "remote_stores"]


@dataclass
class RemoteStores:
    """The servers, and what the operator must be told; `ready` is False when the operator runs outside the tests
    (MODELHUB_OPERATOR=external), so it was told nothing."""

    tls: TlsFiles
    s3_port: int
    ready: bool
    _lock: threading.Lock
    _moto: object | None = None
    env: dict[str, str] = field(default_factory=dict)  # for the operator process

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @contextlib.contextmanager
    def https(self, root: Path) -> Iterator[ServedDir]:
        """Serve `root` over HTTPS on 127.0.0.1 with a certificate of the CA the operator trusts."""
        with serve_directory(root, tls=self.tls) as served:
            yield served

    def s3_upload(self, bucket: str, prefix: str, root: Path) -> list[str]:
        """Start the S3 server (once) on the reserved port, then upload `root` under s3://bucket/prefix/."""
        with self._lock:
            if self._moto is None:
                from moto.server import ThreadedMotoServer

                server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.s3_port, verbose=False)
                server.start()
                self._moto = server
        return upload_directory(self.s3_endpoint, bucket, prefix, root)

    def stop(self) -> None:
        with self._lock:
            if self._moto is not None:
                self._moto.stop()  # type: ignore[attr-defined]
                self._moto = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _no_proxy(hosts: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for name in ("NO_PROXY", "no_proxy"):
        current = [h for h in os.environ.get(name, "").split(",") if h]
        out[name] = ",".join(current + [h for h in hosts if h not in current])
    return out


def remote_stores(work: Path, *, ready: bool = True) -> RemoteStores:
    """A test CA (and its HTTPS server certificate) and a port for the S3 server, under `work`.

    `env` is what the operator process needs to reach them: SSL_CERT_FILE with the system CAs plus the test CA
    (so nothing else it talks to stops being trusted), and the standard AWS variables for the S3 endpoint.
    """
    tls = make_tls_files(work / "tls")
    stores = RemoteStores(tls=tls, s3_port=_free_port(), ready=ready, _lock=threading.Lock())
    system = os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"
    bundle = work / "ca-bundle.pem"
    parts = [Path(system).read_bytes()] if Path(system).is_file() else []
    bundle.write_bytes(b"\n".join([*parts, tls.ca.read_bytes()]))
    stores.env = {
        "SSL_CERT_FILE": str(bundle),
        "AWS_ENDPOINT_URL": stores.s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,  # nothing from the ~/.aws of whoever runs the tests
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        **_no_proxy(("127.0.0.1", "localhost")),
        # The operator's bundle fetches are restricted (adapters/bundles.py): these servers are on loopback,
        # the file:// bundles under the test run's temporary directory, and the S3 server is reached with the
        # operator's own (test) credentials.
        "MODELHUB_FETCH_ALLOW_CIDRS": "127.0.0.0/8",
        "MODELHUB_BUNDLE_FILE_ROOTS": str(work.resolve().parent),
        "MODELHUB_S3_AMBIENT_CREDENTIALS": "1",
    }
    return stores
