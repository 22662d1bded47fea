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
    (meant for tests and air-gapped labs only; a redirect to http is refused the same way). Up to 5
    redirects are followed here (the loader's view; the operator's bundle fetches follow none).
``oci://registry/repository@sha256:<manifest digest>#<path>``
    An OCI artifact (ModelPack or any oras artifact) or a plain image in a registry; the files are its layers
    (see :mod:`modelhub.adapters.oci`), ``#<path>`` a directory (or file) of its file tree. Pulled by digest
    (a tag is resolved by :func:`modelhub.adapters.oci.resolve`); the loader reads it as a whole
    (:mod:`modelhub.loader.oci`), not file by file.
``s3://bucket/prefix``
    S3 or any S3-compatible server: boto3 presigns a GET with the standard AWS variables (credentials
    ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, web identity, profiles;
    ``AWS_REGION``; ``AWS_ENDPOINT_URL`` or ``AWS_ENDPOINT_URL_S3`` for a non-AWS endpoint), and the object
    is fetched like an https one, with the same bounds. Keys are taken literally (no percent-decoding).

Transfers go through :mod:`modelhub.adapters.fetch` (byte caps, deadline, minimum rate).

Every failure is a :class:`StoreError` with a CamelCase ``reason`` and a message that names the (redacted) URI:
``InvalidURI``, ``Unsupported``, ``NotFound``, ``Forbidden``, ``Unreachable`` (connection failures, timeouts and
server errors: worth a retry), ``TLSError``, ``BadResponse``, ``TooLarge``, ``SizeMismatch``, ``UnsafePath``,
``WriteFailed``, and from the bounded transfers ``TooSlow``, ``Timeout``, ``Refused``, ``Cancelled``.

Nothing here imports kopf or kubernetes; boto3 is imported only when an s3:// URI is used.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import posixpath
import re
import shutil
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
DEFAULT_MAX_BUNDLE_BYTES = 4 * 1024 * 1024  # MODELHUB_BUNDLE_MAX_BYTES overrides it where no cap is given
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
        self.challenge: str | None = None  # an HTTP 401's WWW-Authenticate value (registry auth), else None

    @property
    def retryable(self) -> bool:
        return self.reason == "Unreachable"


@dataclass(frozen=True)
class Location:
    """A parsed artifact URI."""

    scheme: str  # file | pvc | https | http | s3 | oci
    uri: str  # as given
    path: str = ""  # file/pvc: absolute local path; http(s): URL path; s3: object key; oci: repository
    host: str = ""  # http(s): netloc; s3: bucket; pvc: claim; oci: registry host[:port]
    query: str = ""  # http(s) only; oci: the reference (sha256 digest or tag)
    fragment: str = ""  # oci only: the path inside the artifact's file tree

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

    if scheme == "oci":
        from modelhub.adapters import oci

        ref = oci.parse_reference(uri)
        return Location("oci", uri, path=ref.repository, host=ref.registry, query=ref.reference, fragment=ref.path)

    raise StoreError(
        "Unsupported", f"unsupported URI scheme {scheme!r} (file, pvc, https, s3, oci): {redact(uri)}"
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
    if loc.scheme == "oci":  # a path of the artifact's file tree, after '#'
        from modelhub.adapters import oci

        return oci.parse_reference(uri).join(relative_name)
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


def _limits(
    timeout: float, max_bytes: int | None, limits: Any | None
) -> Any:
    from modelhub.adapters import fetch

    if limits is None:
        return fetch.Limits(max_bytes=max_bytes, read_timeout=timeout, connect_timeout=min(timeout, 30.0))
    if max_bytes is not None and (limits.max_bytes is None or limits.max_bytes > max_bytes):
        return dataclasses.replace(limits, max_bytes=max_bytes)
    return limits


def fetch_bytes(
    uri: str,
    *,
    max_bytes: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    limits: Any | None = None,
) -> bytes:
    """The whole content of one (small) object, e.g. a signature bundle; more than `max_bytes` is TooLarge.

    `limits` (a :class:`modelhub.adapters.fetch.Limits`) sets the cap, a deadline and a minimum rate; without
    them, the bundle settings of the environment apply (``MODELHUB_BUNDLE_MAX_BYTES``, default 4 MiB,
    ``MODELHUB_BUNDLE_DEADLINE_SECONDS``, ``MODELHUB_BUNDLE_MIN_RATE``...). This is the loader's view (any
    local path, any address, redirects followed, proxies honoured); the operator's restricted view is
    :class:`modelhub.adapters.bundles.BundleFetcher`."""
    from modelhub.adapters import fetch

    if limits is None:
        from modelhub.adapters.bundles import BundleSettings

        try:
            bundle_settings = BundleSettings.from_env()
        except ValueError:
            bundle_settings = BundleSettings()
        limits = dataclasses.replace(bundle_settings.limits(), read_timeout=timeout)
    if uri[:6].lower() == "oci://":  # the loader's view: credentials from $DOCKER_CONFIG
        from modelhub.adapters import oci

        return fetch.read_oci_bytes(
            uri, limits=_limits(timeout, max_bytes, limits),
            net=fetch.NetworkPolicy.unrestricted(allow_http=_allow_http()),
            credentials=oci.credentials_from_env(oci.parse_reference(uri).registry),
        )
    return fetch.read_bytes(
        uri,
        limits=_limits(timeout, max_bytes, limits),
        net=fetch.NetworkPolicy.unrestricted(allow_http=_allow_http()),
        local=fetch.LocalPolicy(None),
    )


def fetch_to_file(
    uri: str,
    dest_path: str | os.PathLike[str],
    *,
    expected_size: int | None = None,
    follow_symlinks: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int | None = None,
    limits: Any | None = None,
) -> int:
    """Stream one object into `dest_path` (created or truncated) and return the number of bytes written.

    Never holds the whole object in memory. Local sources (file, pvc) are copied, never linked, so that what is
    later served is exactly what was verified; a local source that is a symlink is refused unless
    `follow_symlinks`, and anything but a regular file is refused. With `expected_size`, any other size is a
    SizeMismatch (checked up front when the store announces a size, and again at the end); more than
    `max_bytes` (or `limits.max_bytes`) is TooLarge, and `limits` bounds the time (deadline, minimum rate) and
    the bytes shared with other transfers (a budget). On error the partial destination file is removed.
    """
    from modelhub.adapters import fetch

    loc = parse(uri)
    dest = Path(dest_path)
    lim = _limits(timeout, max_bytes, limits)
    try:
        if loc.is_local:
            written = _copy_local(loc, dest, expected_size, follow_symlinks, lim)
        else:
            with _open_dest(dest) as out:
                written = fetch.stream_to(
                    uri,
                    out,
                    limits=lim,
                    net=fetch.NetworkPolicy.unrestricted(allow_http=_allow_http()),
                    local=fetch.LocalPolicy(None),
                    expected_size=expected_size,
                    what="allowed for this file",
                )
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
    """A regular file opened for reading, anywhere (the loader's view); the fetch engine's opener, unrestricted."""
    from modelhub.adapters import fetch  # (fetch builds on this module)

    return fetch._open_local(loc, fetch.LocalPolicy(), follow_symlinks=follow_symlinks)


def _copy_local(
    loc: Location, dest: Path, expected_size: int | None, follow_symlinks: bool, limits: Any
) -> int:
    fd = _open_local(loc, follow_symlinks=follow_symlinks)
    with os.fdopen(fd, "rb") as src:
        size = os.fstat(fd).st_size
        if expected_size is not None and size != expected_size:
            raise _size_mismatch(loc.uri, size, expected_size)
        cap = limits.max_bytes
        if cap is not None and size > cap:
            raise StoreError("TooLarge", f"{redact(loc.uri)} is {size} bytes, more than the {cap} allowed")
        if limits.budget is not None:
            limits.budget.take(size, loc.uri)
        if expected_size is None:
            expected_size = size if cap is None else min(cap, size)
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
