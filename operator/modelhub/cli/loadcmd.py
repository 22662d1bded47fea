"""`modelhub load`: the init container of every inference pod (fetch, verify against the signed manifest, fail
closed). Exit 0 only when DEST/model holds exactly the signed files; otherwise write the one-line reason
``<Reason>: <message>`` to the termination message file ($MODELHUB_TERMINATION_LOG, default
/dev/termination-log, where Kubernetes shows it in the pod status), print ``error: <Reason>: <message>`` as the
last line on stderr, and exit 1."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

TERMINATION_LOG_ENV = "MODELHUB_TERMINATION_LOG"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
TERMINATION_MESSAGE_MAX = 4096  # what the kubelet keeps of a termination message

EXAMPLE = """\
example:
  modelhub load --uri s3://models/sentiment/1.2.0 --digest sha256:<hex> --dest /models \\
      --keys-dir /etc/modelhub/keys

The signature bundle defaults to model.sig inside the artifact directory. URIs: file:///abs/dir,
pvc://<claim>/<dir> (mounted at $MODELHUB_PVC_ROOT/<claim>, default /mnt/pvc), https://host/dir,
s3://bucket/prefix (AWS_* variables; AWS_ENDPOINT_URL for S3-compatible servers). Plain http:// is refused
unless MODELHUB_ALLOW_HTTP=1.

Limits (flags, else MODELHUB_LOADER_* variables, else the defaults shown): a file whose size the signed
manifest states must have exactly that size; any other file at most --max-file-bytes; all files together at
most --max-total-bytes; everything within --deadline seconds; every transfer at least --min-rate bytes/s over
each --rate-window seconds.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "load",
        help="fetch a signed model artifact and verify every file before serving (init container)",
        description=__doc__,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--uri", required=True, help="artifact directory URI (file, pvc, https, s3, or oci by digest)")
    parser.add_argument("--digest", required=True, help="pinned subject digest, sha256:<hex>")
    parser.add_argument("--dest", required=True, help="volume directory; the model lands in DEST/model")
    sig = parser.add_mutually_exclusive_group()
    sig.add_argument(
        "--signature-uri", help="URI of the signature bundle (default: model.sig beside the artifact)"
    )
    sig.add_argument(
        "--signature-file", help="local path of the signature bundle (e.g. a mounted ConfigMap key)"
    )
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument(
        "--public-key", action="append", metavar="PEMFILE", help="trusted PEM public key (repeatable)"
    )
    keys.add_argument(
        "--keys-dir", metavar="DIR", help="directory whose every file is a trusted PEM public key"
    )
    cas = parser.add_mutually_exclusive_group()
    cas.add_argument(
        "--ca-certificate", action="append", metavar="PEMFILE",
        help="trusted PEM CA certificate(s), for certificate signatures (repeatable)",
    )
    cas.add_argument("--cas-dir", metavar="DIR", help="directory whose every file holds trusted PEM CA certificates")
    parser.add_argument(
        "--store-ca-file", metavar="PEMFILE",
        help="trust only the CA certificate(s) in PEMFILE, not the system roots, for https:// stores and the S3 "
        "endpoint (spec.artifact.caConfigMapRef)",
    )
    parser.add_argument("--workers", type=int, default=8, help="parallel downloads (default 8)")
    parser.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds (default 60)")
    parser.add_argument(
        "--retries", type=int, default=2, help="retries per file on transient errors (default 2)"
    )
    from modelhub.domain.loadlimits import ENV, limits_from_env, parse_size

    try:
        defaults = limits_from_env(os.environ)
    except ValueError:
        from modelhub.domain.loadlimits import DEFAULTS as defaults

    def size(text: str) -> int:
        try:
            return parse_size(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parser.add_argument("--max-total-bytes", type=size, default=defaults.max_total_bytes,
                        help=f"all files together (${ENV['max_total_bytes']}; default {defaults.max_total_bytes})")
    parser.add_argument("--max-file-bytes", type=size, default=defaults.max_file_bytes,
                        help=f"one file of unstated size (${ENV['max_file_bytes']}; default {defaults.max_file_bytes})")
    parser.add_argument("--max-bundle-bytes", type=size, default=defaults.max_bundle_bytes,
                        help=f"the signature bundle (${ENV['max_bundle_bytes']}; default {defaults.max_bundle_bytes})")
    parser.add_argument("--deadline", type=float, default=defaults.deadline_seconds,
                        help=f"seconds for the whole load (${ENV['deadline_seconds']}; default {defaults.deadline_seconds:g})")
    parser.add_argument("--min-rate", type=float, default=defaults.min_rate,
                        help=f"bytes/s every transfer must keep up, 0 for none (${ENV['min_rate']}; default {defaults.min_rate:g})")
    parser.add_argument("--rate-window", type=float, default=defaults.rate_window,
                        help=f"seconds over which the rate is measured (${ENV['rate_window']}; default {defaults.rate_window:g})")
    parser.set_defaults(func=run)


class _Terminated(BaseException):
    def __init__(self, signum: int) -> None:
        self.signum = signum


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated(signum)


def one_line(text: str, limit: int = TERMINATION_MESSAGE_MAX) -> str:
    """`text` on one line (control characters become spaces), at most `limit` UTF-8 bytes."""
    line = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    data = line.encode("utf-8")
    if len(data) <= limit:
        return line
    return data[: limit - 3].decode("utf-8", "ignore") + "..."


def report_failure(reason: str, message: str) -> None:
    """The failure as one line: into the termination message file (best effort) and last on stderr."""
    line = one_line(f"{reason}: {message}")
    path = os.environ.get(TERMINATION_LOG_ENV) or DEFAULT_TERMINATION_LOG
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(line)
    except OSError:
        pass  # not in a pod (or no such file): stderr still has it
    print(f"error: {line}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    # Kubernetes stops an init container with SIGTERM: unwind (the loader removes its staging directory and
    # anything that could look verified) instead of dying on the spot.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _run(args)
    except _Terminated as exc:
        report_failure("Terminated", f"the loader was stopped by signal {exc.signum}")
        return 128 + exc.signum
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _read_signature_file(path: str, max_bytes: int) -> bytes:
    from modelhub.loader.load import LoadError

    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise LoadError("NotFound", f"signature bundle {path}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise LoadError("TooLarge", f"signature bundle {path} is larger than {max_bytes} bytes")
    return data


def _run(args: argparse.Namespace) -> int:
    from modelhub.adapters.stores import StoreError
    from modelhub.domain.loadlimits import LoaderLimits
    from modelhub.domain.signing import SignatureError
    from modelhub.loader.load import (
        LoadError,
        invalidate,
        load_model,
        read_store_ca,
        read_trusted_cas,
        read_trusted_keys,
        store_ca,
    )

    try:
        try:
            limits = LoaderLimits(
                max_total_bytes=args.max_total_bytes,
                max_file_bytes=args.max_file_bytes,
                deadline_seconds=args.deadline,
                min_rate=args.min_rate,
                rate_window=args.rate_window,
                max_bundle_bytes=args.max_bundle_bytes,
            )
        except ValueError as exc:
            invalidate(args.dest)
            raise LoadError("InvalidArgument", str(exc)) from None
        try:
            has_keys = bool(args.public_key or args.keys_dir)
            if not has_keys and not (args.ca_certificate or args.cas_dir):
                raise LoadError(
                    "NoTrustedKeys",
                    "no trusted public key or CA certificate given (--public-key, --keys-dir, --ca-certificate, "
                    "--cas-dir)",
                )
            keys = read_trusted_keys(args.public_key or (), args.keys_dir) if has_keys else {}
            cas = read_trusted_cas(args.ca_certificate or (), args.cas_dir)
            signature_bytes = (
                _read_signature_file(args.signature_file, limits.max_bundle_bytes) if args.signature_file else None
            )
            ca_file = read_store_ca(args.store_ca_file) if args.store_ca_file else None
        except LoadError:
            invalidate(args.dest)  # fail closed here too: no earlier copy survives a failed load
            raise
        with store_ca(ca_file):
            result = load_model(
                uri=args.uri,
                digest=args.digest,
                dest=args.dest,
                trusted_keys=keys,
                trusted_cas=cas,
                signature_uri=args.signature_uri,
                signature_bytes=signature_bytes,
                workers=args.workers,
                timeout=args.timeout,
                retries=args.retries,
                limits=limits,
            )
    except (LoadError, StoreError, SignatureError) as exc:
        report_failure(exc.reason, exc.message)
        return 1
    except OSError as exc:
        report_failure("IOError", str(exc))
        return 1
    how = "re-verified in place" if result.reused else "fetched and verified"
    print(
        f"{how}: {result.digest} key={result.key_name} ({result.key_fingerprint}) files={result.files} "
        f"bytes={result.bytes} seconds={result.seconds:.2f} dest={result.model_dir}",
        flush=True,
    )
    return 0
