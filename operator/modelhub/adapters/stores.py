"""Artifact stores: where model files and signature bundles are fetched from.

An artifact URI names a directory (or an object prefix); the files of a model are named relative to it with
:func:`join`. Supported schemes:

``file:///abs/path``
    A local directory (inside a pod: a hostPath or any other mounted volume). The path may be percent-encoded.
``pvc://<claim>/<path>``
    A PersistentVolumeClaim; inside a pod the claim is mounted at ``$MODELHUB_PVC_ROOT/<claim>``
    (default ``/mnt/pvc``).
``https://host/path``
    Any web server or presigned/SAS-style URL (a query string is kept on every joined name). Certificates are
    checked against the system CAs, or ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when set. Proxies come from the
    usual ``https_proxy``/``no_proxy`` variables. Plain ``http://`` is refused unless ``MODELHUB_ALLOW_HTTP=1``
    (meant for tests and air-gapped labs only; a redirect to http is refused the same way).
``s3://bucket/prefix``
    S3 or any S3-compatible server via boto3, configured by the standard AWS variables: credentials
    (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, web identity, profiles),
    ``AWS_REGION``, and ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``) for a non-AWS endpoint. Keys are
    taken literally (no percent-decoding), like the AWS CLI does.

Every failure is a :class:`StoreError` with a CamelCase ``reason`` and a message that names the (redacted) URI:
``InvalidURI``, ``Unsupported``, ``NotFound``, ``Forbidden``, ``Unreachable`` (connection failures, timeouts and
server errors: worth a retry), ``TLSError``, ``BadResponse``, ``TooLarge``, ``SizeMismatch``, ``UnsafePath``,
``WriteFailed``.

Nothing here imports kopf or kubernetes; boto3 is imported only when an s3:// URI is used.
"""

from __future__ import annotations

import errno
import http.client
import os
import posixpath
import re
import shutil
import ssl
import stat
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "DEFAULT_MAX_BUNDLE_BYTES",
    "DEFAULT_SIGNATURE_NAME",
    "DEFAULT_TIMEOUT",
    "Location",
    "StoreError",
    "default_signature_uri",
    "fetch_bytes",
    "check_relative_name",
    "fetch_to_file",
    "join",
    "local_path",
    "parse",
    "redact",
    "remove_quietly",
]

DEFAULT_SIGNATURE_NAME = "model.sig"  # the model_signing tool's default bundle name
DEFAULT_MAX_BUNDLE_BYTES = 64 * 1024 * 1024
DEFAULT_TIMEOUT = 60.0  # seconds, per connect and per read (not per whole transfer)
PVC_ROOT_ENV = "MODELHUB_PVC_ROOT"
DEFAULT_PVC_ROOT = "/mnt/pvc"
ALLOW_HTTP_ENV = "MODELHUB_ALLOW_HTTP"

_CHUNK = 1024 * 1024
_USER_AGENT = "modelhub-loader"
_CLAIM_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,254}$")


class StoreError(Exception):
    """A store operation failed; ``reason`` is CamelCase, ``message`` is for humans and names the URI."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.reason == "Unreachable"


@dataclass(frozen=True)
class Location:
    """A parsed artifact URI."""

    scheme: str  # file | pvc | https | http | s3
    uri: str  # as given
    path: str = ""  # file/pvc: absolute local path; http(s): URL path; s3: object key (may be empty)
    host: str = ""  # http(s): netloc; s3: bucket; pvc: claim
    query: str = ""  # http(s) only

    @property
    def is_local(self) -> bool:
        return self.scheme in ("file", "pvc")

    @property
    def url(self) -> str:
        if self.scheme not in ("http", "https"):
            raise ValueError("not an http(s) location")
        return urllib.parse.urlunsplit((self.scheme, self.host, self.path, self.query, ""))


# --------------------------------------------------------------------------------------------------- URIs


def redact(uri: str) -> str:
    """The URI without credentials: user-info and query strings (presigned signatures, SAS tokens) go."""
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError:
        return "<invalid URI>"
    if parts.scheme not in ("http", "https"):
        return uri
    netloc = parts.netloc.rpartition("@")[2]
    query = "<redacted>" if parts.query else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _allow_http() -> bool:
    return os.environ.get(ALLOW_HTTP_ENV, "").strip().lower() in ("1", "true", "yes")


def _pvc_root() -> str:
    return os.environ.get(PVC_ROOT_ENV) or DEFAULT_PVC_ROOT


def _check_segments(path: str, uri: str, *, what: str) -> list[str]:
    """Split a slash-separated path, refusing `..` and NUL; empty and `.` segments are dropped."""
    if "\x00" in path:
        raise StoreError("InvalidURI", f"{what} contains a NUL byte: {redact(uri)}")
    segments = [s for s in path.split("/") if s not in ("", ".")]
    if ".." in segments:
        raise StoreError("InvalidURI", f"{what} must not contain '..': {redact(uri)}")
    return segments


def parse(uri: str) -> Location:
    """Parse and validate an artifact URI (see the module docstring for the schemes)."""
    if not isinstance(uri, str) or not uri:
        raise StoreError("InvalidURI", "empty URI")
    if any(ord(c) < 0x20 or c == "\x7f" for c in uri):
        raise StoreError("InvalidURI", f"control character in URI: {uri!r}")
    scheme, sep, rest = uri.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise StoreError("InvalidURI", f"not a URI (expected scheme://...): {redact(uri)}")

    if scheme == "file":
        host, slash, path = rest.partition("/")
        if host not in ("", "localhost") or not slash:
            raise StoreError("InvalidURI", f"file URIs must be file:///absolute/path: {redact(uri)}")
        segments = _check_segments(urllib.parse.unquote(path), uri, what="path")
        return Location("file", uri, path="/" + "/".join(segments))

    if scheme == "pvc":
        claim, _, path = rest.partition("/")
        if not _CLAIM_RE.match(claim):
            raise StoreError("InvalidURI", f"invalid claim name {claim!r} in {redact(uri)}")
        segments = _check_segments(urllib.parse.unquote(path), uri, what="path")
        local = posixpath.join(_pvc_root(), claim, *segments)
        return Location("pvc", uri, path=local, host=claim)

    if scheme in ("http", "https"):
        if scheme == "http" and not _allow_http():
            raise StoreError(
                "Unsupported", f"plain http is refused (set {ALLOW_HTTP_ENV}=1 to allow it): {redact(uri)}"
            )
        try:
            parts = urllib.parse.urlsplit(uri)
            _ = parts.port  # validates the port
        except ValueError as exc:
            raise StoreError("InvalidURI", f"{exc}: {redact(uri)}") from None
        if not parts.hostname:
            raise StoreError("InvalidURI", f"no host in {redact(uri)}")
        if "@" in parts.netloc:
            raise StoreError(
                "InvalidURI", f"credentials in the URL are not supported (use a presigned URL): {redact(uri)}"
            )
        _check_segments(urllib.parse.unquote(parts.path), uri, what="path")
        return Location(scheme, uri, path=parts.path or "/", host=parts.netloc, query=parts.query)

    if scheme == "s3":
        bucket, _, key = rest.partition("/")
        if not _BUCKET_RE.match(bucket):
            raise StoreError("InvalidURI", f"invalid bucket name {bucket!r} in {uri}")
        _check_segments(key, uri, what="key")
        return Location("s3", uri, path=key, host=bucket)

    raise StoreError(
        "Unsupported", f"unsupported URI scheme {scheme!r} (file, pvc, https, s3): {redact(uri)}"
    )


def check_relative_name(name: str) -> list[str]:
    """Validate a file name relative to an artifact directory; return its segments."""
    if not isinstance(name, str) or not name:
        raise StoreError("UnsafePath", "empty file name")
    if "\x00" in name or "\\" in name:
        raise StoreError("UnsafePath", f"file name {name!r} contains a NUL or a backslash")
    if name.startswith("/"):
        raise StoreError("UnsafePath", f"file name {name!r} is absolute")
    segments = name.split("/")
    if any(s in ("", ".", "..") for s in segments):
        raise StoreError("UnsafePath", f"file name {name!r} has an empty, '.' or '..' segment")
    return segments


def join(uri: str, relative_name: str) -> str:
    """The URI of `relative_name` (a slash-separated relative path) inside the artifact directory `uri`."""
    loc = parse(uri)
    segments = check_relative_name(relative_name)
    if loc.scheme in ("file", "pvc"):
        scheme_sep = uri.partition("://")
        base = scheme_sep[0] + "://" + scheme_sep[2].rstrip("/")
        if loc.scheme == "file" and base.endswith("://"):
            base += "/"  # file:/// + name → file:///name
        sep = "" if base.endswith("/") else "/"
        return base + sep + "/".join(urllib.parse.quote(s, safe="") for s in segments)
    if loc.scheme in ("http", "https"):
        path = loc.path.rstrip("/") + "/" + "/".join(urllib.parse.quote(s, safe="") for s in segments)
        return urllib.parse.urlunsplit((loc.scheme, loc.host, path, loc.query, ""))
    # s3: keys are literal
    prefix = loc.path.rstrip("/")
    key = f"{prefix}/{relative_name}" if prefix else relative_name
    return f"s3://{loc.host}/{key}"


def default_signature_uri(artifact_uri: str) -> str:
    """Where the signature bundle sits by default: `model.sig` inside the artifact directory."""
    return join(artifact_uri, DEFAULT_SIGNATURE_NAME)


# ---------------------------------------------------------------------------------------------- fetching


def fetch_bytes(
    uri: str, *, max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES, timeout: float = DEFAULT_TIMEOUT
) -> bytes:
    """The whole content of one (small) object, e.g. a signature bundle; more than `max_bytes` is TooLarge."""
    loc = parse(uri)
    if loc.is_local:
        fd = _open_local(loc, follow_symlinks=True)
        with os.fdopen(fd, "rb") as src:
            size = os.fstat(src.fileno()).st_size
            if size > max_bytes:
                raise StoreError(
                    "TooLarge", f"{redact(uri)} is {size} bytes, more than the {max_bytes} allowed"
                )
            data = _read_capped(src, max_bytes, uri)
    elif loc.scheme in ("http", "https"):
        with _http_get(loc, timeout) as resp:
            length = _content_length(resp)
            if length is not None and length > max_bytes:
                raise StoreError(
                    "TooLarge", f"{redact(uri)} is {length} bytes, more than the {max_bytes} allowed"
                )
            data = _read_capped(resp, max_bytes, uri)
    else:
        data = _s3_fetch_bytes(loc, max_bytes)
    return data


def fetch_to_file(
    uri: str,
    dest_path: str | os.PathLike[str],
    *,
    expected_size: int | None = None,
    follow_symlinks: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> int:
    """Stream one object into `dest_path` (created or truncated) and return the number of bytes written.

    Never holds the whole object in memory. Local sources (file, pvc) are copied, never linked, so that what is
    later served is exactly what was verified; a local source that is a symlink is refused unless
    `follow_symlinks`, and anything but a regular file is refused. With `expected_size`, any other size is a
    SizeMismatch (checked up front when the store announces a size, and again at the end). On error the
    partial destination file is removed.
    """
    loc = parse(uri)
    dest = Path(dest_path)
    try:
        if loc.is_local:
            written = _copy_local(loc, dest, expected_size, follow_symlinks)
        elif loc.scheme in ("http", "https"):
            written = _http_to_file(loc, dest, expected_size, timeout)
        else:
            written = _s3_to_file(loc, dest, expected_size)
        if expected_size is not None and written != expected_size:
            raise _size_mismatch(uri, written, expected_size)
    except BaseException:
        try:
            dest.unlink()
        except OSError:
            pass
        raise
    return written


def _size_mismatch(uri: str, got: int, expected: int) -> StoreError:
    return StoreError("SizeMismatch", f"{redact(uri)} is {got} bytes, the signed manifest says {expected}")


def _read_capped(src: Any, max_bytes: int, uri: str) -> bytes:
    buf = bytearray()
    while True:
        chunk = src.read(min(_CHUNK, max_bytes + 1 - len(buf)))
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > max_bytes:
            raise StoreError("TooLarge", f"{redact(uri)} is more than the {max_bytes} bytes allowed")


def _stream(src: Any, out: BinaryIO, uri: str, cap: int | None) -> int:
    """Copy a readable stream into `out`; stop with SizeMismatch as soon as more than `cap` bytes arrive."""
    written = 0
    while True:
        chunk = src.read(_CHUNK)
        if not chunk:
            return written
        written += len(chunk)
        if cap is not None and written > cap:
            raise StoreError(
                "SizeMismatch", f"{redact(uri)} is more than the {cap} bytes the signed manifest says"
            )
        out.write(chunk)


def _open_dest(dest: Path) -> BinaryIO:
    try:
        return open(dest, "wb")  # noqa: SIM115 - closed by the caller's with-block
    except OSError as exc:
        raise StoreError("WriteFailed", f"cannot write {dest}: {exc.strerror or exc}") from None


# ------------------------------------------------------------------------------------------------- local


def _open_local(loc: Location, *, follow_symlinks: bool) -> int:
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
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        reason = "NotFound" if stat.S_ISDIR(st.st_mode) else "UnsafePath"
        raise StoreError(reason, f"{loc.uri} is {kind}")
    os.set_blocking(fd, True)
    return fd


def _copy_local(loc: Location, dest: Path, expected_size: int | None, follow_symlinks: bool) -> int:
    fd = _open_local(loc, follow_symlinks=follow_symlinks)
    with os.fdopen(fd, "rb") as src:
        size = os.fstat(fd).st_size
        if expected_size is not None and size != expected_size:
            raise _size_mismatch(loc.uri, size, expected_size)
        with _open_dest(dest) as out:
            try:
                return _copy_fd(src, out, loc.uri, expected_size)
            except OSError as exc:
                raise StoreError(
                    "WriteFailed", f"copying {loc.uri} to {dest}: {exc.strerror or exc}"
                ) from None


def _copy_fd(src: BinaryIO, out: BinaryIO, uri: str, cap: int | None) -> int:
    """Copy by the kernel (copy_file_range: reflinks where the filesystem can), else by a read/write loop."""
    written = 0
    copy_range = getattr(os, "copy_file_range", None)
    if copy_range is not None:
        try:
            while True:
                n = copy_range(src.fileno(), out.fileno(), 1 << 30)
                if n == 0:
                    return written
                written += n
                if cap is not None and written > cap:
                    raise StoreError("SizeMismatch", f"{redact(uri)} grew beyond {cap} bytes while copying")
        except OSError as exc:
            if written or exc.errno not in (
                errno.EXDEV,
                errno.ENOSYS,
                errno.EINVAL,
                errno.EOPNOTSUPP,
                errno.EPERM,
            ):
                raise
    return written + _stream(src, out, uri, None if cap is None else cap - written)


# -------------------------------------------------------------------------------------------------- http


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but never from https down to plain http unless http is allowed."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme != "https" and not (scheme == "http" and _allow_http()):
            raise StoreError(
                "Unsupported", f"{redact(req.full_url)} redirects to a refused location {redact(newurl)}"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_SSL_LOCK = threading.Lock()
_SSL_CACHE: dict[tuple[str | None, str | None], ssl.SSLContext] = {}


def _ssl_context() -> ssl.SSLContext:
    """The default verifying context; rebuilt when SSL_CERT_FILE/SSL_CERT_DIR change (tests set them)."""
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    with _SSL_LOCK:
        ctx = _SSL_CACHE.get(key)
        if ctx is None:
            ctx = ssl.create_default_context()
            _SSL_CACHE.clear()
            _SSL_CACHE[key] = ctx
        return ctx


def _http_get(loc: Location, timeout: float) -> http.client.HTTPResponse:
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=_ssl_context()), _RedirectHandler()
    )
    req = urllib.request.Request(
        loc.url, headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}, method="GET"
    )
    shown = redact(loc.uri)
    try:
        return opener.open(req, timeout=timeout)  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:
        code = exc.code
        exc.close()
        if code in (404, 410):
            raise StoreError("NotFound", f"{shown}: HTTP {code} {exc.reason}") from None
        if code in (401, 403):
            raise StoreError("Forbidden", f"{shown}: HTTP {code} {exc.reason}") from None
        if code >= 500 or code in (408, 429):
            raise StoreError("Unreachable", f"{shown}: HTTP {code} {exc.reason}") from None
        raise StoreError("BadResponse", f"{shown}: HTTP {code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLError):
            raise StoreError("TLSError", f"{shown}: {exc.reason}") from None
        raise StoreError("Unreachable", f"{shown}: {exc.reason}") from None
    except ssl.SSLError as exc:
        raise StoreError("TLSError", f"{shown}: {exc}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise StoreError("Unreachable", f"{shown}: {exc or type(exc).__name__}") from None


def _content_length(resp: http.client.HTTPResponse) -> int | None:
    value = resp.headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _http_to_file(loc: Location, dest: Path, expected_size: int | None, timeout: float) -> int:
    with _http_get(loc, timeout) as resp:
        length = _content_length(resp)
        if expected_size is not None and length is not None and length != expected_size:
            raise _size_mismatch(loc.uri, length, expected_size)
        with _open_dest(dest) as out:
            try:
                written = _stream(resp, out, loc.uri, expected_size)
            except (OSError, http.client.HTTPException) as exc:
                if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                    raise StoreError("WriteFailed", f"writing {dest}: {exc.strerror}") from None
                raise StoreError("Unreachable", f"{redact(loc.uri)}: transfer broken: {exc}") from None
        if length is not None and written != length:
            raise StoreError(
                "Unreachable", f"{redact(loc.uri)}: transfer ended after {written} of {length} bytes"
            )
        return written


# ---------------------------------------------------------------------------------------------------- s3

_S3_LOCK = threading.Lock()
_S3_CLIENTS: dict[tuple[str | None, ...], Any] = {}
_S3_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_CA_BUNDLE",
)


def _s3_client() -> Any:
    """One thread-safe client per AWS environment (clients are thread-safe, sessions are not)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise StoreError("Unsupported", "s3:// needs boto3 (pip install 'modelhub[s3]')") from None
    key = tuple(os.environ.get(name) for name in _S3_ENV)
    with _S3_LOCK:
        client = _S3_CLIENTS.get(key)
        if client is None:
            config = Config(
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
                max_pool_connections=64,
            )
            client = boto3.session.Session().client("s3", config=config)
            _S3_CLIENTS.clear()
            _S3_CLIENTS[key] = client
        return client


def _s3_error(loc: Location, exc: Exception) -> StoreError:
    from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

    where = loc.uri
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        text = f"{where}: {code or status} {err.get('Message', '')}".rstrip()
        if code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound") or status == 404:
            return StoreError("NotFound", text)
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch") or status in (
            401,
            403,
        ):
            return StoreError("Forbidden", text)
        if status >= 500 or code in ("SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable"):
            return StoreError("Unreachable", text)
        return StoreError("BadResponse", text)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return StoreError("Forbidden", f"{where}: no usable AWS credentials ({exc})")
    return StoreError("Unreachable", f"{where}: {exc}")


def _s3_call(loc: Location, fn: Any, **kwargs: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(**kwargs)
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(loc, exc) from None


def _s3_fetch_bytes(loc: Location, max_bytes: int) -> bytes:
    if not loc.path:
        raise StoreError("InvalidURI", f"{loc.uri} names a bucket, not an object")
    client = _s3_client()
    resp = _s3_call(loc, client.get_object, Bucket=loc.host, Key=loc.path)
    body = resp["Body"]
    try:
        length = resp.get("ContentLength")
        if length is not None and length > max_bytes:
            raise StoreError("TooLarge", f"{loc.uri} is {length} bytes, more than the {max_bytes} allowed")
        return _s3_call(loc, _read_capped, src=body, max_bytes=max_bytes, uri=loc.uri)  # type: ignore[no-any-return]
    finally:
        body.close()


def _s3_to_file(loc: Location, dest: Path, expected_size: int | None) -> int:
    """HEAD for the size, then boto3's managed download (ranged GETs in parallel for big objects)."""
    if not loc.path:
        raise StoreError("InvalidURI", f"{loc.uri} names a bucket, not an object")
    from boto3.s3.transfer import TransferConfig

    client = _s3_client()
    head = _s3_call(loc, client.head_object, Bucket=loc.host, Key=loc.path)
    size = int(head.get("ContentLength", 0))
    if expected_size is not None and size != expected_size:
        raise _size_mismatch(loc.uri, size, expected_size)
    config = TransferConfig(
        multipart_threshold=64 * 1024 * 1024, multipart_chunksize=64 * 1024 * 1024, max_concurrency=4
    )
    with _open_dest(dest) as out:
        try:
            _s3_call(loc, client.download_fileobj, Bucket=loc.host, Key=loc.path, Fileobj=out, Config=config)
        except OSError as exc:
            raise StoreError("WriteFailed", f"writing {dest}: {exc.strerror or exc}") from None
    return dest.stat().st_size


def local_path(uri: str) -> Path | None:
    """The local filesystem path of a file:// or pvc:// URI; None for remote stores."""
    loc = parse(uri)
    return Path(loc.path) if loc.is_local else None


def remove_quietly(path: str | os.PathLike[str]) -> None:
    """Remove a file or a directory tree, ignoring what is already gone."""
    p = Path(path)
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        try:
            p.unlink()
        except OSError:
            pass
