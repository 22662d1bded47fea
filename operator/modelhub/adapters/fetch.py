"""Bounded transfers from hostile stores: every byte counted, every second accounted for.

One engine serves the operator (signature bundles, small) and the loader (model files, large):

* :class:`Limits` - a byte cap, an overall deadline, a minimum rate (bytes per ``window`` seconds; a store
  trickling 1 byte/s is cut off after one window), the longest silence (``read_timeout``), an optional stop
  event. A hard deadline is enforced by a watchdog that shuts the socket down, so nothing (a trickled header,
  a stalled TLS handshake) outlives it.
* :class:`NetworkPolicy` - where the process may connect: resolved addresses are checked (not the host name)
  and the connection is pinned to the checked address (no DNS rebinding between check and connect); redirects
  are followed up to ``max_redirects`` (0: refused) and every hop is checked again.
* :class:`LocalPolicy` - which local directories file:// and pvc:// may read (None: any, for the loader in a
  tenant's own pod; the operator defaults to none at all).
* :class:`Budget` - a byte budget shared by several transfers (the loader's total limit).

http(s) goes through :mod:`http.client` directly (``read1``: at most one ``recv`` per read, so the deadline and
the rate are checked between small reads); ``s3://`` is turned into a presigned GET with the given (or the
ambient) credentials and then fetched the same way, so S3 gets the same bounds and the same address checks.

Every failure is a :class:`~modelhub.adapters.stores.StoreError`; the reasons added here: ``TooLarge``,
``TooSlow`` (below the minimum rate), ``Timeout`` (overall deadline), ``Refused`` (a policy said no: address,
redirect, local root, credentials), ``Cancelled``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import heapq
import http.client
import ipaddress
import itertools
import os
import socket
import ssl
import stat
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from modelhub.adapters.stores import Location, StoreError, parse, redact

__all__ = [
    "DEFAULT_DENY",
    "Budget",
    "LocalPolicy",
    "Limits",
    "NetworkPolicy",
    "S3Credentials",
    "parse_cidrs",
    "read_bytes",
    "stream_to",
]

CHUNK = 256 * 1024
_USER_AGENT = "modelhub"

# Loopback, link-local (169.254.169.254, the cloud metadata address, lives here), unspecified, multicast,
# broadcast, and the metadata addresses outside link-local (AWS IPv6, Alibaba).
DEFAULT_DENY: tuple[str, ...] = (
    "127.0.0.0/8",
    "0.0.0.0/8",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "100.100.100.200/32",
    "::1/128",
    "::/128",
    "fe80::/10",
    "ff00::/8",
    "fd00:ec2::254/128",
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_cidrs(text: str | None, what: str = "address list") -> tuple[IPNetwork, ...]:
    """Comma- or space-separated CIDRs (or single addresses) -> networks; ValueError names the bad entry."""
    out: list[IPNetwork] = []
    for raw in (text or "").replace(",", " ").split():
        try:
            out.append(ipaddress.ip_network(raw, strict=False))
        except ValueError:
            raise ValueError(f"{what}: {raw!r} is not an IP address or CIDR") from None
    return tuple(out)


# ------------------------------------------------------------------------------------------- policies


@dataclass(frozen=True)
class NetworkPolicy:
    """Which addresses a fetch may connect to. ``allow`` wins over ``deny``; ``check_addresses=False``
    (the loader, in the tenant's own pod) connects anywhere and honours the proxy variables."""

    deny: tuple[IPNetwork, ...] = field(default_factory=lambda: parse_cidrs(" ".join(DEFAULT_DENY)))
    allow: tuple[IPNetwork, ...] = ()
    check_addresses: bool = True
    max_redirects: int = 0
    use_proxy: bool = False
    allow_http: bool = False

    @classmethod
    def unrestricted(cls, *, allow_http: bool = False) -> NetworkPolicy:
        return cls(deny=(), check_addresses=False, max_redirects=5, use_proxy=True, allow_http=allow_http)

    def refusal(self, address: str) -> str | None:
        """Why `address` may not be connected to (None: it may)."""
        if not self.check_addresses:
            return None
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.allow):
            return None
        for net in self.deny:
            if ip in net:
                kind = (
                    "a loopback" if ip.is_loopback else "a link-local/metadata" if ip.is_link_local
                    else "a metadata" if str(net).startswith(("100.100.100.200", "fd00:ec2")) else "a refused"
                )
                return f"{address} is {kind} address ({net})"
        return None


@dataclass(frozen=True)
class LocalPolicy:
    """Local directories file:// and pvc:// may read; None means any (the loader); () means none."""

    roots: tuple[str, ...] | None = None

    def check_path(self, path: str, uri: str) -> None:
        if self.roots is None:
            return
        if not self.roots:
            raise StoreError("Refused", f"{redact(uri)}: local files are not allowed here (no allowed root)")
        if not any(_under(path, root) for root in self.roots):
            raise StoreError("Refused", f"{redact(uri)} is outside the allowed roots")


def _under(path: str, root: str) -> bool:
    root = os.path.realpath(root).rstrip("/") or "/"
    return root == "/" or path == root or path.startswith(root + "/")


@dataclass(frozen=True)
class S3Credentials:
    """Explicit S3 credentials (e.g. from a Secret in the tenant's namespace); never mixed with ambient ones."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    region: str | None = None
    endpoint_url: str | None = None

    def __repr__(self) -> str:  # never print the secret
        return f"S3Credentials(access_key_id={self.access_key_id!r}, region={self.region!r})"


@dataclass
class Limits:
    """Bounds of one transfer (see the module docstring). ``deadline`` is absolute (time.monotonic())."""

    max_bytes: int | None = None
    deadline: float | None = None
    min_rate: float = 0.0  # bytes per second, averaged over each window
    window: float = 10.0
    read_timeout: float = 60.0  # longest silence
    connect_timeout: float = 10.0
    stop: threading.Event | None = None
    budget: Budget | None = None

    @classmethod
    def within(cls, seconds: float | None, **kwargs: Any) -> Limits:
        return cls(deadline=None if seconds is None else time.monotonic() + seconds, **kwargs)

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def timeout(self, base: float) -> float:
        left = self.remaining()
        return max(0.05, base if left is None else min(base, left))


class Budget:
    """A byte budget shared by concurrent transfers; taking more than is left is TooLarge."""

    def __init__(self, total: int, what: str) -> None:
        self.total = total
        self.what = what
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        return self._used

    def share(self) -> Budget:
        """A view that takes from this budget and can give back exactly what it took (a retried transfer)."""
        return _Share(self)

    def release(self) -> None:
        """Give back what this share took (no-op on the budget itself)."""

    def take(self, n: int, uri: str) -> None:
        with self._lock:
            self._used += n
            over = self._used > self.total
        if over:
            raise StoreError("TooLarge", f"{redact(uri)}: {self.what} of {self.total} bytes exceeded")


class _Share(Budget):
    def __init__(self, parent: Budget) -> None:
        super().__init__(parent.total, parent.what)
        self._parent = parent

    def take(self, n: int, uri: str) -> None:
        with self._lock:
            self._used += n
        self._parent.take(n, uri)

    def release(self) -> None:
        with self._lock:
            n, self._used = self._used, 0
        with self._parent._lock:
            self._parent._used -= n


# ------------------------------------------------------------------------------------------ watchdog


class _Watchdog:
    """One thread that runs callbacks at their deadlines (shutting sockets down), cancellable."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()
        self._cond = threading.Condition()
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def at(self, when: float, fn: Callable[[], None]) -> int:
        with self._cond:
            handle = next(self._ids)
            heapq.heappush(self._heap, (when, handle, fn))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="fetch-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()
            return handle

    def cancel(self, handle: int) -> None:
        with self._cond:
            self._cancelled.add(handle)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                when, handle, fn = self._heap[0]
                now = time.monotonic()
                if handle in self._cancelled:
                    heapq.heappop(self._heap)
                    self._cancelled.discard(handle)
                    continue
                if when > now:
                    self._cond.wait(when - now)
                    continue
                heapq.heappop(self._heap)
            with contextlib.suppress(Exception):
                fn()


_WATCHDOG = _Watchdog()


@contextlib.contextmanager
def _guard(limits: Limits, sock_of: Callable[[], socket.socket | None]) -> Iterator[dict[str, bool]]:
    """Shut the socket down at the deadline (and when `stop` is set, polled every second)."""
    fired = {"deadline": False, "done": False}

    def kill() -> None:
        fired["deadline"] = True
        sock = sock_of()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    handles = []
    if limits.deadline is not None:
        handles.append(_WATCHDOG.at(limits.deadline, kill))
    if limits.stop is not None:
        stop = limits.stop

        def poll() -> None:
            if stop.is_set():
                kill()
            elif not fired["done"]:
                handles.append(_WATCHDOG.at(time.monotonic() + 1.0, poll))

        handles.append(_WATCHDOG.at(time.monotonic() + 1.0, poll))
    try:
        yield fired
    finally:
        fired["done"] = True  # stops the stop-poller from re-arming
        for h in handles:
            _WATCHDOG.cancel(h)


def _check_time(limits: Limits, uri: str) -> None:
    if limits.stop is not None and limits.stop.is_set():
        raise StoreError("Cancelled", f"{redact(uri)}: transfer cancelled")
    left = limits.remaining()
    if left is not None and left <= 0:
        raise StoreError("Timeout", f"{redact(uri)}: transfer deadline exceeded")


class _Meter:
    """Counts bytes against the cap, the budget and the minimum rate."""

    def __init__(self, limits: Limits, uri: str, what: str) -> None:
        self.limits = limits
        self.uri = uri
        self.what = what
        self.got = 0
        self._w_t = time.monotonic()
        self._w_b = 0

    def add(self, n: int) -> None:
        lim = self.limits
        self.got += n
        if lim.max_bytes is not None and self.got > lim.max_bytes:
            reason = "SizeMismatch" if self.what == "the signed manifest says" else "TooLarge"
            raise StoreError(reason, f"{redact(self.uri)} is more than the {lim.max_bytes} bytes {self.what}")
        if lim.budget is not None:
            lim.budget.take(n, self.uri)
        _check_time(lim, self.uri)
        self.tick()

    def tick(self) -> None:
        lim = self.limits
        if lim.min_rate <= 0:
            return
        now = time.monotonic()
        span = now - self._w_t
        if span >= lim.window:
            rate = (self.got - self._w_b) / span
            if rate < lim.min_rate:
                raise StoreError(
                    "TooSlow",
                    f"{redact(self.uri)}: {rate:.0f} bytes/s over {span:.0f}s, below the minimum of "
                    f"{lim.min_rate:.0f} bytes/s",
                )
            self._w_t, self._w_b = now, self.got


# ------------------------------------------------------------------------------------------------ http


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to one already-checked address; the certificate is checked against the URL's host name."""

    def __init__(self, host: str, port: int, address: str, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        # Handshake after self.sock is set, so that the watchdog can shut a stalled handshake down.
        self.sock = self._context.wrap_socket(  # type: ignore[attr-defined]
            sock, server_hostname=self.host, do_handshake_on_connect=False
        )
        self.sock.do_handshake()


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


_SSL_LOCK = threading.Lock()
_SSL_CACHE: dict[tuple[str | None, ...], ssl.SSLContext] = {}


def _ssl_context(ca_file: str | None = None, ca_pem: bytes | None = None) -> ssl.SSLContext:
    """The verifying context: the system CAs (or SSL_CERT_FILE/SSL_CERT_DIR), or only `ca_pem` (a tenant's
    store CA, spec.artifact.caConfigMapRef) or only `ca_file` when given (AWS_CA_BUNDLE for an S3 endpoint, as
    boto3 does)."""
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"), ca_file,
           hashlib.sha256(ca_pem).hexdigest() if ca_pem else None)
    with _SSL_LOCK:
        ctx = _SSL_CACHE.get(key)
        if ctx is None:
            if ca_pem:
                try:
                    ctx = ssl.create_default_context(cadata=ca_pem.decode("ascii", "replace"))
                except (ssl.SSLError, ValueError):
                    raise StoreError("TLSError", "the store CA holds no usable PEM certificate") from None
            else:
                ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
            if len(_SSL_CACHE) > 8:
                _SSL_CACHE.clear()
            _SSL_CACHE[key] = ctx
        return ctx


def _resolve(host: str, port: int, net: NetworkPolicy, uri: str, limits: Limits) -> str:
    """The first resolved address the policy allows (the connection is pinned to it)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise StoreError("Unreachable", f"{redact(uri)}: cannot resolve {host}: {exc.strerror}") from None
    _check_time(limits, uri)
    refusals = []
    for info in infos:
        address = str(info[4][0])
        why = net.refusal(address)
        if why is None:
            return address
        refusals.append(why)
    raise StoreError(
        "Refused", f"{redact(uri)}: {host} resolves only to addresses this operator may not fetch from ({refusals[0]})"
    )


def _proxy_for(scheme: str, host: str) -> tuple[str, int] | None:
    if urllib.request.proxy_bypass(host):
        return None
    proxy = urllib.request.getproxies().get(scheme)
    if not proxy:
        return None
    parts = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
    if not parts.hostname:
        return None
    return parts.hostname, parts.port or 80


def _http_status_error(uri: str, status: int, reason: str) -> StoreError:
    shown = redact(uri)
    if status in (404, 410):
        return StoreError("NotFound", f"{shown}: HTTP {status} {reason}")
    if status in (401, 403):
        return StoreError("Forbidden", f"{shown}: HTTP {status} {reason}")
    if status >= 500 or status in (408, 429):
        return StoreError("Unreachable", f"{shown}: HTTP {status} {reason}")
    return StoreError("BadResponse", f"{shown}: HTTP {status} {reason}")


@contextlib.contextmanager
def _http_open(
    url: str, shown_uri: str, limits: Limits, net: NetworkPolicy, *, plain_http_ok: bool = False,
    ca_file: str | None = None, headers: Mapping[str, str] | None = None, ca_pem: bytes | None = None,
) -> Iterator[tuple[http.client.HTTPResponse, socket.socket | None]]:
    """GET `url` (following allowed redirects); yields the response with its status checked (2xx).

    `headers` are sent besides the fixed ones; an ``Authorization`` header goes only to the first URL's
    scheme, host and port (a registry redirecting a blob to a storage host must not receive the token). A 401
    carries the server's ``WWW-Authenticate`` value as :attr:`StoreError.challenge`."""
    current = url
    origin = _origin(url)
    for hop in range(net.max_redirects + 1):
        parts = urllib.parse.urlsplit(current)
        scheme = parts.scheme.lower()
        if scheme == "http" and not (net.allow_http or (plain_http_ok and hop == 0)):  # (the S3 endpoint)
            raise StoreError("Unsupported", f"{redact(shown_uri)}: plain http is refused ({redact(current)})")
        if scheme not in ("http", "https") or not parts.hostname:
            raise StoreError("Unsupported", f"{redact(shown_uri)}: refused location {redact(current)}")
        host = parts.hostname
        port = parts.port or (443 if scheme == "https" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn: http.client.HTTPConnection
        proxy = _proxy_for(scheme, host) if net.use_proxy else None
        timeout = limits.timeout(limits.connect_timeout)
        if proxy is not None:
            if scheme == "https":
                conn = http.client.HTTPSConnection(proxy[0], proxy[1], timeout=timeout, context=_ssl_context(ca_file, ca_pem))
                conn.set_tunnel(host, port)
            else:
                conn = http.client.HTTPConnection(proxy[0], proxy[1], timeout=timeout)
                target = current.split("#", 1)[0]
        else:
            address = _resolve(host, port, net, shown_uri, limits)
            if scheme == "https":
                conn = _PinnedHTTPSConnection(host, port, address, timeout=timeout, context=_ssl_context(ca_file, ca_pem))
            else:
                conn = _PinnedHTTPConnection(host, port, address, timeout=timeout)
        header_deadline = time.monotonic() + limits.timeout(limits.read_timeout)
        head_limits = Limits(
            deadline=min(header_deadline, limits.deadline or header_deadline), stop=limits.stop
        )
        try:
            with _guard(head_limits, lambda c=conn: c.sock) as fired:  # type: ignore[misc]
                try:
                    conn.connect()
                    sock = conn.sock
                    assert sock is not None
                    sock.settimeout(limits.timeout(limits.read_timeout))
                    sent = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity", "Connection": "close"}
                    for name, value in (headers or {}).items():
                        if name.lower() == "authorization" and _origin(current) != origin:
                            continue  # credentials never follow a redirect to another origin
                        sent[name] = value
                    conn.request("GET", target, headers=sent)
                    resp = conn.getresponse()
                except ssl.SSLCertVerificationError as exc:
                    raise StoreError(
                        "TLSError",
                        f"{redact(shown_uri)}: {exc.reason or 'CERTIFICATE_VERIFY_FAILED'}: "
                        f"{exc.verify_message or exc}",
                    ) from None
                except ssl.SSLError as exc:
                    if fired["deadline"]:
                        raise _late(limits, shown_uri) from None
                    raise StoreError("TLSError", f"{redact(shown_uri)}: {exc}") from None
                except (OSError, http.client.HTTPException) as exc:
                    if fired["deadline"] or isinstance(exc, TimeoutError):
                        raise _late(limits, shown_uri) from None
                    raise StoreError("Unreachable", f"{redact(shown_uri)}: {exc or type(exc).__name__}") from None
            if fired["deadline"]:  # the socket was shut down under a header still arriving
                resp.close()
                raise _late(limits, shown_uri)
            status = resp.status
            if 300 <= status < 400 and status != 304:
                location = resp.getheader("Location")
                resp.close()
                if not location:
                    raise StoreError("BadResponse", f"{redact(shown_uri)}: HTTP {status} without a Location")
                if hop >= net.max_redirects:
                    raise StoreError(
                        "Refused",
                        f"{redact(shown_uri)}: redirects (HTTP {status}) are not followed here",
                    )
                current = urllib.parse.urljoin(current, location)
                conn.close()
                continue
            if not 200 <= status < 300:
                challenge = resp.getheader("WWW-Authenticate") if status == 401 else None
                resp.close()
                error = _http_status_error(shown_uri, status, resp.reason)
                if challenge:
                    error.challenge = challenge[:4096]
                raise error
            try:
                yield resp, sock
            finally:
                resp.close()
            return
        finally:
            conn.close()
    raise StoreError("Refused", f"{redact(shown_uri)}: too many redirects")  # pragma: no cover


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port


def _late(limits: Limits, uri: str) -> StoreError:
    if limits.stop is not None and limits.stop.is_set():
        return StoreError("Cancelled", f"{redact(uri)}: transfer cancelled")
    left = limits.remaining()
    if left is not None and left <= 0.05:
        return StoreError("Timeout", f"{redact(uri)}: transfer deadline exceeded")
    return StoreError("Unreachable", f"{redact(uri)}: no answer in time")


def _content_length(resp: http.client.HTTPResponse) -> int | None:
    value = resp.getheader("Content-Length")
    try:
        n = int(value) if value is not None else None
    except ValueError:
        return None
    return n if n is not None and n >= 0 else None


def _pump_http(
    resp: http.client.HTTPResponse, sock: socket.socket | None, sink: Callable[[bytes], None], limits: Limits, uri: str, what: str,
    expected: int | None,
) -> int:
    length = _content_length(resp)
    if length is not None:
        if expected is not None and length != expected:
            raise StoreError("SizeMismatch", f"{redact(uri)} is {length} bytes, the signed manifest says {expected}")
        if limits.max_bytes is not None and length > limits.max_bytes:
            raise StoreError(
                "TooLarge", f"{redact(uri)} is {length} bytes, more than the {limits.max_bytes} bytes {what}"
            )
    meter = _Meter(limits, uri, what)
    per_read = limits.read_timeout if limits.min_rate <= 0 else min(limits.read_timeout, limits.window)
    with _guard(limits, lambda: sock) as fired:
        while True:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.settimeout(limits.timeout(per_read))
            try:
                chunk = resp.read1(CHUNK)
            except TimeoutError:
                if fired["deadline"]:
                    raise _late(limits, uri) from None
                if limits.min_rate > 0:
                    raise StoreError(
                        "TooSlow", f"{redact(uri)}: no data for {per_read:.0f}s (minimum {limits.min_rate:.0f} bytes/s)"
                    ) from None
                raise StoreError("Unreachable", f"{redact(uri)}: no data for {per_read:.0f}s") from None
            except (OSError, http.client.HTTPException) as exc:
                if fired["deadline"]:
                    raise _late(limits, uri) from None
                raise StoreError("Unreachable", f"{redact(uri)}: transfer broken: {exc or type(exc).__name__}") from None
            if not chunk:
                if fired["deadline"]:
                    raise _late(limits, uri)
                break
            meter.add(len(chunk))
            sink(chunk)
    if length is not None and meter.got != length:
        raise StoreError("Unreachable", f"{redact(uri)}: transfer ended after {meter.got} of {length} bytes")
    return meter.got


# -------------------------------------------------------------------------------------------------- s3

_S3_LOCK = threading.Lock()
_S3_CLIENTS: dict[str, Any] = {}


def _s3_presign(loc: Location, credentials: S3Credentials | None, ambient_ok: bool) -> str:
    if not loc.path:
        raise StoreError("InvalidURI", f"{loc.uri} names a bucket, not an object")
    if credentials is None and not ambient_ok:
        raise StoreError(
            "Refused", f"{loc.uri}: s3 needs credentials named by the ModelVersion (spec.artifact.credentialsSecretRef)"
        )
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise StoreError("Unsupported", "s3:// needs boto3 (pip install 'modelhub[s3]')") from None
    if credentials is not None:
        key = "explicit:" + hashlib.sha256(
            "\0".join(
                str(v) for v in (credentials.access_key_id, credentials.secret_access_key,
                                 credentials.session_token, credentials.region, credentials.endpoint_url)
            ).encode()
        ).hexdigest()
    else:
        key = "ambient:" + "\0".join(
            str(os.environ.get(n)) for n in (
                "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE",
            )
        )
    try:
        with _S3_LOCK:
            client = _S3_CLIENTS.get(key)
            if client is None:
                config = Config(signature_version="s3v4", retries={"max_attempts": 1})
                if credentials is not None:
                    session = boto3.session.Session(
                        aws_access_key_id=credentials.access_key_id,
                        aws_secret_access_key=credentials.secret_access_key,
                        aws_session_token=credentials.session_token,
                        region_name=credentials.region or os.environ.get("AWS_REGION") or "us-east-1",
                    )
                    client = session.client("s3", config=config, endpoint_url=credentials.endpoint_url or None)
                else:
                    client = boto3.session.Session().client("s3", config=config)
                if len(_S3_CLIENTS) > 256:
                    _S3_CLIENTS.clear()
                _S3_CLIENTS[key] = client
        return str(client.generate_presigned_url(
            "get_object", Params={"Bucket": loc.host, "Key": loc.path}, ExpiresIn=900
        ))
    except (BotoCoreError, ClientError, ValueError) as exc:
        raise StoreError("Forbidden", f"{loc.uri}: cannot sign the request: {type(exc).__name__}") from None


# ------------------------------------------------------------------------------------------------ local


def _open_local(loc: Location, local: LocalPolicy, *, follow_symlinks: bool) -> int:
    local.check_path(os.path.abspath(loc.path), loc.uri)  # before touching the disk: no existence oracle
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(loc.path, flags)
    except (FileNotFoundError, NotADirectoryError):
        raise StoreError("NotFound", f"{loc.uri} does not exist ({loc.path})") from None
    except PermissionError:
        raise StoreError("Forbidden", f"{loc.uri} is not readable ({loc.path})") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreError("UnsafePath", f"{loc.uri} is a symlink and symlinks are not allowed") from None
        raise StoreError("Unreachable", f"cannot open {loc.uri}: {exc.strerror or exc}") from None
    try:
        if local.roots is not None:  # what was opened, after every symlink: still inside a root?
            try:
                real = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                real = os.path.realpath(loc.path)
            local.check_path(real, loc.uri)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise StoreError("NotFound" if stat.S_ISDIR(st.st_mode) else "UnsafePath", f"{loc.uri} is {kind}")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _pump_local(
    loc: Location, local: LocalPolicy, sink: Callable[[bytes], None], limits: Limits, what: str,
    expected: int | None, follow_symlinks: bool,
) -> int:
    fd = _open_local(loc, local, follow_symlinks=follow_symlinks)
    with os.fdopen(fd, "rb", buffering=0) as src:
        size = os.fstat(fd).st_size
        if expected is not None and size != expected:
            raise StoreError("SizeMismatch", f"{redact(loc.uri)} is {size} bytes, the signed manifest says {expected}")
        if limits.max_bytes is not None and size > limits.max_bytes:
            raise StoreError("TooLarge", f"{redact(loc.uri)} is {size} bytes, more than the {limits.max_bytes} bytes {what}")
        meter = _Meter(limits, loc.uri, what)
        while True:
            try:
                chunk = src.read(4 * 1024 * 1024)
            except OSError as exc:
                raise StoreError("Unreachable", f"reading {loc.uri}: {exc.strerror or exc}") from None
            if not chunk:
                return meter.got
            meter.add(len(chunk))
            sink(chunk)


# -------------------------------------------------------------------------------------------- public API


def _pump(
    uri: str, sink: Callable[[bytes], None], *, limits: Limits, net: NetworkPolicy, local: LocalPolicy,
    credentials: S3Credentials | None, s3_ambient: bool, what: str, expected: int | None,
    follow_symlinks: bool, ca_pem: bytes | None = None,
) -> int:
    loc = parse(uri) if net.allow_http else _parse_no_http(uri)
    _check_time(limits, uri)
    if loc.is_local:
        return _pump_local(loc, local, sink, limits, what, expected, follow_symlinks)
    if loc.scheme == "oci":
        raise StoreError("Unsupported", f"{redact(uri)}: oci:// files are read with read_oci_bytes (or the loader)")
    if loc.scheme == "s3":
        url = _s3_presign(loc, credentials, s3_ambient)
        ca = os.environ.get("AWS_CA_BUNDLE") or None
        with _http_open(url, loc.uri, limits, net, plain_http_ok=True, ca_file=ca, ca_pem=ca_pem) as (resp, sock):
            return _pump_http(resp, sock, sink, limits, loc.uri, what, expected)
    with _http_open(loc.url, uri, limits, net, ca_pem=ca_pem) as (resp, sock):
        return _pump_http(resp, sock, sink, limits, uri, what, expected)


def _parse_no_http(uri: str) -> Location:
    scheme = uri.partition("://")[0].lower()
    if scheme == "http":
        raise StoreError("Unsupported", f"plain http is refused (MODELHUB_ALLOW_HTTP=1 allows it): {redact(uri)}")
    return parse(uri)


def read_bytes(
    uri: str,
    *,
    limits: Limits,
    net: NetworkPolicy,
    local: LocalPolicy,
    credentials: S3Credentials | None = None,
    s3_ambient: bool = True,
    what: str = "allowed",
    ca_pem: bytes | None = None,
) -> bytes:
    """The whole content of a small object; never buffers more than ``limits.max_bytes`` (+ one read).
    `ca_pem`: trust only these CA certificates (not the system roots) for an https:// store or S3 endpoint."""
    if limits.max_bytes is None:
        raise ValueError("read_bytes needs a byte cap")
    buf = bytearray()
    _pump(
        uri, buf.extend, limits=limits, net=net, local=local, credentials=credentials, s3_ambient=s3_ambient,
        what=what, expected=None, follow_symlinks=True, ca_pem=ca_pem,
    )
    return bytes(buf)


def stream_to(
    uri: str,
    out: BinaryIO,
    *,
    limits: Limits,
    net: NetworkPolicy,
    local: LocalPolicy,
    credentials: S3Credentials | None = None,
    s3_ambient: bool = True,
    expected_size: int | None = None,
    follow_symlinks: bool = False,
    what: str = "allowed",
) -> int:
    """Stream one object into `out`; returns the bytes written. With `expected_size`, any other size is a
    SizeMismatch (announced sizes are checked before the first byte is written)."""

    def sink(chunk: bytes) -> None:
        try:
            out.write(chunk)
        except OSError as exc:
            raise StoreError("WriteFailed", f"writing {redact(uri)}: {exc.strerror or exc}") from None

    if expected_size is not None:
        cap = expected_size if limits.max_bytes is None else min(limits.max_bytes, expected_size)
        limits = dataclasses.replace(limits, max_bytes=cap)
        what = "the signed manifest says" if cap == expected_size else what
    written = _pump(
        uri, sink, limits=limits, net=net, local=local, credentials=credentials, s3_ambient=s3_ambient,
        what=what, expected=expected_size, follow_symlinks=follow_symlinks,
    )
    if expected_size is not None and written != expected_size:
        raise StoreError("SizeMismatch", f"{redact(uri)} is {written} bytes, the signed manifest says {expected_size}")
    return written


def get_url(
    url: str,
    sink: Callable[[bytes], None],
    *,
    limits: Limits,
    net: NetworkPolicy,
    headers: Mapping[str, str] | None = None,
    plain_http: bool = False,
    expected_size: int | None = None,
    what: str = "allowed",
) -> int:
    """GET one http(s) URL (a registry API endpoint, not a store URI) into `sink`, with the same bounds and
    address checks as every other transfer; returns the bytes received. `plain_http` allows an http:// URL
    for this request (not for its redirects, unless `net` allows http). With `expected_size`, any other size
    is a SizeMismatch."""
    if expected_size is not None:
        cap = expected_size if limits.max_bytes is None else min(limits.max_bytes, expected_size)
        limits = dataclasses.replace(limits, max_bytes=cap)
    _check_time(limits, url)
    with _http_open(url, url, limits, net, plain_http_ok=plain_http, headers=headers) as (resp, sock):
        got = _pump_http(resp, sock, sink, limits, url, what, expected_size)
    if expected_size is not None and got != expected_size:
        raise StoreError("SizeMismatch", f"{redact(url)} is {got} bytes, the manifest says {expected_size}")
    return got


def read_oci_bytes(
    uri: str,
    *,
    limits: Limits,
    net: NetworkPolicy,
    credentials: Any | None = None,
    what: str = "allowed",
) -> bytes:
    """The file an ``oci://registry/repo@sha256:<manifest digest>#<path>`` URI names (e.g. a signature bundle
    ``#model.sig``), read from the artifact's layers: a single-file layer at that path, or an archive layer no
    larger than ``limits.max_bytes`` holding it. Every blob's digest is checked; never more than
    ``limits.max_bytes`` is buffered. `credentials` is a :class:`modelhub.adapters.oci.RegistryCredentials`
    (from :func:`modelhub.adapters.oci.credentials_from_dockerconfig`), or None for anonymous pulls. The
    operator's bundle fetch for oci:// bundles."""
    from modelhub.adapters import oci  # (oci builds on this module)

    return oci.read_file(uri, limits=limits, net=net, credentials=credentials, what=what)
