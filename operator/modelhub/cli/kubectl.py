"""The `kubectl modelhub` plugin commands: thin wrappers over kubectl (annotate, patch, get).

    kubectl modelhub approve NAME... [-n NS]            ask for approval (the webhook seals who asked)
    kubectl modelhub promote MODEL VERSION [-n NS]      make VERSION the stable version
    kubectl modelhub canary MODEL VERSION --weight W    run VERSION as a canary on W% of the replicas
    kubectl modelhub canary MODEL --stop                stop the canary
    kubectl modelhub rollback MODEL VERSION [-n NS]     make an older VERSION the stable version
    kubectl modelhub status [MODEL] [-n NS | -A]        versions and their conditions, as a compact table

Every change goes through kubectl as the user, so the API server authenticates and authorises it and our
admission webhooks see who made it. VERSION is a SemVer (`spec.version`) or the name of a ModelVersion. The kubectl
binary is `$KUBECTL` when set, else `kubectl` on PATH; the namespace defaults to the kubeconfig context's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import shutil
import subprocess
import sys
from typing import Any

from modelhub.api.semver import Version, compare, parse

APPROVE_ANNOTATION = "modelhub.dev/approve"
RECORD_ANNOTATION = "modelhub.dev/approval"


class CommandError(Exception):
    """A failure to report to the user as `error: <message>` with exit code `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# --- kubectl ------------------------------------------------------------------------------------------------
def kubectl_bin() -> str:
    explicit = os.environ.get("KUBECTL")
    if explicit:
        return explicit
    found = shutil.which("kubectl")
    if not found:
        raise CommandError("kubectl not found: put it on PATH or set KUBECTL to its path")
    return found


def kubectl(*args: str, namespace: str | None = None) -> str:
    """Run kubectl; its stdout, or CommandError with its own error text."""
    cmd = [kubectl_bin(), *args]
    if namespace:
        cmd += ["-n", namespace]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    except FileNotFoundError:
        raise CommandError(f"cannot run {cmd[0]}: not found (set KUBECTL or put kubectl on PATH)") from None
    except subprocess.TimeoutExpired:
        raise CommandError(f"kubectl {' '.join(args)} did not answer within 60s") from None
    if proc.returncode != 0:
        text = proc.stderr.strip() or proc.stdout.strip() or f"kubectl exited {proc.returncode}"
        raise CommandError(text.removeprefix("error: ").removeprefix("Error from server ").strip(), proc.returncode)
    return proc.stdout


def get_json(*args: str, namespace: str | None = None) -> dict[str, Any]:
    return json.loads(kubectl("get", *args, "-o", "json", namespace=namespace))


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("spec") or {}


def _where(namespace: str | None) -> str:
    return f" in namespace {namespace}" if namespace else ""


# --- versions -----------------------------------------------------------------------------------------------
def _parse(text: Any) -> Version | None:
    try:
        return parse(str(text))
    except (ValueError, TypeError):
        return None


def _older(a: str, b: str) -> bool | None:
    """Whether SemVer `a` precedes `b` (None when either is not a SemVer)."""
    va, vb = _parse(a), _parse(b)
    if va is None or vb is None:
        return None
    return compare(va, vb) < 0


def _by_version(a: dict[str, Any], b: dict[str, Any]) -> int:
    """Namespace, model, then SemVer precedence (non-SemVer last, by text), then name."""
    ka = (_meta(a).get("namespace") or "", str(_spec(a).get("model") or ""))
    kb = (_meta(b).get("namespace") or "", str(_spec(b).get("model") or ""))
    if ka != kb:
        return -1 if ka < kb else 1
    va, vb = _parse(_spec(a).get("version")), _parse(_spec(b).get("version"))
    if va is not None and vb is not None and compare(va, vb):
        return compare(va, vb)
    if (va is None) != (vb is None):
        return 1 if va is None else -1
    ta = (str(_spec(a).get("version")), _meta(a).get("name") or "")
    tb = (str(_spec(b).get("version")), _meta(b).get("name") or "")
    return (ta > tb) - (ta < tb)


def get_model(model: str, namespace: str | None) -> dict[str, Any]:
    try:
        return get_json("models.modelhub.dev", model, namespace=namespace)
    except CommandError as exc:
        if "NotFound" in exc.message or "not found" in exc.message:
            raise CommandError(f"Model {model} not found{_where(namespace)}") from None
        raise


def versions_of(model: str, namespace: str | None) -> list[dict[str, Any]]:
    items = get_json("modelversions.modelhub.dev", namespace=namespace).get("items") or []
    return [v for v in items if _spec(v).get("model") == model]


def resolve_version(model: str, wanted: str, namespace: str | None) -> str:
    """The SemVer that `wanted` (a SemVer or a ModelVersion name) names among the versions of `model`."""
    versions = versions_of(model, namespace)
    for v in versions:
        if _spec(v).get("version") == wanted:
            return wanted
    for v in versions:
        if _meta(v).get("name") == wanted:
            return str(_spec(v).get("version"))
    known = ", ".join(sorted({str(_spec(v).get("version")) for v in versions})) or "none"
    raise CommandError(
        f"no ModelVersion of model {model}{_where(namespace)} has version (or name) {wanted}; known versions: {known}"
    )


def _patch_promotion(model: str, namespace: str | None, promotion: dict[str, Any]) -> None:
    body = json.dumps({"spec": {"promotion": promotion}})
    kubectl("patch", "models.modelhub.dev", model, "--type=merge", "-p", body, namespace=namespace)


# --- commands -----------------------------------------------------------------------------------------------
def cmd_approve(args: argparse.Namespace) -> int:
    ns = args.namespace
    for name in args.names:
        kubectl(
            "annotate", "modelversions.modelhub.dev", name, f"{APPROVE_ANNOTATION}=true", "--overwrite", namespace=ns
        )
        obj = get_json("modelversions.modelhub.dev", name, namespace=ns)
        annotations = _meta(obj).get("annotations") or {}
        record = annotations.get(RECORD_ANNOTATION)
        if APPROVE_ANNOTATION in annotations or not record:
            # The request is still there: no webhook turned it into a sealed record, so nothing is approved.
            kubectl("annotate", "modelversions.modelhub.dev", name, f"{APPROVE_ANNOTATION}-", namespace=ns)
            raise CommandError(
                f"modelversion {name} was NOT approved: the modelhub admission webhook did not seal the request "
                "(is the operator running with its webhooks enabled?)"
            )
        try:
            by = json.loads(record).get("by", "?")
        except ValueError:
            by = "?"
        print(f"modelversion.modelhub.dev/{name} approved by {by}")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    ns = args.namespace
    model = get_model(args.model, ns)
    version = resolve_version(args.model, args.version, ns)
    promotion: dict[str, Any] = {"stable": version}
    canary = (_spec(model).get("promotion") or {}).get("canary") or {}
    if canary.get("version") == version:
        promotion["canary"] = None  # the canary becomes the stable: it is no longer a canary
    _patch_promotion(args.model, ns, promotion)
    was = (_spec(model).get("promotion") or {}).get("stable")
    print(f"model.modelhub.dev/{args.model} stable {version}" + (f" (was {was})" if was and was != version else ""))
    return 0


def cmd_canary(args: argparse.Namespace) -> int:
    ns = args.namespace
    model = get_model(args.model, ns)
    if args.stop:
        if args.version:
            raise CommandError("give either VERSION --weight W, or --stop")
        _patch_promotion(args.model, ns, {"canary": None})
        print(f"model.modelhub.dev/{args.model} canary stopped")
        return 0
    if not args.version or args.weight is None:
        raise CommandError("canary needs MODEL VERSION --weight W (0-100), or MODEL --stop")
    version = resolve_version(args.model, args.version, ns)
    stable = (_spec(model).get("promotion") or {}).get("stable")
    if version == stable:
        raise CommandError(f"{version} is the stable version of {args.model}; a canary must be another version")
    _patch_promotion(args.model, ns, {"canary": {"version": version, "weight": args.weight}})
    print(f"model.modelhub.dev/{args.model} canary {version} at {args.weight}%")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    ns = args.namespace
    model = get_model(args.model, ns)
    version = resolve_version(args.model, args.version, ns)
    promotion = _spec(model).get("promotion") or {}
    current = promotion.get("stable")
    if current == version:
        raise CommandError(f"{version} already is the stable version of {args.model}")
    if current and _older(version, current) is False:
        raise CommandError(
            f"{version} is not older than the stable version {current}: use `kubectl modelhub promote` to roll forward"
        )
    patch: dict[str, Any] = {"stable": version}
    if (promotion.get("canary") or {}).get("version") == version:
        patch["canary"] = None
    _patch_promotion(args.model, ns, patch)
    print(f"model.modelhub.dev/{args.model} rolled back to {version}" + (f" (was {current})" if current else ""))
    return 0


def _cond(obj: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def _short(obj: dict[str, Any], ctype: str, show_reason_when: str = "False") -> str:
    c = _cond(obj, ctype)
    if c is None:
        return "-"
    status = str(c.get("status"))
    if status == show_reason_when and c.get("reason"):
        return f"{status}({c['reason']})"
    return status


def _age(timestamp: str | None) -> str:
    if not timestamp:
        return "-"
    try:
        then = dt.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return "-"
    secs = int((dt.datetime.now(dt.UTC) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit}"
    return f"{max(secs, 0)}s"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def status_rows(models: list[dict[str, Any]], versions: list[dict[str, Any]], all_ns: bool) -> list[list[str]]:
    """One row per ModelVersion: where it stands in its Model's rollout and its conditions."""
    roles: dict[tuple[str, str, str], str] = {}
    for m in models:
        st = m.get("status") or {}
        key = (_meta(m).get("namespace") or "", _meta(m).get("name") or "")
        if st.get("stableVersion"):
            roles[(*key, st["stableVersion"])] = "stable"
        if st.get("canaryVersion"):
            roles[(*key, st["canaryVersion"])] = f"canary {st.get('canaryWeight', 0)}%"
    header = ["MODEL", "VERSION", "NAME", "SERVING", "VERIFIED", "APPROVED", "REVOKED", "READY", "REPLICAS", "AGE"]
    if all_ns:
        header.insert(0, "NAMESPACE")
    rows = [header]

    for v in sorted(versions, key=functools.cmp_to_key(_by_version)):
        ns = _meta(v).get("namespace") or ""
        spec = _spec(v)
        workload = (v.get("status") or {}).get("workload") or {}
        replicas = (
            f"{workload.get('readyReplicas', 0)}/{workload.get('replicas', 0)}" if workload.get("deployment") else "-"
        )
        row = [
            str(spec.get("model", "")),
            str(spec.get("version", "")),
            str(_meta(v).get("name", "")),
            roles.get((ns, str(spec.get("model", "")), str(spec.get("version", ""))), "-"),
            _short(v, "SignatureVerified"),
            _short(v, "Approved"),
            _short(v, "Revoked", show_reason_when="True"),
            _short(v, "Ready"),
            replicas,
            _age(_meta(v).get("creationTimestamp")),
        ]
        if all_ns:
            row.insert(0, ns)
        rows.append(row)
    return rows


def cmd_status(args: argparse.Namespace) -> int:
    ns = None if args.all_namespaces else args.namespace
    scope = ["-A"] if args.all_namespaces else []
    if args.model:
        models = [get_model(args.model, ns)]
    else:
        models = get_json("models.modelhub.dev", *scope, namespace=ns).get("items") or []
    versions = get_json("modelversions.modelhub.dev", *scope, namespace=ns).get("items") or []
    if args.model:
        versions = [v for v in versions if _spec(v).get("model") == args.model]
    if not versions:
        what = f"model {args.model}" if args.model else "any model"
        print(f"No ModelVersions of {what}{_where(ns)}.", file=sys.stderr)
        return 0
    print(_table(status_rows(models, versions, args.all_namespaces)))
    return 0


# --- registration -------------------------------------------------------------------------------------------
def _weight(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"weight must be a whole number 0-100, not {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"weight must be within 0-100, not {value}")
    return value


def _run(fn: Any) -> Any:
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return int(fn(args) or 0)
        except CommandError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return exc.code or 1

    return wrapped


def register(subparsers: Any) -> None:
    def ns_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")

    p = subparsers.add_parser("approve", help="approve ModelVersions (sealed by the admission webhook as you)")
    p.add_argument("names", nargs="+", metavar="NAME", help="ModelVersion name(s)")
    ns_flag(p)
    p.set_defaults(func=_run(cmd_approve))

    p = subparsers.add_parser("promote", help="make a version the stable version of its Model")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("version", metavar="VERSION", help="SemVer (spec.version) or ModelVersion name")
    ns_flag(p)
    p.set_defaults(func=_run(cmd_promote))

    p = subparsers.add_parser("canary", help="run a version as a canary on a share of the replicas")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("version", metavar="VERSION", nargs="?", help="SemVer (spec.version) or ModelVersion name")
    p.add_argument("--weight", type=_weight, help="percentage of the replicas, 0-100")
    p.add_argument("--stop", action="store_true", help="stop the canary")
    ns_flag(p)
    p.set_defaults(func=_run(cmd_canary))

    p = subparsers.add_parser("rollback", help="make an older version the stable version")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("version", metavar="VERSION", help="SemVer (spec.version) or ModelVersion name")
    ns_flag(p)
    p.set_defaults(func=_run(cmd_rollback))

    p = subparsers.add_parser("status", help="versions of a Model (or all) with their conditions")
    p.add_argument("model", metavar="MODEL", nargs="?")
    ns_flag(p)
    p.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    p.set_defaults(func=_run(cmd_status))
