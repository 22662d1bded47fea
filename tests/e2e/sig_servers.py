"""Remote artifact stores for the signature e2e tests: a local HTTPS server and a local S3 (moto) server.

The operator is one real process for the whole e2e session and inherits the test process's environment when it
starts, so what it needs to reach these servers is put into ``os.environ`` when the test module is imported
(collection happens before any fixture runs): ``SSL_CERT_FILE`` with the system CAs plus a throwaway test CA,
and the standard ``AWS_*`` variables pointing at a port reserved for the moto server. The servers themselves
start lazily, when a test asks for them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.unit.store_servers import ServedDir, TlsFiles, make_tls_files, serve_directory, upload_directory

__all__ = ["RemoteStores", "prepare_remote_stores"]


@dataclass
class RemoteStores:
    """What the operator was told at start-up; `ready` is False when the operator runs outside this session."""

    tls: TlsFiles
    s3_port: int
    ready: bool
    _lock: threading.Lock
    _moto: object | None = None

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


def _add_no_proxy(hosts: str) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        current = [h for h in os.environ.get(name, "").split(",") if h]
        os.environ[name] = ",".join(current + [h for h in hosts.split(",") if h not in current])


def prepare_remote_stores() -> RemoteStores:
    """Make the operator-to-be trust a test CA and use a local S3 endpoint; call at module import time.

    Idempotent within one process. The CA bundle keeps the system CAs (other tests and tools keep working).
    """
    existing = _PREPARED.get("stores")
    if existing is not None:
        return existing
    work = Path(tempfile.mkdtemp(prefix="modelhub-sig-e2e-"))
    tls = make_tls_files(work / "tls")
    ready = os.environ.get("MODELHUB_OPERATOR") != "external"
    stores = RemoteStores(tls=tls, s3_port=_free_port(), ready=ready, _lock=threading.Lock())
    if ready:
        system = os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"
        bundle = work / "ca-bundle.pem"
        parts = [Path(system).read_bytes()] if Path(system).is_file() else []
        bundle.write_bytes(b"\n".join([*parts, tls.ca.read_bytes()]))
        os.environ["SSL_CERT_FILE"] = str(bundle)
        os.environ.update({
            "AWS_ENDPOINT_URL": stores.s3_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        })
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3"):
            os.environ.pop(name, None)
        _add_no_proxy("127.0.0.1,localhost")
    _PREPARED["stores"] = stores
    return stores


_PREPARED: dict[str, RemoteStores] = {}
