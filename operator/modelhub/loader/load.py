"""Verify-at-load: fetch a signed model artifact into the pod's model volume, fail closed.

The loader is the init container of every inference pod (`modelhub load`). It trusts nothing it downloads:

1. fetch the signature bundle (by default ``model.sig`` inside the artifact directory) and check it with
   :func:`modelhub.domain.signing.verify_bundle` against the trusted public keys or CA certificates;
2. the signed subject digest must equal the digest the ModelVersion pins;
3. fetch exactly the files the signed manifest names (distinct paths for a sharded manifest) into a fresh
   staging directory inside DEST, in parallel with a bounded number of workers;
4. :func:`modelhub.domain.signing.verify_model_dir` on the staging directory (every digest, no missing and no
   extra file);
5. write the marker ``.modelhub-verified`` into the staging directory and rename it to ``DEST/model`` in one
   step, so a verified model and its marker appear together or not at all.

On any failure the staging directory is removed and no ``DEST/model`` is left behind. Running again on a DEST
that already holds a verified copy of the same digest re-checks the files in place (no download) and rewrites
the marker; if that check fails, the copy is thrown away and fetched again.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from modelhub.adapters import fetch, stores
from modelhub.domain import signing
from modelhub.domain.loadlimits import LoaderLimits, file_cap
from modelhub.loader import parallel

__all__ = [
    "LOCK_NAME",
    "LoaderLimits",
    "MARKER_NAME",
    "MODEL_DIR_NAME",
    "LoadError",
    "LoadResult",
    "invalidate",
    "load_model",
    "planned_files",
    "read_marker",
    "read_trusted_cas",
    "read_trusted_keys",
    "read_store_ca",
    "store_ca",
]

MODEL_DIR_NAME = "model"
MARKER_NAME = ".modelhub-verified"
LOCK_NAME = ".modelhub.lock"
STAGING_PREFIX = ".staging-"
TRASH_PREFIX = ".old-"
MARKER_TMP_PREFIX = ".marker-"
DEFAULT_WORKERS = 8
DEFAULT_RETRIES = 2
MAX_KEY_BYTES = 64 * 1024

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")

Log = Callable[[str], None]
T = TypeVar("T")


class LoadError(Exception):
    """The load failed; ``reason`` is CamelCase, ``message`` names the file or URI at fault."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class LoadResult:
    model_dir: Path
    digest: str
    key_name: str
    key_fingerprint: str
    files: int
    bytes: int
    seconds: float
    reused: bool  # True when an existing verified copy was re-checked in place instead of downloaded


# ---------------------------------------------------------------------------------------------- keys


def _read_key(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_KEY_BYTES + 1)
    except OSError as exc:
        raise LoadError("InvalidKey", f"cannot read public key {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_KEY_BYTES:
        raise LoadError("InvalidKey", f"{path} is too large to be a public key")
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise LoadError("InvalidKey", f"{path} is not a PEM public key: {exc}") from None
    return data


def read_trusted_keys(
    public_key_files: Iterable[str | os.PathLike[str]] = (), keys_dir: str | os.PathLike[str] | None = None
) -> dict[str, bytes]:
    """Trusted keys by name (the file name). In `keys_dir` every regular file is a PEM public key; hidden
    entries are skipped (a mounted ConfigMap keeps its real files under ``..data``)."""
    keys: dict[str, bytes] = {}

    def add(path: Path) -> None:
        if path.name in keys:
            raise LoadError("InvalidKey", f"two trusted keys are named {path.name!r}")
        keys[path.name] = _read_key(path)

    for f in public_key_files:
        add(Path(f))
    if keys_dir is not None:
        root = Path(keys_dir)
        try:
            entries = sorted(os.scandir(root), key=lambda e: e.name)
        except OSError as exc:
            raise LoadError(
                "InvalidKey", f"cannot list keys directory {root}: {exc.strerror or exc}"
            ) from None
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_file():  # is_file follows the ConfigMap symlinks
                continue
            add(Path(entry.path))
    if not keys:
        raise LoadError("NoTrustedKeys", "no trusted public key given (--public-key or --keys-dir)")
    return keys


MAX_CA_FILE_BYTES = 256 * 1024


def read_trusted_cas(
    ca_files: Iterable[str | os.PathLike[str]] = (), cas_dir: str | os.PathLike[str] | None = None
) -> dict[str, bytes]:
    """Trusted CA certificates by name (the file name): each file holds one or more PEM certificates. In
    `cas_dir` every regular, non-hidden file counts (a mounted ConfigMap keeps its real files under ``..data``).
    Empty when none is given."""
    cas: dict[str, bytes] = {}

    def add(path: Path) -> None:
        if path.name in cas:
            raise LoadError("InvalidCertificate", f"two trusted CA files are named {path.name!r}")
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_CA_FILE_BYTES + 1)
        except OSError as exc:
            raise LoadError("InvalidCertificate", f"cannot read CA certificates {path}: {exc.strerror or exc}") from None
        if len(data) > MAX_CA_FILE_BYTES:
            raise LoadError("InvalidCertificate", f"{path} is larger than {MAX_CA_FILE_BYTES} bytes")
        try:
            signing.parse_pem_certificates(data, str(path))
        except signing.SignatureError as exc:
            raise LoadError(exc.reason, exc.message) from None
        cas[path.name] = data

    for f in ca_files:
        add(Path(f))
    if cas_dir is not None:
        root = Path(cas_dir)
        try:
            entries = sorted(os.scandir(root), key=lambda e: e.name)
        except OSError as exc:
            raise LoadError(
                "InvalidCertificate", f"cannot list CA directory {root}: {exc.strerror or exc}"
            ) from None
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_file():
                continue
            add(Path(entry.path))
    return cas


#: What the TLS layer reads for its trust roots: OpenSSL's file and directory variables (the fetch engine's verifying
#: context follows them) and the S3 endpoint's CA (AWS_CA_BUNDLE, as boto3 reads it).
STORE_CA_ENV = ("SSL_CERT_FILE", "SSL_CERT_DIR", "AWS_CA_BUNDLE")


def read_store_ca(path: str | os.PathLike[str]) -> str:
    """The absolute path of the store CA file `path` (``spec.artifact.caConfigMapRef``, mounted by the pod builder),
    once checked: bounded, PEM certificates (LoadError ``InvalidCertificate`` otherwise)."""
    from modelhub.domain import storeca

    ca = Path(path)
    try:
        with open(ca, "rb") as fh:
            data = fh.read(storeca.MAX_STORE_CA_BYTES + 1)
    except OSError as exc:
        raise LoadError("InvalidCertificate", f"cannot read the store CA {ca}: {exc.strerror or exc}") from None
    try:
        storeca.check_ca_pem(data, f"the store CA {ca}")
    except storeca.StoreCAError as exc:
        raise LoadError(exc.reason, exc.message) from None
    return str(ca.resolve())


@contextlib.contextmanager
def store_ca(ca_file: str | None) -> Iterator[None]:
    """While inside: https stores and the S3 endpoint are trusted when their certificate chains to a CA in
    `ca_file` (as :func:`read_store_ca` returns it), and to nothing else: the system roots are left out (no
    ``SSL_CERT_DIR`` lookup). ``None``: the environment as it is (system roots, or ``SSL_CERT_FILE``/
    ``SSL_CERT_DIR`` when set). The variables are put back on the way out."""
    if ca_file is None:
        yield
        return
    saved = {name: os.environ.get(name) for name in STORE_CA_ENV}
    os.environ["SSL_CERT_FILE"] = ca_file
    os.environ["SSL_CERT_DIR"] = ""  # OpenSSL adds no directory for an empty value: the system roots stay out
    os.environ["AWS_CA_BUNDLE"] = ca_file
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# -------------------------------------------------------------------------------------------- manifest


def planned_files(verified: signing.VerifiedSignature) -> list[tuple[str, int | None]]:
    """The distinct file paths of the signed manifest, in manifest order, each with its size when the
    manifest implies it (a sharded manifest covers every file up to its end; a per-file one says nothing)."""
    known = getattr(verified, "file_sizes", None)  # the signing module works this out already
    sizes: dict[str, int | None] = dict(known) if known else {}
    if not sizes:
        for res in verified.resources:
            if verified.serialization == "shards":
                path, _start, end = _split_shard(res.name)
                previous = sizes.get(path)
                sizes[path] = end if previous is None else max(previous, end)
            elif res.name in sizes:
                raise LoadError(
                    "MalformedBundle", f"file {res.name!r} is listed twice in the signed manifest"
                )
            else:
                sizes[res.name] = None
    for path in sizes:  # verify_bundle refuses these already; a loader that writes files checks again
        try:
            stores.check_relative_name(path)
        except stores.StoreError as exc:
            raise LoadError("UnsafePath", f"signed manifest: {exc.message}") from None
    return list(sizes.items())


def _split_shard(name: str) -> tuple[str, int, int]:
    """A shard resource is named ``path:start:end`` (the path itself may contain colons)."""
    try:
        path, start, end = name.rsplit(":", 2)
        s, e = int(start), int(end)
    except ValueError:
        raise LoadError("MalformedBundle", f"shard name {name!r} is not path:start:end") from None
    if not path or s < 0 or e < s:
        raise LoadError("MalformedBundle", f"shard name {name!r} is not path:start:end")
    return path, s, e


# ---------------------------------------------------------------------------------------------- marker


def read_marker(model_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The marker of a verified copy, or None when there is none (or it is unreadable)."""
    path = Path(model_dir) / MARKER_NAME
    try:
        if path.is_symlink() or not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _marker_body(
    verified: signing.VerifiedSignature, uri: str, files: list[tuple[str, int | None]], total_bytes: int
) -> bytes:
    body = {
        "digest": verified.subject_digest,
        "keyName": verified.key_name,
        "keyFingerprint": verified.key_fingerprint,
        **(
            {"certificateFingerprint": verified.certificate.fingerprint,
             "certificateSubject": verified.certificate.subject}
            if verified.certificate is not None else {}
        ),
        "hashAlgorithm": verified.hash_algorithm,
        "serialization": verified.serialization,
        "files": len(files),
        "bytes": total_bytes,
        "paths": [path for path, _ in files],
        "uri": stores.redact(uri),
        "verifiedAt": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return (json.dumps(body, indent=1, sort_keys=True) + "\n").encode()


def _verify_and_commit(staging: Path, model_dir: Path, dest_dir: Path, verified: Any, uri: str, files: Any,
                       total: int, workers: int, say: Callable[[str], None]) -> None:
    """Check every staged file against the signed manifest, then mark and move the staging directory into place
    (the one way a model reaches DEST/model)."""
    t1 = time.monotonic()
    try:
        signing.verify_model_dir(staging, verified, workers=workers)
    except signing.SignatureError as exc:
        raise LoadError(exc.reason, exc.message) from None
    say(f"verified {len(files)} files in {time.monotonic() - t1:.2f}s")
    _write_marker(dest_dir, staging, _marker_body(verified, uri, files, total))
    os.rename(staging, model_dir)


def _write_marker(dest: Path, model_dir: Path, body: bytes) -> None:
    """Write the marker atomically (temp file in DEST, then rename into the model directory)."""
    fd, tmp = tempfile.mkstemp(prefix=MARKER_TMP_PREFIX, dir=dest)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, model_dir / MARKER_NAME)
    except BaseException:
        stores.remove_quietly(tmp)
        raise


# ------------------------------------------------------------------------------------------------ load


def _stderr_log(line: str) -> None:
    import sys

    print(f"load: {line}", file=sys.stderr, flush=True)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


@contextlib.contextmanager
def _locked(dest: Path) -> Iterator[None]:
    """One loader per DEST at a time (a restarted init container may overlap with a dying one)."""
    fd = os.open(dest / LOCK_NAME, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _clean_leftovers(dest: Path) -> None:
    """Remove what an interrupted earlier run may have left: staging trees, trash, marker temp files."""
    for entry in dest.iterdir():
        if entry.name.startswith((STAGING_PREFIX, TRASH_PREFIX, MARKER_TMP_PREFIX)):
            stores.remove_quietly(entry)


def _discard(dest: Path, model_dir: Path) -> None:
    """Make an existing DEST/model disappear at once (rename), then delete it."""
    if not (model_dir.exists() or model_dir.is_symlink()):
        return
    trash = Path(tempfile.mkdtemp(prefix=TRASH_PREFIX, dir=dest))
    os.rename(model_dir, trash / MODEL_DIR_NAME)
    stores.remove_quietly(trash)


def invalidate(dest: str | os.PathLike[str]) -> None:
    """Remove DEST/model (and any leftovers) so that nothing in DEST looks verified."""
    dest_dir = Path(dest)
    if not dest_dir.is_dir():
        return
    with _locked(dest_dir):
        _discard(dest_dir, dest_dir / MODEL_DIR_NAME)
        _clean_leftovers(dest_dir)


def load_model(
    *,
    uri: str,
    digest: str,
    dest: str | os.PathLike[str],
    trusted_keys: Mapping[str, bytes],
    trusted_cas: Mapping[str, bytes] | None = None,
    signature_uri: str | None = None,
    signature_bytes: bytes | None = None,
    workers: int = DEFAULT_WORKERS,
    timeout: float = stores.DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    log: Log | None = _stderr_log,
    limits: LoaderLimits | None = None,
) -> LoadResult:
    """Fetch and verify the artifact at `uri` into ``dest/model``; raise :class:`LoadError` on any failure.

    The bundle comes from `signature_bytes` if given, else from `signature_uri`, else from ``model.sig``
    beside the artifact. `digest` is the pinned subject digest (``sha256:<hex>``). Fail closed: whatever goes
    wrong, DEST is left without a ``model`` directory (a copy from an earlier run included) and without any
    staging directory.

    `limits` bound the load (defaults: :data:`modelhub.domain.loadlimits.DEFAULTS`): the bundle size, the
    total bytes of all files (the signed manifest's total when it states sizes, checked before the first byte),
    each file (its signed size, else ``max_file_bytes``), one deadline for everything, and a minimum rate per
    transfer. Exceeding one is a LoadError with reason TooLarge, SizeMismatch, Timeout or TooSlow.
    """
    dest_dir = Path(dest)
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LoadError("WriteFailed", f"cannot create {dest_dir}: {exc.strerror or exc}") from None
    with _locked(dest_dir):
        try:
            _clean_leftovers(dest_dir)
            return _load_locked(
                uri=uri,
                pinned=digest,
                dest_dir=dest_dir,
                trusted_keys=trusted_keys,
                trusted_cas=trusted_cas,
                signature_uri=signature_uri,
                signature_bytes=signature_bytes,
                workers=workers,
                timeout=timeout,
                retries=retries,
                say=log or (lambda _line: None),
                limits=limits or LoaderLimits(),
            )
        except BaseException:
            _discard(dest_dir, dest_dir / MODEL_DIR_NAME)
            _clean_leftovers(dest_dir)
            raise


def _load_locked(
    *,
    uri: str,
    pinned: str,
    dest_dir: Path,
    trusted_keys: Mapping[str, bytes],
    trusted_cas: Mapping[str, bytes] | None,
    signature_uri: str | None,
    signature_bytes: bytes | None,
    workers: int,
    timeout: float,
    retries: int,
    say: Log,
    limits: LoaderLimits,
) -> LoadResult:
    started = time.monotonic()
    deadline = started + limits.deadline_seconds

    def bounds(max_bytes: int | None, **extra: Any) -> fetch.Limits:
        return fetch.Limits(
            max_bytes=max_bytes, deadline=deadline, min_rate=limits.min_rate, window=limits.rate_window,
            read_timeout=timeout, connect_timeout=min(timeout, 30.0), **extra,
        )

    model_dir = dest_dir / MODEL_DIR_NAME

    # 0. Arguments.
    digest = pinned.strip().lower()
    if not _DIGEST_RE.match(digest):
        raise LoadError("InvalidDigest", f"the pinned digest must be sha256:<64 hex digits>, got {pinned!r}")
    if workers < 1:
        raise LoadError("InvalidArgument", "workers must be at least 1")
    if signature_bytes is not None and signature_uri is not None:
        raise LoadError("InvalidArgument", "give a signature URI or the signature bytes, not both")
    default_signature = signature_bytes is None and signature_uri is None
    try:
        scheme = stores.parse(uri).scheme
        if signature_bytes is None:
            signature_uri = signature_uri or stores.default_signature_uri(uri)
            stores.parse(signature_uri)
    except stores.StoreError as exc:
        raise LoadError(exc.reason, exc.message) from None
    if scheme == "oci":
        return _load_oci(
            uri=uri, digest=digest, dest_dir=dest_dir, trusted_keys=trusted_keys, trusted_cas=trusted_cas,
            signature_uri=signature_uri, signature_bytes=signature_bytes, default_signature=default_signature,
            workers=workers, retries=retries,
            say=say, limits=limits, bounds=bounds, started=started, deadline=deadline,
        )

    # 1-2. The bundle, its signature by a trusted key, and the pinned digest.
    if signature_bytes is None:
        assert signature_uri is not None
        where = stores.redact(signature_uri)
        bundle_uri = signature_uri
        try:
            signature_bytes = _retrying(
                lambda: stores.fetch_bytes(
                    bundle_uri, max_bytes=limits.max_bundle_bytes, limits=bounds(limits.max_bundle_bytes)
                ),
                retries,
            )
        except stores.StoreError as exc:
            raise LoadError(exc.reason, f"signature bundle: {exc.message}") from None
    else:
        where = "given as a file"
    verified = _verify_bundle(signature_bytes, trusted_keys, trusted_cas, where, digest)
    files = _check_planned(verified, limits, say)

    def result(total: int, reused: bool) -> LoadResult:
        return _result(model_dir, verified, files, total, started, reused)

    # Cheap path: a verified copy of the same digest is already there; re-check it in place.
    reused = _reverify_in_place(dest_dir, model_dir, digest, verified, uri, files, workers, say)
    if reused is not None:
        return result(reused, reused=True)

    # Whatever is at DEST/model is not (or no longer) what we were asked for: it goes before anything else.
    _discard(dest_dir, model_dir)

    # 3-5. Fetch into staging, verify there, then marker and rename in one step.
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=dest_dir))
    try:
        os.chmod(staging, 0o755)  # mkdtemp makes 0700; the serving container may run as another user
        t0 = time.monotonic()
        total = _fetch_all(
            uri,
            staging,
            files,
            workers=workers,
            timeout=timeout,
            retries=retries,
            follow_symlinks=verified.allow_symlinks,
            say=say,
            limits=limits,
            bounds=bounds,
        )
        say(f"fetched {len(files)} files, {_human(total)} in {time.monotonic() - t0:.2f}s")
        _verify_and_commit(staging, model_dir, dest_dir, verified, uri, files, total, workers, say)
    except BaseException:
        stores.remove_quietly(staging)
        raise
    return result(total, reused=False)


def _check_planned(verified: signing.VerifiedSignature, limits: LoaderLimits, say: Log) -> list[tuple[str, int | None]]:
    files = planned_files(verified)
    known = [size for _, size in files if size is not None]
    if sum(known) > limits.max_total_bytes:
        raise LoadError(
            "TooLarge",
            f"the signed manifest lists {sum(known)} bytes, more than the total limit of {limits.max_total_bytes}",
        )
    say(
        f"signature OK: {verified.subject_digest} signed by "
        + (f"key {verified.key_name!r} ({verified.key_fingerprint})" if verified.certificate is None else verified.signer)
        + f", {len(files)} files ({verified.serialization}, {verified.hash_algorithm})"
    )
    return files


def _result(
    model_dir: Path, verified: signing.VerifiedSignature, files: list[tuple[str, int | None]], total: int,
    started: float, reused: bool,
) -> LoadResult:
    return LoadResult(
        model_dir=model_dir,
        digest=verified.subject_digest,
        key_name=verified.key_name,
        key_fingerprint=verified.key_fingerprint,
        files=len(files),
        bytes=total,
        seconds=time.monotonic() - started,
        reused=reused,
    )


def _reverify_in_place(
    dest_dir: Path, model_dir: Path, digest: str, verified: signing.VerifiedSignature, uri: str,
    files: list[tuple[str, int | None]], workers: int, say: Log,
) -> int | None:
    """The bytes of a verified copy of `digest` already in DEST/model, re-checked in place (marker rewritten);
    None when there is none or it fails the check."""
    marker = read_marker(model_dir)
    if marker is None or str(marker.get("digest", "")).lower() != digest or model_dir.is_symlink():
        return None
    t0 = time.monotonic()
    try:
        (model_dir / MARKER_NAME).unlink()  # while re-checking, the copy must not look verified
        signing.verify_model_dir(model_dir, verified, workers=workers)
        total = sum(model_dir.joinpath(*path.split("/")).stat().st_size for path, _ in files)
    except signing.SignatureError as exc:
        say(f"the copy in {model_dir} failed verification ({exc.reason}: {exc.message}); fetching again")
    except OSError as exc:
        say(f"the copy in {model_dir} is unusable ({exc}); fetching again")
    else:
        _write_marker(dest_dir, model_dir, _marker_body(verified, uri, files, total))
        say(f"re-verified {len(files)} files ({_human(total)}) in place in {time.monotonic() - t0:.2f}s")
        return total
    return None


def _verify_bundle(
    signature_bytes: bytes, trusted_keys: Mapping[str, bytes], trusted_cas: Mapping[str, bytes] | None,
    where: str, digest: str,
) -> signing.VerifiedSignature:
    try:
        verified = signing.verify_bundle(signature_bytes, trusted_keys, trusted_cas=trusted_cas)
    except signing.SignatureError as exc:
        raise LoadError(exc.reason, f"{exc.message} (bundle {where})") from None
    if verified.subject_digest.lower() != digest:
        raise LoadError(
            "DigestMismatch",
            f"the bundle {where} signs {verified.subject_digest}, but the pinned digest is {digest}",
        )
    return verified


def _pick_referrer(
    candidates: list[bytes], trusted_keys: Mapping[str, bytes], trusted_cas: Mapping[str, bytes] | None,
    digest: str, uri: str,
) -> tuple[bytes, str]:
    """The first referrer bundle that a trusted key signed for `digest`; else the first one (its refusal is
    the reason reported)."""
    for bundle in candidates:
        try:
            _verify_bundle(bundle, trusted_keys, trusted_cas, "", digest)
        except LoadError:
            continue
        return bundle, f"referrer of {stores.redact(uri)}"
    return candidates[0], f"referrer of {stores.redact(uri)} (none of {len(candidates)} verifies)"


def _load_oci(
    *,
    uri: str,
    digest: str,
    dest_dir: Path,
    trusted_keys: Mapping[str, bytes],
    trusted_cas: Mapping[str, bytes] | None,
    signature_uri: str | None,
    signature_bytes: bytes | None,
    default_signature: bool,
    workers: int,
    retries: int,
    say: Log,
    limits: LoaderLimits,
    bounds: Callable[..., fetch.Limits],
    started: float,
    deadline: float,
) -> LoadResult:
    """An oci:// artifact (see :mod:`modelhub.loader.oci`): manifest by digest, bundle, every layer, verify.

    The default bundle is ``model.sig`` of the model directory: its own layer, else a signature bundle attached
    to the manifest as an OCI referrer (artifact type ``application/vnd.dev.sigstore.bundle.v0.3+json``; the
    first one a trusted key signed for the pinned digest), else the file in an archive layer."""
    from modelhub.loader import oci as pull

    model_dir = dest_dir / MODEL_DIR_NAME
    try:
        source = _retrying(lambda: pull.Pull(uri, bounds, limits), retries)
        where = "given as a file"
        in_tree: str | None = None  # the bundle's path in the artifact, when it must come from the pulled tree
        if signature_bytes is None:
            assert signature_uri is not None
            where = stores.redact(signature_uri)
            own = source.same_artifact(signature_uri)
            sig_uri = signature_uri
            if own is not None:
                signature_bytes = _retrying(lambda: source.file_layer_bytes(own.path, limits.max_bundle_bytes), retries)
                if signature_bytes is None and default_signature:
                    candidates = _retrying(
                        lambda: source.registry.referrer_bundles(source.manifest.digest, limits.max_bundle_bytes),
                        retries,
                    )
                    if candidates:
                        signature_bytes, where = _pick_referrer(candidates, trusted_keys, trusted_cas, digest, uri)
                if signature_bytes is None:
                    in_tree = own.path
            else:
                signature_bytes = _retrying(
                    lambda: stores.fetch_bytes(
                        sig_uri, max_bytes=limits.max_bundle_bytes, limits=bounds(limits.max_bundle_bytes)
                    ),
                    retries,
                )
    except stores.StoreError as exc:
        raise LoadError(exc.reason, exc.message) from None

    verified: signing.VerifiedSignature | None = None
    files: list[tuple[str, int | None]] = []
    if signature_bytes is not None:
        verified = _verify_bundle(signature_bytes, trusted_keys, trusted_cas, where, digest)
        files = _check_planned(verified, limits, say)
        reused = _reverify_in_place(dest_dir, model_dir, digest, verified, uri, files, workers, say)
        if reused is not None:
            return _result(model_dir, verified, files, reused, started, reused=True)

    _discard(dest_dir, model_dir)
    blobs, tree = pull.scratch_dirs(dest_dir)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=dest_dir))
    try:
        os.chmod(staging, 0o755)
        t0 = time.monotonic()
        try:
            fetched = source.pull(blobs, tree, workers=workers, stop=threading.Event(), say=say, deadline=deadline,
                                  retries=retries)
            if verified is None:
                assert in_tree is not None
                verified = _verify_bundle(
                    pull.read_tree_file(tree, in_tree, limits.max_bundle_bytes), trusted_keys, trusted_cas, where, digest
                )
                files = _check_planned(verified, limits, say)
            total = pull.move_planned(pull.model_root(tree, source.ref), staging, files)
        except stores.StoreError as exc:
            raise LoadError(exc.reason, exc.message) from None
        say(f"pulled {_human(fetched)} in {time.monotonic() - t0:.2f}s; {len(files)} signed files, {_human(total)}")
        _verify_and_commit(staging, model_dir, dest_dir, verified, uri, files, total, workers, say)
    except BaseException:
        stores.remove_quietly(staging)
        raise
    finally:
        stores.remove_quietly(blobs)
        stores.remove_quietly(tree)
    return _result(model_dir, verified, files, total, started, reused=False)


def _retrying(fn: Callable[[], T], retries: int, stop: threading.Event | None = None) -> T:
    """Call `fn`, again up to `retries` times (0.5 s, 1 s, 2 s... apart) while it fails with a transient
    StoreError (Unreachable) and `stop` is not set."""
    attempt = 0
    while True:
        try:
            return fn()
        except stores.StoreError as exc:
            attempt += 1
            if not exc.retryable or attempt > retries or (stop is not None and stop.is_set()):
                raise
        time.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))


def _fetch_all(
    uri: str,
    staging: Path,
    files: list[tuple[str, int | None]],
    *,
    workers: int,
    timeout: float,
    retries: int,
    follow_symlinks: bool,
    say: Log,
    limits: LoaderLimits,
    bounds: Callable[..., fetch.Limits],
) -> int:
    """Download every file into `staging` with at most `workers` transfers at once; the first failure stops
    the rest (queued transfers are cancelled, running ones are told not to retry)."""
    for path, _ in files:  # directories first, sequentially (no races, no surprises)
        parent = staging.joinpath(*path.split("/")).parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LoadError(
                "UnsafePath", f"{path}: cannot create its directory: {exc.strerror or exc}"
            ) from None
    say(
        f"fetching {len(files)} files from {stores.redact(uri)} with {min(workers, max(1, len(files)))} workers"
    )

    stop = threading.Event()
    budget = fetch.Budget(limits.max_total_bytes, "the total limit of the artifact")

    def one(path: str, size: int | None) -> int:
        source = stores.join(uri, path)
        target = staging.joinpath(*path.split("/"))

        def attempt() -> int:
            share = budget.share()  # a retried transfer starts over: it gives back what it took
            try:
                return stores.fetch_to_file(
                    source, target, expected_size=size, follow_symlinks=follow_symlinks, timeout=timeout,
                    limits=bounds(file_cap(limits, size), stop=stop, budget=share),
                )
            except stores.StoreError as exc:
                if exc.retryable:
                    share.release()
                raise

        try:
            return _retrying(attempt, retries, stop)
        except stores.StoreError as exc:
            # A signed file the store does not have is the signing module's MissingFile.
            why = "MissingFile" if exc.reason == "NotFound" else exc.reason
            raise LoadError(why, f"{path}: {exc.message}") from None

    return parallel.run_all(
        files, lambda item: one(*item), workers=workers, stop=stop,
        progress=lambda done, total: say(f"... {done}/{len(files)} files, {_human(total)}"),
    )
