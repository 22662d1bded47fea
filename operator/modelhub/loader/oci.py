"""The loader for ``oci://`` artifacts: pull the manifest and every layer by digest, lay the file tree out safely,
then verify exactly as for the other stores.

1. The manifest is fetched by the pinned digest (a tag is refused: the operator records the resolved digest)
   and must hash to it; the sum of its layer sizes must fit the total limit before the first blob byte.
2. The bundle: given (``--signature-file``), at another URI, or by default ``model.sig`` in the model directory
   of the artifact — from its own layer when it has one (so a re-run can re-check a verified copy in place
   without pulling), else from the pulled tree.
3. Every blob is downloaded into a scratch directory beside the staging one (bounded workers; each blob's size
   must be its descriptor's and its sha256 its digest), then applied in manifest order: a file layer is renamed
   to its path, an archive layer is unpacked by :func:`extract` (regular files and directories only, no
   absolute or ``..`` names, no links, no devices; an image's whiteouts are honoured; every file bounded).
4. Exactly the files the signed manifest names are moved from the tree's model directory into the staging
   directory, which :func:`modelhub.domain.signing.verify_model_dir` checks like any other (no missing and no
   extra file); files of the image outside those are dropped.

Disk: at most the blobs of the artifact plus the unpacked files at once (an archive's blob is deleted once
unpacked).
"""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import tarfile
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO

from modelhub.adapters import fetch, oci, stores
from modelhub.domain.loadlimits import LoaderLimits
from modelhub.loader import parallel

Log = Callable[[str], None]

BLOBS_PREFIX = ".staging-blobs-"
TREE_PREFIX = ".staging-tree-"
_CHUNK = 1024 * 1024
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"


class _Budget:
    """Bytes unpacked so far, against the total limit (one thread applies the layers)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0

    def take(self, n: int, what: str) -> None:
        self.used += n
        if self.used > self.total:
            raise stores.StoreError("TooLarge", f"{what}: unpacking exceeds the total limit of the artifact ({self.total} bytes)")


def _check_deadline(deadline: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise stores.StoreError("Timeout", f"{what}: the load deadline was exceeded")


def _segments(name: str, where: str) -> list[str]:
    """A tar entry name or file path as safe segments (UnsafePath otherwise)."""
    if "\x00" in name or "\\" in name:
        raise stores.StoreError("UnsafePath", f"{where}: entry {name[:200]!r} contains a NUL or a backslash")
    if name.startswith("/"):
        raise stores.StoreError("UnsafePath", f"{where}: entry {name[:200]!r} is an absolute path")
    path = oci.member_path(name)
    segments = [s for s in path.split("/") if s not in ("", ".")]
    if ".." in segments:
        raise stores.StoreError("UnsafePath", f"{where}: entry {name[:200]!r} has a '..' segment")
    return segments


def _inside(segments: list[str], root: list[str]) -> bool:
    """Whether a path is the model directory or below it, or above it (an ancestor directory)."""
    n = min(len(segments), len(root))
    return segments[:n] == root[:n]


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    else:
        shutil.rmtree(path)


def _make_dirs(tree: Path, segments: list[str], where: str) -> Path:
    """tree/segments as a directory chain (a file in the way of an image's directory is replaced)."""
    current = tree
    for seg in segments:
        current = current / seg
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            current.mkdir(mode=0o755)
            continue
        if not stat.S_ISDIR(st.st_mode):
            current.unlink()
            current.mkdir(mode=0o755)
    return current


def extract(
    src: IO[bytes],
    tree: Path,
    *,
    where: str,
    compression: str | None,
    image: bool,
    model_root: list[str],
    max_file_bytes: int,
    budget: _Budget,
    deadline: float,
) -> int:
    """Unpack one archive layer read from `src` into `tree`; returns the bytes written.

    Only regular files and directories are written (mode 0644/0755, owner and times ignored). Refused
    (UnsafePath): absolute names, ``..``, NUL or backslashes, and — inside the model directory — symbolic and
    hard links, devices, FIFOs. For an `image` layer, entries outside `model_root` (and its ancestors) are
    skipped, whiteouts (``.wh.<name>``, ``.wh..wh..opq``) delete what lower layers put there, and a later entry
    replaces an earlier one; an artifact's archive may not contain anything but files and directories. Each
    file is at most `max_file_bytes`; all of them together take from `budget`."""
    if compression == "zstd":
        raise stores.StoreError("Unsupported", f"{where}: zstd-compressed layers are not supported (use tar or tar+gzip)")
    mode = "r|gz" if compression == "gzip" else "r|"
    written = 0
    try:
        with tarfile.open(fileobj=src, mode=mode) as tf:  # type: ignore[call-overload]
            for member in tf:
                _check_deadline(deadline, where)
                segments = _segments(member.name, where)
                if not segments:
                    continue  # the root itself
                base = segments[-1]
                if image and base.startswith(_WHITEOUT):
                    if base == _OPAQUE:
                        parent = tree.joinpath(*segments[:-1])
                        if _inside(segments[:-1], model_root) and parent.is_dir() and not parent.is_symlink():
                            for child in list(parent.iterdir()):
                                _remove(child)
                    else:
                        gone = [*segments[:-1], base[len(_WHITEOUT):]]
                        victim = tree.joinpath(*gone)
                        if gone[-1] not in ("", ".", "..") and _inside(gone, model_root) and (victim.exists() or victim.is_symlink()):
                            _remove(victim)
                    continue
                if image and not _inside(segments, model_root):
                    continue
                shown = "/".join(segments)
                if member.isdir():
                    _make_dirs(tree, segments, where)
                    continue
                if not member.isreg():
                    kind = ("a symbolic link" if member.issym() else "a hard link" if member.islnk()
                            else "a device" if member.isdev() else "a FIFO" if member.isfifo() else "not a regular file")
                    raise stores.StoreError("UnsafePath", f"{where}: {shown} is {kind}; only regular files and directories are allowed")
                if member.size > max_file_bytes:
                    raise stores.StoreError("TooLarge", f"{where}: {shown} is {member.size} bytes, more than the {max_file_bytes} allowed for a file")
                budget.take(member.size, where)
                parent = _make_dirs(tree, segments[:-1], where)
                target = parent / base
                if target.is_symlink() or target.exists():
                    _remove(target)
                data = tf.extractfile(member)
                assert data is not None
                with open(target, "wb") as out:
                    left = member.size
                    while left > 0:
                        chunk = data.read(min(_CHUNK, left))
                        if not chunk:
                            raise stores.StoreError("BadLayer", f"{where}: {shown} ends early")
                        out.write(chunk)
                        left -= len(chunk)
                        _check_deadline(deadline, where)
                os.chmod(target, 0o644)
                written += member.size
    except stores.StoreError:
        raise
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error, ValueError) as exc:
        raise stores.StoreError("BadLayer", f"{where}: not a readable tar archive: {exc}") from None
    except OSError as exc:
        raise stores.StoreError("WriteFailed", f"{where}: unpacking: {exc.strerror or exc}") from None
    return written


class Pull:
    """The pulled manifest of an oci:// artifact and the client that pulled it."""

    def __init__(self, uri: str, bounds: Callable[..., fetch.Limits], limits: LoaderLimits) -> None:
        self.ref = oci.parse_reference(uri)
        if self.ref.digest is None:
            raise stores.StoreError(
                "InvalidURI", f"{uri}: the loader pulls by digest only (oci://registry/repo@sha256:<manifest digest>)"
            )
        self.limits = limits
        self.bounds = bounds
        self.registry = oci.Registry(
            self.ref, oci.credentials_from_env(self.ref.registry),
            net=fetch.NetworkPolicy.unrestricted(), limits=lambda cap: bounds(cap),
        )
        self.manifest = self.registry.manifest()
        total = sum(layer.size for layer in self.manifest.layers)
        if total > limits.max_total_bytes:
            raise stores.StoreError(
                "TooLarge", f"{uri}: the layers are {total} bytes, more than the total limit of {limits.max_total_bytes}"
            )

    def same_artifact(self, other: str) -> oci.Reference | None:
        """`other` parsed when it names a file of this very artifact (same registry, repository, digest)."""
        if not other.lower().startswith("oci://"):
            return None
        ref = oci.parse_reference(other)
        if (ref.registry, ref.repository, ref.digest) == (self.ref.registry, self.ref.repository, self.ref.digest):
            return ref
        return None

    def file_layer_bytes(self, path: str, max_bytes: int) -> bytes | None:
        layer = oci.find_file(self.manifest, path)
        return None if layer is None else self.registry.blob_bytes(layer, max_bytes)

    def pull(self, scratch: Path, tree: Path, *, workers: int, stop: threading.Event, say: Log, deadline: float,
             retries: int = 2) -> int:
        """Every layer into `tree` (see the module docstring); returns the bytes downloaded."""
        manifest, limits = self.manifest, self.limits
        model_root = [s for s in self.ref.path.split("/") if s]
        budget = fetch.Budget(limits.max_total_bytes, "the total limit of the artifact")
        layers = list(manifest.layers)
        plans: list[tuple[bool, str | None]] = [
            (True, oci.ARCHIVE_TYPES.get(d.media_type, "unknown")) if manifest.is_image else d.archive for d in layers
        ]
        for desc, (is_archive, compression) in zip(layers, plans, strict=True):
            if manifest.is_image and compression == "unknown":
                raise stores.StoreError("Unsupported", f"{self.ref.uri()}: image layer type {desc.media_type!r} is not a tar layer")
            if not is_archive:
                if not desc.file_path:
                    raise stores.StoreError("BadManifest", f"{self.ref.uri()}: layer {desc.digest} names no file path ({oci.ANN_FILEPATH})")
                stores.check_relative_name(desc.file_path.strip("/"))
                if desc.size > limits.max_file_bytes:
                    raise stores.StoreError("TooLarge", f"{desc.file_path}: {desc.size} bytes, more than the {limits.max_file_bytes} allowed for a file")

        def download(i: int) -> int:
            attempt = 0
            while True:
                share = budget.share()  # a retried transfer starts over: it gives back what it took
                try:
                    return download_once(i, share)
                except stores.StoreError as exc:
                    attempt += 1
                    if not exc.retryable or attempt > retries or stop.is_set():
                        raise
                    share.release()
                time.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))

        def download_once(i: int, share: fetch.Budget) -> int:
            desc = layers[i]
            target = scratch / f"{i:05d}"
            reg = oci.Registry(self.ref, self.registry.credentials, net=self.registry.net,
                               limits=lambda cap: self.bounds(cap, stop=stop, budget=share),
                               plain_http=self.registry.plain_http)
            reg._authorization = self.registry._authorization  # the token the manifest fetch earned
            try:
                with open(target, "wb") as out:

                    def sink(chunk: bytes) -> None:
                        try:
                            out.write(chunk)
                        except OSError as exc:
                            raise stores.StoreError("WriteFailed", f"writing layer {desc.digest}: {exc.strerror or exc}") from None

                    return reg.blob(layers[i], sink, max_bytes=desc.size)
            except OSError as exc:
                stores.remove_quietly(target)
                raise stores.StoreError("WriteFailed", f"layer {desc.digest}: {exc.strerror or exc}") from None
            except BaseException:
                stores.remove_quietly(target)
                raise

        say(f"pulling {len(layers)} layers of {self.ref.uri()} ({'image' if manifest.is_image else 'artifact'})")
        total = parallel.run_all(
            range(len(layers)), download, workers=workers, stop=stop, name="pull",
            progress=lambda done, _: say(f"... {done}/{len(layers)} layers, {budget.used} bytes"),
        )

        unpacked = _Budget(limits.max_total_bytes)
        for i, (desc, (is_archive, compression)) in enumerate(zip(layers, plans, strict=True)):
            blob = scratch / f"{i:05d}"
            where = f"layer {desc.digest}"
            if is_archive:
                with open(blob, "rb") as src:
                    extract(src, tree, where=where, compression=compression, image=manifest.is_image,
                            model_root=model_root, max_file_bytes=limits.max_file_bytes, budget=unpacked,
                            deadline=deadline)
            else:
                assert desc.file_path is not None
                segments = stores.check_relative_name(desc.file_path.strip("/"))
                unpacked.take(desc.size, where)
                parent = _make_dirs(tree, segments[:-1], where)
                target = parent / segments[-1]
                if target.is_symlink() or target.exists():
                    _remove(target)
                os.chmod(blob, 0o644)
                os.rename(blob, target)
            stores.remove_quietly(blob)
        return total


def read_tree_file(tree: Path, path: str, max_bytes: int) -> bytes:
    """A regular file of the pulled tree (no link followed), at most `max_bytes`."""
    segments = stores.check_relative_name(path)
    target = tree.joinpath(*segments)
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise stores.StoreError("NotFound", f"the artifact has no file {path}") from None
    except OSError as exc:
        raise stores.StoreError("UnsafePath", f"{path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise stores.StoreError("NotFound", f"{path} in the artifact is not a regular file")
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise stores.StoreError("TooLarge", f"{path} is more than the {max_bytes} bytes allowed")
    return data


def move_planned(model_root: Path, staging: Path, files: list[tuple[str, int | None]]) -> int:
    """Move exactly the signed files from the pulled tree's model directory into `staging`."""
    total = 0
    for path, size in files:
        segments = stores.check_relative_name(path)
        src = model_root.joinpath(*segments)
        try:
            st = os.lstat(src)
        except FileNotFoundError:
            raise stores.StoreError("MissingFile", f"{path}: the artifact has no such file") from None
        if not stat.S_ISREG(st.st_mode):
            raise stores.StoreError("UnsafePath", f"{path}: not a regular file in the artifact")
        if size is not None and st.st_size != size:
            raise stores.StoreError("SizeMismatch", f"{path} is {st.st_size} bytes, the signed manifest says {size}")
        target = staging.joinpath(*segments)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(src, target)
        total += st.st_size
    return total


def scratch_dirs(dest_dir: Path) -> tuple[Path, Path]:
    """(blobs, tree) scratch directories in DEST, named so that the loader's leftover cleanup removes them."""
    blobs = Path(tempfile.mkdtemp(prefix=BLOBS_PREFIX, dir=dest_dir))
    tree = Path(tempfile.mkdtemp(prefix=TREE_PREFIX, dir=dest_dir))
    return blobs, tree


def model_root(tree: Path, ref: oci.Reference) -> Path:
    root = tree.joinpath(*[s for s in ref.path.split("/") if s])
    if root.is_symlink() or not root.is_dir():
        raise stores.StoreError("NotFound", f"{ref.uri()}: the artifact has no directory {ref.path or '/'!r}")
    return root


__all__ = ["Pull", "extract", "model_root", "move_planned", "read_tree_file", "scratch_dirs"]

