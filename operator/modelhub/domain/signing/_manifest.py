"""Manifests: walking a model directory and hashing its files (or shards of them) fast.

Byte-compatible with model_signing 1.1.x serialisation:

* a resource is named by the file's path relative to the model directory, POSIX separators
  (``sub/file.bin``), or for shards ``path:start:end`` with ``end`` exclusive;
* a file resource's algorithm is the hash name (``sha256``, ``blake2b``); a shard's is
  ``<hash>-sharded-<shard_size>``; empty files have no shard at all;
* resources are listed sorted by path components (then shard offsets), which is how model_signing orders
  its ``PurePosixPath`` keys (so ``a/b`` sorts before ``a.txt``, unlike a plain string sort);
* the subject digest is sha256 over the concatenated raw digests in that order;
* an ignored path ignores itself and, when a directory, everything below it;
* a symlink (when allowed) is hashed as the file it points to, under the link's name; a symlink to a
  directory is neither followed nor hashed (model_signing's ``glob('**/*')`` does the same).

Hashing streams every file in large chunks into a reused per-thread buffer (``readv``: no allocation, no
copy beyond the kernel's), on a pool of threads (hashlib releases the GIL on large updates), largest job first.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from modelhub.domain.signing._errors import Reason, SignatureError

CHUNK_SIZE = 4 * 1024 * 1024
MAX_NAME_LENGTH = 4096
MAX_FILES = 1_000_000  # files in one model directory (walk aborts beyond)
HASH_ALGORITHMS: dict[str, Callable[[], Any]] = {"sha256": hashlib.sha256, "blake2b": hashlib.blake2b}
DIGEST_HEX_LENGTH = {"sha256": 64, "blake2b": 128}
# What model_signing ignores unless told not to (--no-ignore-git-paths).
GIT_PATHS: tuple[str, ...] = (".git", ".gitattributes", ".github", ".gitignore")

_HEX_RE = {n: re.compile(f"[0-9a-f]{{{n}}}") for n in (64, 128)}


@dataclass(frozen=True)
class Resource:
    """One line of the signed manifest: a file (or ``path:start:end`` shard), its hash algorithm and hex digest."""

    name: str
    algorithm: str
    digest: str


def hash_algorithm_name(name: str) -> str:
    """'sha256' or 'blake2b' (model_signing's CLI/API calls the latter 'blake2')."""
    key = str(name).strip().lower()
    if key == "blake2":
        key = "blake2b"
    if key not in HASH_ALGORITHMS:
        raise SignatureError(
            Reason.UNSUPPORTED_ALGORITHM, f"unsupported hash algorithm {name!r}: use sha256 or blake2b"
        )
    return key


def hex_matcher(length: int) -> Callable[[str], re.Match[str] | None]:
    """`fullmatch` of a regular expression for exactly `length` lowercase hex digits."""
    return (_HEX_RE.get(length) or re.compile(f"[0-9a-f]{{{length}}}")).fullmatch


def is_lower_hex(value: str, length: int) -> bool:
    pattern = _HEX_RE.get(length) or re.compile(f"[0-9a-f]{{{length}}}")
    return pattern.fullmatch(value) is not None


def default_workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, n)


# ------------------------------------------------------------------------------------------------ paths


def is_safe_relative_path(name: str) -> bool:
    """Fast test for the common case of :func:`check_relative_path` (which explains refusals)."""
    if not name or len(name) > MAX_NAME_LENGTH or "\x00" in name:
        return False
    wrapped = f"/{name}/"
    if "//" in wrapped or "/./" in wrapped or "/../" in wrapped:
        return False
    if not name.isascii():
        try:
            os.fsencode(name)
        except UnicodeError:
            return False
    return True


def check_relative_path(name: object, what: str) -> str:
    """`name` must be a normalised relative POSIX path with no '', '.' or '..' component (else UnsafePath)."""
    if isinstance(name, str) and is_safe_relative_path(name):
        return name
    if not isinstance(name, str):
        raise SignatureError(Reason.MALFORMED_BUNDLE, f"{what} must be a string, got {type(name).__name__}")
    if not name:
        raise SignatureError(Reason.UNSAFE_PATH, f"{what} is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise SignatureError(Reason.UNSAFE_PATH, f"{what} is {len(name)} characters long (at most {MAX_NAME_LENGTH})")
    if "\x00" in name:
        raise SignatureError(Reason.UNSAFE_PATH, f"{what} {name!r} contains a NUL character")
    if name.startswith("/"):
        raise SignatureError(Reason.UNSAFE_PATH, f"{what} {name!r} is absolute; it must be relative to the model")
    for part in name.split("/"):
        if part == "..":
            raise SignatureError(Reason.UNSAFE_PATH, f"{what} {name!r} has a '..' component")
        if part in ("", "."):
            raise SignatureError(
                Reason.UNSAFE_PATH, f"{what} {name!r} is not a normalised path (empty or '.' component)"
            )
    try:
        os.fsencode(name)
    except UnicodeError:
        raise SignatureError(Reason.UNSAFE_PATH, f"{what} {name!r} cannot be encoded as a file name") from None
    return name


def sort_key(name: str) -> tuple[str, ...]:
    """model_signing's order for file names: by path components."""
    return tuple(name.split("/"))


def shard_sort_key(shard: tuple[str, int, int]) -> tuple[tuple[str, ...], int, int]:
    return (sort_key(shard[0]), shard[1], shard[2])


def shard_name(path: str, start: int, end: int) -> str:
    return f"{path}:{start}:{end}"


def shard_algorithm(hash_algorithm: str, shard_size: int) -> str:
    return f"{hash_algorithm}-sharded-{shard_size}"


def shard_ranges(size: int, shard_size: int) -> list[tuple[int, int]]:
    """[start, end) ranges of `shard_size` bytes, the last one shorter; none for an empty file."""
    return [(start, min(start + shard_size, size)) for start in range(0, size, shard_size)]


class IgnoreSet:
    """Relative paths ignored with everything below them (model_signing's ``Path.is_relative_to`` test)."""

    def __init__(self, paths: Iterable[str] = ()):
        self._paths = frozenset(paths)
        self._empty = not self._paths

    def __bool__(self) -> bool:
        return not self._empty

    def matches(self, rel: str) -> bool:
        if self._empty:
            return False
        if rel in self._paths:
            return True
        # any ancestor directory ignored?
        i = rel.find("/")
        while i != -1:
            if rel[:i] in self._paths:
                return True
            i = rel.find("/", i + 1)
        return False


def normalize_ignore_paths(model_dir: str, paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Relative (to the model directory) or absolute-inside-the-model paths -> normalised relative POSIX paths.

    A path that is outside the model directory, or that would ignore the whole model, is refused (UnsafePath).
    """
    out: list[str] = []
    root = os.path.abspath(model_dir)
    for p in paths:
        raw = os.fspath(p)
        if isinstance(raw, bytes):
            raw = os.fsdecode(raw)
        rel = os.path.relpath(raw, root) if os.path.isabs(raw) else os.path.normpath(raw)
        rel = rel.replace(os.sep, "/")
        if rel in (".", "") or rel == ".." or rel.startswith("../"):
            raise SignatureError(
                Reason.UNSAFE_PATH,
                f"ignore path {raw!r} is not a path inside the model directory {model_dir!s}",
            )
        check_relative_path(rel, "ignore path")
        if rel not in out:
            out.append(rel)
    return out


# ------------------------------------------------------------------------------------------------- walk


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (fifo)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def check_model_dir(model_dir: str | os.PathLike[str]) -> str:
    root = os.fspath(model_dir)
    if isinstance(root, bytes):
        root = os.fsdecode(root)
    try:
        st = os.stat(root)
    except FileNotFoundError:
        raise SignatureError(Reason.MISSING_FILE, f"model directory {root} does not exist") from None
    except OSError as exc:
        raise SignatureError(Reason.READ_ERROR, f"cannot access model directory {root}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise SignatureError(Reason.MISSING_FILE, f"model path {root} is not a directory")
    return root


def walk(root: str, ignore: IgnoreSet, allow_symlinks: bool, *, max_files: int = MAX_FILES) -> dict[str, int]:
    """Every file of the model (relative POSIX name -> size), ignored paths pruned.

    Refuses (UnsafePath) symlinks unless allowed, broken symlinks, fifos, sockets and devices.
    """
    files: dict[str, int] = {}
    stack: list[tuple[str, str]] = [("", root)]
    while stack:
        rel_dir, abs_dir = stack.pop()
        try:
            with os.scandir(abs_dir) as it:
                entries = list(it)
        except OSError as exc:
            where = rel_dir or "."
            raise SignatureError(Reason.READ_ERROR, f"cannot list directory '{where}' of the model: {exc.strerror}") from None
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if ignore.matches(rel):
                continue
            try:
                if entry.is_symlink():
                    if not allow_symlinks:
                        raise SignatureError(
                            Reason.UNSAFE_PATH,
                            f"'{rel}' is a symbolic link (to '{_readlink(entry.path)}') but the signature does not "
                            "allow symlinks",
                        )
                    try:
                        st = os.stat(entry.path)
                    except FileNotFoundError:
                        raise SignatureError(
                            Reason.UNSAFE_PATH, f"'{rel}' is a broken symbolic link (to '{_readlink(entry.path)}')"
                        ) from None
                    if stat.S_ISDIR(st.st_mode):
                        continue  # like model_signing: a symlinked directory is neither followed nor hashed
                    if not stat.S_ISREG(st.st_mode):
                        raise SignatureError(
                            Reason.UNSAFE_PATH, f"'{rel}' is a symbolic link to {_kind(st.st_mode)}, not to a file"
                        )
                    size = st.st_size
                elif entry.is_dir(follow_symlinks=False):
                    stack.append((rel, entry.path))
                    continue
                elif entry.is_file(follow_symlinks=False):
                    size = entry.stat(follow_symlinks=False).st_size
                else:
                    mode = entry.stat(follow_symlinks=False).st_mode
                    raise SignatureError(Reason.UNSAFE_PATH, f"'{rel}' is {_kind(mode)}, not a regular file")
            except FileNotFoundError:
                continue  # vanished while we walked: the comparison with the manifest will tell
            except OSError as exc:
                raise SignatureError(Reason.READ_ERROR, f"cannot inspect '{rel}': {exc.strerror}") from None
            files[rel] = size
            if len(files) > max_files:
                raise SignatureError(
                    Reason.EXTRA_FILE, f"the model directory holds more than {max_files} files"
                )
    return files


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


# ---------------------------------------------------------------------------------------------- hashing

_local = threading.local()


def _buffer() -> memoryview:
    view = getattr(_local, "view", None)
    if view is None:
        view = _local.view = memoryview(bytearray(CHUNK_SIZE))
    return view


_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _open_in(root: str, rel: str, allow_symlinks: bool) -> int:
    """Open model file `rel` for reading without ever following a symlinked directory, nor a symlinked file
    unless allowed, and only if it is a regular file (O_NONBLOCK so that a fifo swapped in cannot hang us)."""
    parts = rel.split("/")
    dir_fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        for part in parts[:-1]:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=dir_fd)
            os.close(dir_fd)
            dir_fd = nxt
        fd = os.open(parts[-1], _FILE_FLAGS | (0 if allow_symlinks else _NOFOLLOW), dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise SignatureError(Reason.UNSAFE_PATH, f"'{rel}' is {_kind(mode)}, not a regular file")
    return fd


class _Cancelled(Exception):
    pass


def hash_file_range(
    root: str,
    rel: str,
    algorithm: str,
    start: int = 0,
    end: int | None = None,
    *,
    allow_symlinks: bool = False,
    cancel: threading.Event | None = None,
    expect_eof: bool = False,
) -> bytes:
    """Digest of bytes [start, end) of model file `rel` (the whole file when `end` is None).

    With `expect_eof`, the file must end at `end` (FileMismatch if it has grown)."""
    try:
        fd = _open_in(root, rel, allow_symlinks)
    except FileNotFoundError:
        raise SignatureError(Reason.MISSING_FILE, f"'{rel}' disappeared while the model was being hashed") from None
    except OSError as exc:
        if exc.errno in (getattr(os, "ELOOP", 40), getattr(os, "ENOTDIR", 20)):
            raise SignatureError(
                Reason.UNSAFE_PATH, f"'{rel}' (or a directory above it) is a symbolic link or not a directory"
            ) from None
        raise SignatureError(Reason.READ_ERROR, f"cannot open '{rel}': {exc.strerror}") from None
    try:
        hasher = HASH_ALGORITHMS[algorithm]()
        buf = _buffer()
        chunk = len(buf)
        readv = os.readv
        update = hasher.update
        try:
            if start:
                os.lseek(fd, start, os.SEEK_SET)
            if hasattr(os, "posix_fadvise"):
                try:
                    os.posix_fadvise(fd, start, 0 if end is None else end - start, os.POSIX_FADV_SEQUENTIAL)
                except OSError:
                    pass
            if end is None:
                while True:
                    n = readv(fd, (buf,))
                    if not n:
                        break
                    update(buf[:n])
                    if cancel is not None and cancel.is_set():
                        raise _Cancelled
            else:
                remaining = end - start
                while remaining:
                    n = readv(fd, (buf[: min(chunk, remaining)],))
                    if not n:
                        raise SignatureError(
                            Reason.FILE_MISMATCH,
                            f"'{rel}' is shorter than signed: it ends before byte {end}",
                        )
                    update(buf[:n])
                    remaining -= n
                    if cancel is not None and cancel.is_set():
                        raise _Cancelled
                if expect_eof and readv(fd, (buf[:1],)):
                    raise SignatureError(
                        Reason.FILE_MISMATCH, f"'{rel}' is longer than signed: it goes on past byte {end}"
                    )
        except OSError as exc:
            raise SignatureError(Reason.READ_ERROR, f"cannot read '{rel}': {exc.strerror}") from None
        return hasher.digest()
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Job:
    """One hashing job: a whole file (end None) or a shard, with its expected digest when verifying."""

    rel: str
    start: int
    end: int | None
    weight: int  # bytes, for scheduling
    index: int  # position in the output
    expected: bytes | None = None
    last: bool = False  # the last shard of its file: the file must end there


def run_jobs(
    root: str,
    jobs: Sequence[Job],
    algorithm: str,
    *,
    allow_symlinks: bool,
    workers: int | None,
    on_result: Callable[[Job, bytes], None],
) -> None:
    """Hash every job on a thread pool, largest first; `on_result` may raise to stop everything early.

    The first error (a SignatureError from hashing or from `on_result`) cancels the remaining jobs and is
    re-raised; jobs already running stop at their next chunk.
    """
    if not jobs:
        return
    n = default_workers() if workers is None else int(workers)
    if n < 1:
        raise ValueError("workers must be at least 1")
    ordered = sorted(jobs, key=lambda j: -j.weight)
    cancel = threading.Event()

    def work(job: Job) -> None:
        if cancel.is_set():
            return
        digest = hash_file_range(
            root, job.rel, algorithm, job.start, job.end,
            allow_symlinks=allow_symlinks, cancel=cancel, expect_eof=job.last,
        )
        on_result(job, digest)

    if n == 1 or len(ordered) == 1:
        for job in ordered:
            work(job)
        return
    with ThreadPoolExecutor(max_workers=min(n, len(ordered)), thread_name_prefix="modelhub-hash") as pool:
        futures = [pool.submit(work, job) for job in ordered]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        errors: list[BaseException] = [e for e in (f.exception() for f in done) if e is not None]
        if errors:
            cancel.set()
            for f in pending:
                f.cancel()
            wait(pending)
            real = [e for e in errors if not isinstance(e, _Cancelled)]
            raise (real or errors)[0]


def file_jobs(
    files: Iterable[tuple[str, int]], shard_size: int | None
) -> tuple[list[Job], list[tuple[str, int, int | None]]]:
    """Jobs for hashing `files` (name, size), and the (name, start, end) key each job index stands for."""
    keys: list[tuple[str, int, int | None]] = []
    jobs: list[Job] = []
    for rel, size in files:
        if shard_size is None:
            jobs.append(Job(rel, 0, None, size, len(keys)))
            keys.append((rel, 0, None))
        else:
            for start, end in shard_ranges(size, shard_size):
                jobs.append(Job(rel, start, end, end - start, len(keys)))
                keys.append((rel, start, end))
    return jobs, keys


def subject_digest_bytes(raw_digests: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for d in raw_digests:
        h.update(d)
    return h.hexdigest()
