"""A real hostile HTTP(S) store on 127.0.0.1: it serves a directory, except for the paths told to misbehave.

Behaviours (``HostileServer.modes[path] = mode``):

``"flood"``      200 without Content-Length, then zeros until the client goes away (bytes sent: ``sent[path]``)
``"grow"``       200 with the real file, then ``extra`` more bytes, no Content-Length
``"trickle"``    200 with the real Content-Length, then one byte every ``trickle_every`` seconds
``"silent"``     reads the request, never answers
``"slow-head"``  sends the status line, then one header byte every ``trickle_every`` seconds
``"no-tls"``     (whole server, ``tls_silent=True``) accepts TCP and never speaks TLS
``("redirect", url)``  302 to url

Everything stops when the context manager exits (the waiting handlers see ``closing`` and return).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import BaseRequestHandler, ThreadingTCPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from tests.unit.store_servers import TlsFiles


@dataclass
class HostileServer:
    root: Path
    url: str = ""
    modes: dict[str, Any] = field(default_factory=dict)
    extra: int = 50 * 1024 * 1024
    trickle_every: float = 0.5
    sent: dict[str, int] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    closing: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _read_request(sock: socket.socket) -> str | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return None
        data += chunk
        if len(data) > 65536:
            return None
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    return urlsplit(parts[1]).path if len(parts) >= 2 else None


def _wait(server: HostileServer, seconds: float) -> bool:
    """Sleep; False when the server is closing."""
    return not server.closing.wait(seconds)


def _handle(server: HostileServer, sock: socket.socket) -> None:
    path = _read_request(sock)
    if path is None:
        return
    with server.lock:
        server.requests.append(path)
    mode = server.modes.get(path)
    file = server.root / unquote(path).lstrip("/")
    body = file.read_bytes() if file.is_file() else None

    def count(n: int) -> None:
        with server.lock:
            server.sent[path] = server.sent.get(path, 0) + n

    if mode is None:
        if body is None:
            sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        count(len(body))
        return
    if isinstance(mode, tuple) and mode[0] == "redirect":
        sock.sendall(
            b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            % mode[1].encode()
        )
        return
    if mode == "silent":
        while _wait(server, 0.2):
            pass
        return
    if mode == "slow-head":
        sock.sendall(b"HTTP/1.1 200 OK\r\n")
        while _wait(server, server.trickle_every):
            sock.sendall(b"X")
        return
    if mode == "trickle":
        data = body or b"x" * 1000
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(data))
        for i in range(len(data)):
            if not _wait(server, server.trickle_every):
                return
            sock.sendall(data[i : i + 1])
            count(1)
        return
    if mode in ("flood", "grow"):
        sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        if mode == "grow" and body:
            sock.sendall(body)
            count(len(body))
        block = b"\0" * 65536
        limit = server.extra if mode == "grow" else 1 << 40
        sent = 0
        while sent < limit and not server.closing.is_set():
            sock.sendall(block)
            sent += len(block)
            count(len(block))
        return
    raise AssertionError(f"unknown mode {mode!r}")


@contextlib.contextmanager
def hostile_server(root: Path, *, tls: TlsFiles | None = None, tls_silent: bool = False) -> Iterator[HostileServer]:
    """Serve `root` on 127.0.0.1 (random port), https when `tls` is given."""
    server = HostileServer(root=root)
    ctx = None
    if tls is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls.cert, tls.key)

    class Handler(BaseRequestHandler):
        def handle(self) -> None:
            sock: socket.socket = self.request
            sock.settimeout(30)
            try:
                if tls_silent:
                    while _wait(server, 0.2):
                        pass
                    return
                if ctx is not None:
                    sock = ctx.wrap_socket(sock, server_side=True)
                _handle(server, sock)
            except (OSError, ssl.SSLError):
                pass  # the client cut us off: that is the point

    class Server(ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    tcp = Server(("127.0.0.1", 0), Handler)
    scheme = "https" if (tls is not None or tls_silent) else "http"
    server.url = f"{scheme}://127.0.0.1:{tcp.server_address[1]}"
    thread = threading.Thread(target=tcp.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.closing.set()
        tcp.shutdown()
        tcp.server_close()
        thread.join(timeout=5)
        time.sleep(0)
