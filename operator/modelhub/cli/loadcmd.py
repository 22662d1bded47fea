"""`modelhub load`: the init container of every inference pod (fetch, verify against the signed manifest, fail
closed). Exit 0 only when DEST/model holds exactly the signed files; otherwise print
``error: <Reason>: <message>`` to stderr and exit 1."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

EXAMPLE = """\
example:
  modelhub load --uri s3://models/sentiment/1.2.0 --digest sha256:<hex> --dest /models \\
      --keys-dir /etc/modelhub/keys

The signature bundle defaults to model.sig inside the artifact directory. URIs: file:///abs/dir,
pvc://<claim>/<dir> (mounted at $MODELHUB_PVC_ROOT/<claim>, default /mnt/pvc), https://host/dir,
s3://bucket/prefix (AWS_* variables; AWS_ENDPOINT_URL for S3-compatible servers). Plain http:// is refused
unless MODELHUB_ALLOW_HTTP=1.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "load",
        help="fetch a signed model artifact and verify every file before serving (init container)",
        description=__doc__,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--uri", required=True, help="artifact directory URI (file, pvc, https, s3)")
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
    parser.add_argument("--workers", type=int, default=8, help="parallel downloads (default 8)")
    parser.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds (default 60)")
    parser.add_argument(
        "--retries", type=int, default=2, help="retries per file on transient errors (default 2)"
    )
    parser.set_defaults(func=run)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> int:
    # Kubernetes stops an init container with SIGTERM: unwind (the loader removes its staging directory and
    # anything that could look verified) instead of dying on the spot.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _run(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _read_signature_file(path: str) -> bytes:
    from modelhub.adapters.stores import DEFAULT_MAX_BUNDLE_BYTES
    from modelhub.loader.load import LoadError

    try:
        with open(path, "rb") as fh:
            data = fh.read(DEFAULT_MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise LoadError("NotFound", f"signature bundle {path}: {exc.strerror or exc}") from None
    if len(data) > DEFAULT_MAX_BUNDLE_BYTES:
        raise LoadError(
            "TooLarge", f"signature bundle {path} is larger than {DEFAULT_MAX_BUNDLE_BYTES} bytes"
        )
    return data


def _run(args: argparse.Namespace) -> int:
    from modelhub.adapters.stores import StoreError
    from modelhub.domain.signing import SignatureError
    from modelhub.loader.load import LoadError, invalidate, load_model, read_trusted_cas, read_trusted_keys

    try:
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
            signature_bytes = _read_signature_file(args.signature_file) if args.signature_file else None
        except LoadError:
            invalidate(args.dest)  # fail closed here too: no earlier copy survives a failed load
            raise
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
        )
    except (LoadError, StoreError, SignatureError) as exc:
        print(f"error: {exc.reason}: {exc.message}", file=sys.stderr, flush=True)
        return 1
    except OSError as exc:
        print(f"error: IOError: {exc}", file=sys.stderr, flush=True)
        return 1
    how = "re-verified in place" if result.reused else "fetched and verified"
    print(
        f"{how}: {result.digest} key={result.key_name} ({result.key_fingerprint}) files={result.files} "
        f"bytes={result.bytes} seconds={result.seconds:.2f} dest={result.model_dir}",
        flush=True,
    )
    return 0
