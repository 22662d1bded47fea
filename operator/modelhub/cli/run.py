"""`modelhub run`: the operator process (kopf underneath)."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import logging
import os

_M_ARENA_MAX = -8  # glibc's mallopt parameter


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
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return None
    return arenas if mallopt(_M_ARENA_MAX, arenas) == 1 else None


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="run the operator against the current kubeconfig or in-cluster config")
    p.add_argument("--verbose", "-v", action="store_true")
    p.add_argument("--liveness", default="http://0.0.0.0:8081/healthz", help="kopf liveness endpoint URL (empty: none)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    limit_malloc_arenas()
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
