"""`modelhub run`: the operator process (kopf underneath)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="run the operator against the current kubeconfig or in-cluster config")
    p.add_argument("--verbose", "-v", action="store_true")
    p.add_argument("--liveness", default="http://0.0.0.0:8081/healthz", help="kopf liveness endpoint URL (empty: none)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
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
