"""`modelhub keygen | sign | verify | digest | fingerprint`: OMS model signatures, compatible with `model_signing`
1.1.x, key-based (`--private-key` / `--public-key`) or certificate-based (`--signing-certificate` and
`--certificate-chain` when signing, `--certificate-chain` with the trusted CA certificates when verifying).

As with model_signing's CLI, ``--ignore-paths`` are taken relative to the current directory (so the same
command line means the same thing with both tools) and must lie inside MODEL_DIR; the signature file is
excluded automatically when it lives inside MODEL_DIR, and so are the git paths (.git, .gitattributes,
.github, .gitignore) unless ``--no-ignore-git-paths``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from modelhub.domain import signing

_MAX_SIGNATURE_FILE = 256 * 1024 * 1024
_MAX_KEY_FILE = 64 * 1024
_MAX_CERT_FILE = 1024 * 1024


class _Refused(Exception):
    """A command-line problem reported like a SignatureError."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("keygen", help="generate an elliptic-curve signing key pair (KEY and KEY.pub)")
    p.add_argument("--out", required=True, metavar="KEY", help="private key file to write (mode 0600); KEY.pub beside it")
    p.add_argument("--curve", default="p256", choices=sorted(signing.CURVES), help="curve (default p256)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.set_defaults(func=_keygen)

    p = subparsers.add_parser("sign", help="sign a model directory (OMS v1.0 bundle, as model_signing writes it)")
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("--private-key", required=True, metavar="KEY", help="PEM private key (P-256, P-384 or P-521)")
    p.add_argument("--signature", required=True, metavar="SIG", help="where to write the bundle (e.g. MODEL_DIR/model.sig)")
    p.add_argument(
        "--signing-certificate", metavar="CERT", default=None,
        help="sign with this PEM certificate of the private key (OMS certificate method) instead of the bare key",
    )
    p.add_argument(
        "--certificate-chain", nargs="+", action="extend", default=[], metavar="CHAIN", dest="certificate_chain",
        help="PEM files with the intermediates (and possibly the root) to put in the bundle after the signing "
        "certificate, in order",
    )
    _hashing_options(p)
    p.set_defaults(func=_sign)

    p = subparsers.add_parser(
        "verify", help="verify a model directory against a signature and trusted public keys or CA certificates"
    )
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("--signature", required=True, metavar="SIG", help="the signature bundle")
    p.add_argument(
        "--public-key", action="append", default=[], metavar="PUB", dest="public_keys",
        help="a trusted PEM public key (repeat for several)",
    )
    p.add_argument(
        "--certificate-chain", nargs="+", action="extend", default=[], metavar="CA", dest="certificate_chain",
        help="PEM files of trusted CA certificates, for certificate signatures (every certificate in them is a "
        "trust anchor)",
    )
    p.add_argument("--workers", type=_positive_int, default=None, help="hashing threads (default: one per CPU)")
    p.set_defaults(func=_verify)

    p = subparsers.add_parser("digest", help="print the subject digest (sha256:<hex>) to pin in a ModelVersion")
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument(
        "--signature", metavar="SIG", default=None,
        help="a signature file to leave out when it lives inside MODEL_DIR (as `sign` does); default "
        "MODEL_DIR/model.sig, where the operator looks for the bundle ('' to leave nothing out)",
    )
    _hashing_options(p)
    p.set_defaults(func=_digest)

    p = subparsers.add_parser(
        "fingerprint",
        help="print the sha256 fingerprints a Revocation matches: of each certificate (DER) or public key in PEM files",
    )
    p.add_argument("files", nargs="+", metavar="PEM")
    p.set_defaults(func=_fingerprint)


def _hashing_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ignore-paths", nargs="+", action="extend", default=[], metavar="P",
        help="paths to leave out (relative to the current directory, as with model_signing; inside MODEL_DIR)",
    )
    p.add_argument("--shard-size", type=_positive_int, default=None, metavar="N", help="hash in shards of N bytes")
    p.add_argument("--hash", default="sha256", choices=["sha256", "blake2b", "blake2"], help="hash algorithm")
    p.add_argument("--allow-symlinks", action="store_true", help="follow symbolic links to files")
    p.add_argument(
        "--no-ignore-git-paths", dest="ignore_git_paths", action="store_false",
        help="include .git, .gitattributes, .github, .gitignore",
    )
    p.add_argument("--workers", type=_positive_int, default=None, help="hashing threads (default: one per CPU)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _fail(reason: str, message: str) -> int:
    print(f"error: {reason}: {message}", file=sys.stderr)
    return 1


def _run(fn, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    try:
        return fn(args)
    except (signing.SignatureError, _Refused) as exc:
        return _fail(exc.reason, exc.message)


def _read(path: str, what: str, limit: int) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        reason = "MissingFile" if isinstance(exc, FileNotFoundError) else "ReadError"
        raise _Refused(reason, f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise _Refused("ReadError", f"{what} {path} is larger than {limit} bytes")
    return data


def _inside(model_dir: str, path: str) -> str | None:
    """`path` (relative to the current directory) as a path relative to MODEL_DIR, or None if outside."""
    root = Path(model_dir).resolve()
    candidate = Path(path)
    candidate = (candidate if candidate.is_absolute() else Path.cwd() / candidate).resolve()
    try:
        rel = candidate.relative_to(root)
    except ValueError:
        return None
    return None if str(rel) in ("", ".") else rel.as_posix()


def _ignore_list(args: argparse.Namespace) -> list[str]:
    ignores: list[str] = []
    for p in args.ignore_paths:
        rel = _inside(args.model_dir, p)
        if rel is None:
            raise _Refused(
                "UnsafePath",
                f"--ignore-paths {p!r} is not inside {args.model_dir} (ignore paths are relative to the current "
                "directory, as with model_signing)",
            )
        ignores.append(rel)
    if getattr(args, "signature", None):
        rel = _inside(args.model_dir, args.signature)
        if rel is not None:
            ignores.append(rel)
    return ignores


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


# ----------------------------------------------------------------------------------------------- keygen


def _keygen(args: argparse.Namespace) -> int:
    return _run(_do_keygen, args)


def _write_new(path: str, data: bytes, mode: int, force: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise _Refused("WriteFailed", f"{path} already exists (use --force to overwrite)") from None
    except OSError as exc:
        raise _Refused("WriteFailed", f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
    finally:
        os.close(fd)


def _do_keygen(args: argparse.Namespace) -> int:
    private_pem, public_pem = signing.generate_private_key(args.curve)
    pub_path = f"{args.out}.pub"
    if not args.force:
        for path in (args.out, pub_path):
            if os.path.lexists(path):
                raise _Refused("WriteFailed", f"{path} already exists (use --force to overwrite)")
    _write_new(args.out, private_pem, 0o600, args.force)
    _write_new(pub_path, public_pem, 0o644, args.force)
    print(f"wrote {args.out} (private, {args.curve}) and {pub_path}; fingerprint {signing.key_fingerprint(public_pem)}")
    return 0


# ------------------------------------------------------------------------------------------------- sign


def _sign(args: argparse.Namespace) -> int:
    return _run(_do_sign, args)


def _do_sign(args: argparse.Namespace) -> int:
    key = _read(args.private_key, "private key", _MAX_KEY_FILE)
    certificate = None
    if args.signing_certificate:
        certificate = _read(args.signing_certificate, "signing certificate", _MAX_CERT_FILE)
    elif args.certificate_chain:
        raise _Refused("InvalidCertificate", "--certificate-chain needs --signing-certificate")
    chain = [_read(path, "certificate chain", _MAX_CERT_FILE) for path in args.certificate_chain]
    t0 = time.monotonic()
    bundle = signing.sign_model_dir(
        args.model_dir,
        key,
        signing_certificate=certificate,
        certificate_chain=chain,
        hash_algorithm=args.hash,
        shard_size=args.shard_size,
        ignore_paths=_ignore_list(args),
        allow_symlinks=args.allow_symlinks,
        workers=args.workers,
        ignore_git_paths=args.ignore_git_paths,
    )
    tmp = f"{args.signature}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(bundle)
        os.replace(tmp, args.signature)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise _Refused("WriteFailed", f"cannot write {args.signature}: {exc.strerror or exc}") from None
    # Report what a verifier will see (and prove the bundle round-trips: for a certificate, with the signing
    # certificate itself as the anchor, which also checks that it may sign).
    if certificate is None:
        public = signing.verify_bundle(bundle, {"signer": signing.public_key_pem(key)})
        who = f"key fingerprint {public.key_fingerprint}"
    else:
        public = signing.verify_bundle(bundle, None, trusted_cas={"the signing certificate": certificate})
        assert public.certificate is not None
        extra = sum(len(signing.parse_pem_certificates(c, "the certificate chain")) for c in chain)
        who = (
            f"certificate {public.certificate.subject!r} (fingerprint {public.certificate.fingerprint}) and {extra} "
            "chain certificates"
        )
    print(
        f"signed {public.file_count} files of {args.model_dir} ({public.serialization}, {public.hash_algorithm}) "
        f"in {time.monotonic() - t0:.2f}s: {public.subject_digest}, {who}; wrote {args.signature}"
    )
    return 0


# ----------------------------------------------------------------------------------------------- verify


def _verify(args: argparse.Namespace) -> int:
    return _run(_do_verify, args)


def _do_verify(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    if not args.public_keys and not args.certificate_chain:
        raise _Refused(
            "UntrustedKey", "give the trusted --public-key (key signatures) or --certificate-chain (certificate signatures)"
        )
    bundle = _read(args.signature, "signature", _MAX_SIGNATURE_FILE)
    keys: dict[str, bytes] = {}
    for path in args.public_keys:
        keys[path] = _read(path, "public key", _MAX_KEY_FILE)
    cas = {path: _read(path, "CA certificates", _MAX_CERT_FILE) for path in args.certificate_chain}
    verified = signing.verify_bundle(bundle, keys, trusted_cas=cas)
    extra = []
    rel = _inside(args.model_dir, args.signature)
    if rel is not None:
        extra.append(rel)
    signing.verify_model_dir(args.model_dir, verified, workers=args.workers, extra_ignore_paths=extra)
    total = _total_size(args.model_dir, verified)
    print(
        f"OK: {verified.file_count} files ({_human(total)}, {verified.serialization}, {verified.hash_algorithm}) "
        f"match {verified.subject_digest}, signed by {verified.signer} in {time.monotonic() - t0:.2f}s"
    )
    return 0


def _total_size(model_dir: str, verified: signing.VerifiedSignature) -> int:
    if verified.total_size is not None:
        return verified.total_size
    total = 0
    for name in verified.files:
        try:
            total += os.stat(os.path.join(model_dir, *name.split("/"))).st_size
        except OSError:
            pass
    return total


# ----------------------------------------------------------------------------------------------- digest


def _digest(args: argparse.Namespace) -> int:
    return _run(_do_digest, args)


def _do_digest(args: argparse.Namespace) -> int:
    if args.signature is None:
        args.signature = os.path.join(args.model_dir, "model.sig")
    resources = signing.compute_manifest(
        args.model_dir,
        hash_algorithm=args.hash,
        shard_size=args.shard_size,
        ignore_paths=_ignore_list(args),
        allow_symlinks=args.allow_symlinks,
        workers=args.workers,
        ignore_git_paths=args.ignore_git_paths,
    )
    if not resources:
        raise _Refused("EmptyModel", f"no file to hash in {args.model_dir}")
    print(signing.subject_digest(resources))
    return 0


# ------------------------------------------------------------------------------------------ fingerprint


def _fingerprint(args: argparse.Namespace) -> int:
    return _run(_do_fingerprint, args)


def _do_fingerprint(args: argparse.Namespace) -> int:
    for path in args.files:
        data = _read(path, "PEM file", _MAX_CERT_FILE)
        if b"-----BEGIN CERTIFICATE-----" in data:
            for cert, fp in zip(signing.parse_pem_certificates(data, path), signing.certificate_fingerprints(data),
                                strict=True):
                print(f"{fp}  {path}  certificate {cert.subject.rfc4514_string()}")
        else:
            print(f"{signing.key_fingerprint(data)}  {path}  public key")
    return 0
