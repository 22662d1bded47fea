"""`modelhub run`: the operator process (kopf underneath)."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import logging
import os
import threading
import time

_M_ARENA_MAX = -8  # glibc's mallopt parameter


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def limit_malloc_arenas(env: dict[str, str] | None = None) -> int | None:
    """Cap glibc's malloc arenas (MODELHUB_MALLOC_ARENAS, default 2; 0 keeps glibc's default of 8 per core).

    Each thread that contends for the allocator gets an arena of its own, up to 8 per core; the operator runs
    about a hundred I/O threads (API requests, watches, bundle fetches), and the memory freed in one arena is
    not reused by another: resident memory grows with the threads, not with the work. Called before any thread
    starts. Returns the cap set, or None (not glibc, or left alone)."""
    e = os.environ if env is None else env
    try:
        arenas = int(e.get("MODELHUB_MALLOC_ARENAS", "2"))
    except ValueError:
        raise SystemExit(
            f"MODELHUB_MALLOC_ARENAS must be a whole number, not {e.get('MODELHUB_MALLOC_ARENAS')!r}") from None
    if arenas <= 0:
        return None
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None) if libc is not None else None
    if mallopt is None:  # not glibc (musl has no mallopt)
        return None
    return arenas if mallopt(_M_ARENA_MAX, arenas) == 1 else None


def trim_malloc_every(env: dict[str, str] | None = None) -> float | None:
    """Give the memory glibc's malloc holds free back to the system every MODELHUB_MALLOC_TRIM_SECONDS (default
    1; 0: never), from a thread of its own (ctypes lets go of the GIL during the call).

    Decoding a list or a burst of watch events frees most of what it allocated, but glibc keeps freed memory
    inside its heap for reuse, so resident memory climbs with every burst toward the sum of them; malloc_trim
    hands the free pages back (a call takes about 0.2 ms). Returns the period, or None (not glibc, or off)."""
    e = os.environ if env is None else env
    try:
        every = float(e.get("MODELHUB_MALLOC_TRIM_SECONDS", "1"))
    except ValueError:
        raise SystemExit("MODELHUB_MALLOC_TRIM_SECONDS must be a number of seconds, not "
                         f"{e.get('MODELHUB_MALLOC_TRIM_SECONDS')!r}") from None
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if every <= 0 or trim is None:
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int

    def run() -> None:
        while True:
            time.sleep(every)
            trim(0)

    threading.Thread(target=run, name="malloc-trim", daemon=True).start()
    return every


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="run the operator against the current kubeconfig or in-cluster config")
    p.add_argument("--verbose", "-v", action="store_true")
    p.add_argument("--liveness", default="http://0.0.0.0:8081/healthz", help="kopf liveness endpoint URL (empty: none)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    limit_malloc_arenas()
    trim_malloc_every()
    import kopf

    import modelhub.handlers.operator  # noqa: F401 - registers the handlers

    if os.environ.get("MODELHUB_WEBHOOKS", "1") != "0":
        import modelhub.handlers.admission  # noqa: F401 - registers the webhooks (kopf needs a server for them)

    kopf.configure(verbose=args.verbose)
    logging.getLogger("modelhub").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if not args.verbose:  # one line per watch event is noise at this scale
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    asyncio.run(kopf.operator(clusterwide=True, standalone=True, liveness_endpoint=args.liveness or None))
    return 0
