"""`modelhub run`: the operator process (kopf underneath)."""

from __future__ import annotations

import argparse
import asyncio
import logging


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="run the operator against the current kubeconfig or in-cluster config")
    p.add_argument("--verbose", "-v", action="store_true")
    p.add_argument("--liveness", default="http://0.0.0.0:8081/healthz", help="kopf liveness endpoint URL (empty: none)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import kopf

    import modelhub.handlers.operator  # noqa: F401 - registers the handlers

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    kopf.configure(verbose=args.verbose)
    asyncio.run(kopf.operator(clusterwide=True, standalone=True, liveness_endpoint=args.liveness or None))
    return 0
