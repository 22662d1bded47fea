"""The `kubectl modelhub` plugin commands: thin wrappers over kubectl (annotate, patch, get).

    kubectl modelhub approve NAME... [-n NS] [--as U]   ask for approval (the webhook seals who asked, if RBAC
                                                        lets them approve and they did not create it)
    kubectl modelhub promote MODEL VERSION [-n NS]      make VERSION the stable version
    kubectl modelhub canary MODEL VERSION --weight W    run VERSION as a canary on W% of the replicas
    kubectl modelhub canary MODEL --stop                stop the canary
    kubectl modelhub rollback MODEL VERSION [-n NS]     make an older VERSION the stable version
    kubectl modelhub status [MODEL] [-n NS | -A]        versions and their conditions, as a compact table
    kubectl modelhub revoke [NAME] --reason R MATCH...   create a Revocation, wait for Enforced, show the teardown
        MATCH: --digest D, --key-fingerprint F, --public-key FILE, --model [NS/]NAME [--versions RANGE],
               --dataset-digest D (each repeatable; a version matching any is revoked)
    kubectl modelhub audit MODEL [-n NS] [-o json]      timeline: created, verified, approved, promoted, revoked,
                                                        fell back (Events and status history)

Every change goes through kubectl as the user, so the API server authenticates and authorises it and our
admission webhooks see who made it. VERSION is a SemVer (`spec.version`) or the name of a ModelVersion. The kubectl
binary is `$KUBECTL` when set, else `kubectl` on PATH; the namespace defaults to the kubeconfig context's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any

from modelhub import GROUP, VERSION
from modelhub.api.semver import Version, compare, parse
from modelhub.vocab import annotations as A
from modelhub.vocab import conditions as C

APPROVE_ANNOTATION = A.APPROVE
RECORD_ANNOTATION = A.APPROVAL


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


def kubectl(*args: str, namespace: str | None = None, input: str | None = None,  # noqa: A002
            warnings: list[str] | None = None) -> str:
    """Run kubectl; its stdout, or CommandError with its own error text. The API server's Warnings (kubectl
    prints them on stderr) go into `warnings` when given."""
    cmd = [kubectl_bin(), *args]
    if namespace:
        cmd += ["-n", namespace]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60, input=input)
    except FileNotFoundError:
        raise CommandError(f"cannot run {cmd[0]}: not found (set KUBECTL or put kubectl on PATH)") from None
    except subprocess.TimeoutExpired:
        raise CommandError(f"kubectl {' '.join(args)} did not answer within 60s") from None
    if proc.returncode != 0:
        text = proc.stderr.strip() or proc.stdout.strip() or f"kubectl exited {proc.returncode}"
        raise CommandError(text.removeprefix("error: ").removeprefix("Error from server ").strip(), proc.returncode)
    if warnings is not None:
        warnings.extend(line.removeprefix("Warning:").strip() for line in proc.stderr.splitlines()
                        if line.startswith("Warning:"))
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
    who = [*([f"--as={args.as_user}"] if args.as_user else []), *(f"--as-group={g}" for g in args.as_group or ())]
    for name in args.names:
        before = (_meta(get_json("modelversions.modelhub.dev", name, namespace=ns)).get("annotations") or {})
        warned: list[str] = []
        kubectl(
            "annotate", "modelversions.modelhub.dev", name, f"{APPROVE_ANNOTATION}=true", "--overwrite", *who,
            namespace=ns, warnings=warned,
        )
        obj = get_json("modelversions.modelhub.dev", name, namespace=ns)
        annotations = _meta(obj).get("annotations") or {}
        record = annotations.get(RECORD_ANNOTATION)
        if warned and (not record or record == before.get(RECORD_ANNOTATION)):
            # The webhook refused the approval (not authorized, the author, ...) and said why.
            raise CommandError(f"modelversion {name} was NOT approved: {warned[-1]}")
        if APPROVE_ANNOTATION in annotations or not record:
            # The request is still there: no webhook turned it into a sealed record, so nothing is approved.
            kubectl("annotate", "modelversions.modelhub.dev", name, f"{APPROVE_ANNOTATION}-", *who, namespace=ns)
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
            _short(v, C.SIGNATURE_VERIFIED),
            _short(v, C.APPROVED),
            _short(v, C.REVOKED, show_reason_when=C.TRUE),
            _short(v, C.READY),
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


# --- revoke -------------------------------------------------------------------------------------------------
REVOCATION_KIND = "revocations.modelhub.dev"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def fingerprint_of(path: str) -> str:
    """The key fingerprint (hex sha256 of the public key PEM, as `modelhub keygen` prints) of a PEM file."""
    from modelhub.domain.signing import SignatureError, key_fingerprint

    try:
        with open(path, "rb") as fh:
            pem = fh.read(64 * 1024 + 1)
    except OSError as exc:
        raise CommandError(f"cannot read public key {path}: {exc.strerror or exc}") from None
    if len(pem) > 64 * 1024:
        raise CommandError(f"{path} is larger than 64 KiB: not a public key PEM")
    try:
        return key_fingerprint(pem)
    except (SignatureError, ValueError) as exc:
        raise CommandError(f"{path} is not a usable public key: {getattr(exc, 'message', exc)}") from None


def model_selector(text: str, versions: str | None) -> dict[str, Any]:
    """`NS/NAME` (or `NAME`: the Model of that name in every namespace) and an optional version range."""
    namespace, _, name = text.rpartition("/")
    out: dict[str, Any] = {"name": name}
    if namespace and namespace != "*":
        out["namespace"] = namespace
    if versions:
        out["versions"] = versions
    return out


def revocation_manifest(args: argparse.Namespace) -> dict[str, Any]:
    """The Revocation the flags describe, validated like the API server would (one clear error otherwise)."""
    from modelhub.api.common import InvalidResource
    from modelhub.api.revocation import RevocationSpec
    from modelhub.api.types import parse_spec

    fingerprints = list(args.key_fingerprint or []) + [fingerprint_of(p) for p in args.public_key or []]
    if args.versions and not args.model:
        raise CommandError("--versions needs --model NS/NAME (the range applies to the models given)")
    match: dict[str, Any] = {}
    if args.digest:
        match["digests"] = list(dict.fromkeys(args.digest))
    if fingerprints:
        match["keyFingerprints"] = list(dict.fromkeys(f.lower() for f in fingerprints))
    if args.model:
        match["models"] = [model_selector(m, args.versions) for m in args.model]
    if args.dataset_digest:
        match["datasetDigests"] = list(dict.fromkeys(args.dataset_digest))
    if not match:
        raise CommandError(
            "nothing to revoke: give --digest, --key-fingerprint, --public-key, --model or --dataset-digest"
        )
    spec = {"reason": args.reason, "match": match}
    try:
        parse_spec(RevocationSpec, spec)
    except InvalidResource as exc:
        raise CommandError(f"invalid revocation: {exc}") from None
    name = args.name
    if not name:
        digest = hashlib.sha256(json.dumps(match, sort_keys=True).encode()).hexdigest()[:10]
        name = f"revoke-{digest}"
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Revocation", "metadata": {"name": name}, "spec": spec}


class Progress:
    """One status line on stderr while waiting: rewritten in place on a terminal, every 5 s otherwise."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.tty = sys.stderr.isatty()
        self.start = time.monotonic()
        self.last_print = 0.0
        self.shown = False

    def update(self, state: str) -> None:
        now = time.monotonic()
        line = f"waiting for {self.what}: {state} ({now - self.start:.0f}s)"
        if self.tty:
            sys.stderr.write("\r\033[K" + line[:200])
            sys.stderr.flush()
            self.shown = True
        elif now - self.last_print >= 5:
            print(line, file=sys.stderr)
            self.last_print = now

    def done(self) -> None:
        if self.tty and self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _enforced_state(obj: dict[str, Any]) -> str:
    c = _cond(obj, C.ENFORCED)
    if c is None:
        return "not yet seen by the operator"
    return f"Enforced={c.get('status')} ({c.get('reason')}: {c.get('message')})"


def wait_enforced(name: str, timeout: float, interval: float = 0.5) -> dict[str, Any]:
    progress = Progress(f"Revocation {name} to be enforced")
    deadline = time.monotonic() + timeout
    try:
        while True:
            obj = get_json(REVOCATION_KIND, name)
            c = _cond(obj, C.ENFORCED)
            gen = _meta(obj).get("generation")
            observed = (obj.get("status") or {}).get("observedGeneration")
            if c and c.get("status") == "True" and (gen is None or observed == gen):
                return obj
            if time.monotonic() >= deadline:
                raise CommandError(
                    f"Revocation {name} not enforced within {timeout:.0f}s: {_enforced_state(obj)}; "
                    f"see `kubectl get revocation {name}` and the operator's log"
                )
            progress.update(_enforced_state(obj))
            time.sleep(interval)
    finally:
        progress.done()


def enforcement_report(obj: dict[str, Any]) -> list[str]:
    st = obj.get("status") or {}
    name = _meta(obj).get("name")
    seconds = st.get("enforcementSeconds")
    head = f"revocation.modelhub.dev/{name} enforced"
    if seconds is not None:
        head += f" in {seconds}s"
    matched = st.get("matchedVersions", st.get("affectedTotal", 0)) or 0
    head += f": {matched} version{'s' if matched != 1 else ''} revoked, {st.get('workloadsTornDown', 0)} " \
            "workloads torn down"
    lines = [head]
    affected = st.get("affected") or []
    for a in affected:
        lines.append(f"  {a.get('namespace')}/{a.get('name')}  {a.get('model', '-')} {a.get('version', '-')}")
    total = st.get("affectedTotal") or len(affected)
    if total > len(affected):
        lines.append(f"  ... and {total - len(affected)} more")
    return lines


def cmd_revoke(args: argparse.Namespace) -> int:
    manifest = revocation_manifest(args)
    name = manifest["metadata"]["name"]
    if args.dry_run:
        print(json.dumps(manifest, indent=2))
        return 0
    try:
        kubectl("create", "-f", "-", "-o", "name", input=json.dumps(manifest))
        print(f"revocation.modelhub.dev/{name} created", file=sys.stderr if not args.no_wait else sys.stdout)
    except CommandError as exc:
        if "AlreadyExists" not in exc.message and "already exists" not in exc.message:
            raise
        existing = get_json(REVOCATION_KIND, name)
        if _spec(existing).get("match") != manifest["spec"]["match"]:
            raise CommandError(
                f"Revocation {name} already exists with another match; choose another NAME"
            ) from None
        print(f"revocation.modelhub.dev/{name} already exists", file=sys.stderr if not args.no_wait else sys.stdout)
    if args.no_wait:
        return 0
    obj = wait_enforced(name, args.timeout)
    print("\n".join(enforcement_report(obj)))
    return 0


# --- audit --------------------------------------------------------------------------------------------------
def _ts(text: Any) -> str:
    """A sortable RFC 3339 UTC time (second precision), or '' when absent."""
    if not text or not isinstance(text, str):
        return ""
    return text[:19] + "Z" if len(text) >= 19 else text


def _who(record: Any) -> str | None:
    if isinstance(record, dict):
        return record.get("approvedBy") or record.get("by")
    return None


def audit_entries(model: dict[str, Any], versions: list[dict[str, Any]], events: list[dict[str, Any]],
                  revocations: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The timeline of one Model (pure): entries {time, object, source, what}, oldest first.

    Sources: the objects' creation, the ModelVersions' status (verification, approval, revocation), the Model's
    status.history (promotions, rollbacks, fallbacks, canaries), Revocations covering its versions, and the
    events.k8s.io Events regarding the Model or its ModelVersions."""
    mname = _meta(model).get("name")
    ns = _meta(model).get("namespace")
    out: list[dict[str, str]] = []

    rank: dict[int, int] = {}  # within one second: creations, then status, history, enforcement, Events

    def add(time_: Any, obj: str, source: str, what: str, order: int = 1) -> None:
        out.append({"time": _ts(time_), "object": obj, "source": source, "what": _one_line(what)[:300]})
        rank[id(out[-1])] = order

    add(_meta(model).get("creationTimestamp"), f"model/{mname}", "created", "Model created", 0)
    names = set()
    for v in versions:
        vname = _meta(v).get("name")
        names.add(vname)
        obj = f"modelversion/{vname}"
        st = v.get("status") or {}
        add(_meta(v).get("creationTimestamp"), obj, "created", f"version {_spec(v).get('version')} created", 0)
        sv = _cond(v, C.SIGNATURE_VERIFIED)
        if sv:
            verified = st.get("verified") or {}
            if sv.get("status") == "True":
                what = f"signature verified: key {verified.get('keyName')} ({str(verified.get('keyFingerprint'))[:16]}…)"
            else:
                what = f"signature not verified ({sv.get('reason')}): {sv.get('message')}"
            add(verified.get("verifiedAt") or sv.get("lastTransitionTime"), obj, "status", what)
        approval = st.get("approval")
        if isinstance(approval, dict) and approval.get("approvedAt"):
            add(approval.get("approvedAt"), obj, "status", f"approved by {_who(approval)}")
        revocation = st.get("revocation")
        if isinstance(revocation, dict):
            add(revocation.get("at"), obj, "status",
                f"revoked by Revocation {revocation.get('name')}: {revocation.get('reason')}")
    for h in (model.get("status") or {}).get("history") or []:
        if not isinstance(h, dict):
            continue
        served = f"stable {h.get('stable') or 'none'}"
        if h.get("canary"):
            served += f", canary {h['canary']} at {h.get('canaryWeight', 0)}%"
        add(h.get("at"), f"model/{mname}", "history", f"{h.get('reason', 'Changed')}: {served}", 2)
    for r in revocations:
        st = r.get("status") or {}
        mine = [a for a in st.get("affected") or [] if a.get("namespace") == ns and a.get("name") in names]
        if not mine:
            continue
        rname = _meta(r).get("name")
        covered = ", ".join(f"{a.get('version') or a.get('name')}" for a in mine)
        add(_meta(r).get("creationTimestamp"), f"revocation/{rname}", "revocation",
            f"created: {_spec(r).get('reason')} (covers {covered})", 0)
        if st.get("enforcedAt"):
            add(st["enforcedAt"], f"revocation/{rname}", "revocation",
                f"enforced in {st.get('enforcementSeconds')}s: {st.get('workloadsTornDown', 0)} workloads torn down", 2)
    for e in events:
        regarding = e.get("regarding") or e.get("involvedObject") or {}
        kind, name = regarding.get("kind"), regarding.get("name")
        if not ((kind == "Model" and name == mname) or (kind == "ModelVersion" and name in names)):
            continue
        when = (e.get("eventTime") or e.get("deprecatedLastTimestamp") or e.get("lastTimestamp")
                or _meta(e).get("creationTimestamp"))
        note = e.get("note") or e.get("message") or ""
        add(when, f"{kind.lower()}/{name}", "event", f"{e.get('type', 'Normal')} {e.get('reason')}: {note}", 3)
    out.sort(key=lambda x: (x["time"], rank[id(x)]))
    return out


def cmd_audit(args: argparse.Namespace) -> int:
    ns = args.namespace
    model = get_model(args.model, ns)
    ns = _meta(model).get("namespace") or ns
    versions = versions_of(args.model, ns)
    events = get_json("events.events.k8s.io", namespace=ns).get("items") or []
    try:
        revocations = get_json(REVOCATION_KIND).get("items") or []
    except CommandError:
        revocations = []  # no right to list the cluster's Revocations: the versions' status still shows them
    entries = audit_entries(model, versions, events, revocations)
    if args.output == "json":
        print(json.dumps(entries, indent=2))
        return 0
    rows = [["TIME", "OBJECT", "SOURCE", "WHAT"]] + [[e["time"] or "-", e["object"], e["source"], e["what"]]
                                                     for e in entries]
    print(_table(rows))
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
            print(f"error: {_one_line(exc.message)}", file=sys.stderr)
            return exc.code or 1
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130
        except (OSError, ValueError) as exc:  # anything else a command meets: still one line, no traceback
            print(f"error: {type(exc).__name__}: {_one_line(str(exc))}", file=sys.stderr)
            return 1

    return wrapped


def register(subparsers: Any) -> None:
    def ns_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")

    p = subparsers.add_parser("approve", help="approve ModelVersions (sealed by the admission webhook as you)")
    p.add_argument("names", nargs="+", metavar="NAME", help="ModelVersion name(s)")
    ns_flag(p)
    p.add_argument("--as", dest="as_user", metavar="USER", help="approve as USER (kubectl impersonation)")
    p.add_argument("--as-group", action="append", metavar="GROUP", help="impersonated group (repeatable)")
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

    p = subparsers.add_parser(
        "revoke", help="revoke artifacts cluster-wide (a Revocation), wait until enforced, show the teardown"
    )
    p.add_argument("name", metavar="NAME", nargs="?", help="the Revocation's name (default: from the match)")
    p.add_argument("--reason", required=True, help="why (shown on every revoked ModelVersion)")
    p.add_argument("--digest", action="append", metavar="sha256:HEX", help="an artifact digest")
    p.add_argument("--key-fingerprint", action="append", metavar="HEX", help="a signing key's fingerprint")
    p.add_argument("--public-key", action="append", metavar="FILE", help="a signing key's public PEM file")
    p.add_argument("--model", action="append", metavar="[NS/]NAME", help="a Model (every namespace without NS/)")
    p.add_argument("--versions", metavar="RANGE", help="version range of the --model(s), e.g. '>=1.2.0,<1.3.1'")
    p.add_argument("--dataset-digest", action="append", metavar="sha256:HEX", help="a training dataset digest")
    p.add_argument("--no-wait", action="store_true", help="create the Revocation and return")
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait for Enforced (default 300)")
    p.add_argument("--dry-run", action="store_true", help="print the Revocation, create nothing")
    p.set_defaults(func=_run(cmd_revoke))

    p = subparsers.add_parser("audit", help="timeline of a Model: who approved, what was promoted, revoked, when")
    p.add_argument("model", metavar="MODEL")
    ns_flag(p)
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.set_defaults(func=_run(cmd_audit))
