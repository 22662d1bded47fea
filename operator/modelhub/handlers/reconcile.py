"""Reconcilers: gather the inputs of one object, ask the domain what it should look like, write the difference.

Every reconcile is level-based: it reads the current cached state, so it may run any number of times, after any
crash, and converge to the same result.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from modelhub.adapters import failpoints, metrics, stores
from modelhub.adapters.trust import BundleNotFound, load_bundle, load_keyring
from modelhub.api import types as api
from modelhub.api.conditions import set_condition
from modelhub.domain import approval as approval_domain
from modelhub.domain import models as model_domain
from modelhub.domain import revocation as rdomain
from modelhub.domain import versions as vdomain
from modelhub.domain.placement import PlacementError
from modelhub.domain.rollout import plan_rollout
from modelhub.domain.signing import SignatureError, verify_bundle
from modelhub.domain.workloads import (
    ANN_DIGEST,
    ANN_VERSION_NAME,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_MODEL,
    WorkloadError,
    build_deployment,
    build_service,
)
from modelhub.handlers.runtime import Key
from modelhub.handlers.state import STATE

log = logging.getLogger(__name__)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def versions_of(namespace: str, model: str) -> list[dict[str, Any]]:
    return STATE.cache.group("ModelVersion", (namespace, model))


def live_revocations() -> list[dict[str, Any]]:
    return [r for r in STATE.cache.all("Revocation") if not meta(r).get("deletionTimestamp")]


def covering(obj: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """The Revocation covering a ModelVersion (by its spec and verified key), if any."""
    found = rdomain.first_covering(live_revocations(), rdomain.VersionFacts.from_object(obj))
    return (dict(found[0]), found[1]) if found else None


def deployments_of_model(namespace: str, model: str) -> list[dict[str, Any]]:
    return STATE.cache.group("Deployment", (namespace, model))


async def kube_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


_EVENT_TASKS: set[asyncio.Task[None]] = set()
_EVENT_SLOTS = asyncio.Semaphore(8)  # Events trickle out; they never crowd the API server


async def emit(obj: dict[str, Any], events: list[tuple[str, str, str]], action: str) -> None:
    """Record Events in the background: they are best effort and must not slow a reconcile down."""
    if not events:
        return

    async def post() -> None:
        async with _EVENT_SLOTS:
            for type_, reason, message in events:
                if STATE.queue is not None:
                    await STATE.queue.open.wait()  # not while a teardown runs
                await kube_call(STATE.kube.event, obj, type_=type_, reason=reason, message=message, action=action)

    task = asyncio.create_task(post())
    _EVENT_TASKS.add(task)
    task.add_done_callback(_EVENT_TASKS.discard)


# --- event routing (called by the kopf watch handlers) -----------------------------------------------------
def on_model_event(event_type: str | None, obj: dict[str, Any]) -> None:
    if event_type != "DELETED":
        STATE.enqueue("Model", meta(obj)["namespace"], meta(obj)["name"])


def on_version_event(event_type: str | None, obj: dict[str, Any]) -> None:
    m = meta(obj)
    if event_type == "DELETED":
        STATE.index.remove((m["namespace"], m["name"]))
    else:
        STATE.index.upsert(rdomain.VersionFacts.from_object(obj))
        STATE.enqueue("ModelVersion", m["namespace"], m["name"])
    model = (obj.get("spec") or {}).get("model")
    if model:
        STATE.enqueue("Model", m["namespace"], model)


def on_revocation_event(event_type: str | None, obj: dict[str, Any]) -> None:
    name = meta(obj)["name"]
    if event_type == "DELETED" or meta(obj).get("deletionTimestamp"):
        # Lifting a Revocation: re-check the versions it covered, so they may verify and roll out again.
        for ns, mv in STATE.index.match((obj.get("spec") or {}).get("match") or {}):
            STATE.enqueue("ModelVersion", ns, mv)
            v = STATE.cache.get("ModelVersion", ns, mv)
            if v:
                STATE.enqueue("Model", ns, (v.get("spec") or {}).get("model", ""))
        return
    STATE.enqueue("Revocation", "", name)


def on_deployment_event(event_type: str | None, obj: dict[str, Any]) -> None:
    m = meta(obj)
    ns = m["namespace"]
    labels = m.get("labels") or {}
    annotations = m.get("annotations") or {}
    torn_down = STATE.tearing.get((ns, m["name"]), 0.0) > time.monotonic()
    if event_type == "DELETED":
        # The echo of our own delete ends the suppression: a Deployment recreated under this name is seen again.
        STATE.tearing.pop((ns, m["name"]), None)
    if labels.get(LABEL_MANAGED) == "modelhub" and labels.get(LABEL_MODEL) and not torn_down:
        # Ours: keep the Model's rollout (drift) and the version's status current. (Not for the echo of our
        # own teardown: the Revocation enqueues those once it is done, so they don't compete with it.)
        STATE.enqueue("Model", ns, labels[LABEL_MODEL])
        if annotations.get(ANN_VERSION_NAME):
            STATE.enqueue("ModelVersion", ns, annotations[ANN_VERSION_NAME])
    digest = annotations.get(ANN_DIGEST)
    if event_type != "DELETED" and digest:
        for name in revocations_of_digest(digest):
            STATE.enqueue("Revocation", "", name)


def revocations_of_digest(digest: str) -> set[str]:
    """Live Revocations that cover an artifact digest: named in their match, or through a version that has it."""
    revs = live_revocations()
    names = {meta(r)["name"] for r in revs if digest in (((r.get("spec") or {}).get("match") or {}).get("digests") or [])}
    for key in STATE.index.by_digest.get(digest, ()):
        hit = rdomain.first_covering(revs, STATE.index.facts[key])
        if hit:
            names.add(meta(hit[0])["name"])
    return names


def on_configmap_event(event_type: str | None, obj: dict[str, Any]) -> None:
    """A keyring or signature ConfigMap changed: re-verify the versions that depend on it."""
    STATE.configmaps.observe(event_type, obj)
    ns, name = meta(obj).get("namespace") or "", meta(obj).get("name")
    for model in STATE.cache.all("Model"):
        if meta(model).get("namespace") != ns:
            continue
        keys = ((model.get("spec") or {}).get("trust") or {}).get("keys") or []
        if any(k.get("name") == name for k in keys):
            for v in versions_of(ns, meta(model)["name"]):
                STATE.enqueue("ModelVersion", ns, meta(v)["name"])
    for v in STATE.cache.all("ModelVersion"):
        ref = (((v.get("spec") or {}).get("artifact") or {}).get("signature") or {}).get("configMapRef") or {}
        if meta(v).get("namespace") == ns and ref.get("name") == name:
            STATE.enqueue("ModelVersion", ns, meta(v)["name"])


# --- dispatch ----------------------------------------------------------------------------------------------
async def dispatch(key: Key) -> float | None:
    kind, namespace, name = key
    fn = {"Model": reconcile_model, "ModelVersion": reconcile_version, "Revocation": reconcile_revocation}[kind]
    try:
        result = await fn(namespace, name)
    except Exception:
        metrics.RECONCILES.labels(kind, "error").inc()
        raise
    metrics.RECONCILES.labels(kind, "ok").inc()
    return result


async def patch_status_if_changed(kind: str, obj: dict[str, Any], status: dict[str, Any]) -> None:
    old = obj.get("status") or {}
    status = {k: v for k, v in status.items() if v is not None}
    if status == old:
        return
    m = meta(obj)
    # A merge patch keeps keys it does not mention: name the dropped ones with null to remove them.
    patch = {**{k: None for k in old if k not in status}, **status}
    await kube_call(STATE.kube.patch_status, kind, m.get("namespace"), m["name"], patch)
    # Keep the cache ahead of the watch, so the next reconcile does not redo the same transition.
    STATE.cache.put(kind, {**obj, "status": status})


# --- ModelVersion: verification, approval, revocation, workload status --------------------------------------
def _verify(bundle: bytes, keys: dict[str, bytes], pinned: str) -> vdomain.Verification:
    cache_key = (
        hashlib.sha256(bundle).hexdigest(),
        pinned,
        *sorted(f"{k}={hashlib.sha256(v).hexdigest()}" for k, v in keys.items()),
    )
    hit = STATE.verify_cache.get(cache_key)
    if isinstance(hit, vdomain.Verification):
        return hit
    try:
        v = verify_bundle(bundle, keys)
    except SignatureError as exc:
        result = vdomain.Verification(False, exc.reason, exc.message)
    else:
        result = vdomain.check_pinned_digest(v.subject_digest, pinned) or vdomain.Verification(
            True, "Verified",
            f"signed by trusted key {v.key_name} (sha256 {v.key_fingerprint[:16]}…) over {v.file_count} files",
            digest=v.subject_digest, key_name=v.key_name, key_fingerprint=v.key_fingerprint, files=v.file_count,
        )
    metrics.VERIFICATIONS.labels(result.reason).inc()
    if len(STATE.verify_cache) > 10_000:
        STATE.verify_cache.clear()
    STATE.verify_cache[cache_key] = result
    return result


async def verification_for(obj: dict[str, Any], model: dict[str, Any] | None) -> vdomain.Verification:
    ns = meta(obj)["namespace"]
    spec = obj.get("spec") or {}
    try:
        api.parse_spec(api.ModelVersionSpec, spec)
    except api.InvalidResource as exc:
        return vdomain.Verification(False, "InvalidSpec", str(exc))
    if model is None:
        return vdomain.Verification(
            False, "ModelNotFound", f"Model {ns}/{spec.get('model')} does not exist; its keyring decides trust"
        )
    trust = (model.get("spec") or {}).get("trust") or {}
    ring = await kube_call(load_keyring, STATE.configmaps, ns, trust)
    if not ring.keys:
        why = "; ".join(ring.problems) or f"Model {spec.get('model')} lists no keys in spec.trust.keys"
        return vdomain.Verification(False, "UntrustedKey", f"no trusted key to verify with: {why}")
    try:
        bundle, where = await kube_call(load_bundle, STATE.configmaps, ns, spec["artifact"])
    except (BundleNotFound, stores.StoreError) as exc:
        if (spec["artifact"].get("signature") or {}).get("configMapRef"):
            return vdomain.Verification(False, "BundleNotFound", exc.message)  # the ConfigMap watch re-verifies
        # A bundle in a store (file, pvc, https, s3): not found, or not fetchable (TLS, 403, server down...).
        # No watch sees it land (an upload finishing after the apply) or the server come back: look again,
        # every 5 s at first, then at half the age of the failure, at most every 5 minutes.
        unreachable = isinstance(exc, stores.StoreError)
        reason = "BundleUnreachable" if unreachable else "BundleNotFound"
        message = f"cannot fetch the signature bundle: {exc.message}" if unreachable else (
            f"no signature bundle: {exc.message}")
        old = next((c for c in (obj.get("status") or {}).get("conditions") or []
                    if c.get("type") == "SignatureVerified" and c.get("reason") == reason), None)
        try:
            since = dt.datetime.strptime((old or {}).get("lastTransitionTime") or "", "%Y-%m-%dT%H:%M:%SZ")
            age = (dt.datetime.now(dt.UTC) - since.replace(tzinfo=dt.UTC)).total_seconds()
        except ValueError:
            age = 0.0
        STATE.enqueue("ModelVersion", ns, meta(obj)["name"], delay=min(max(age / 2, 5.0), 300.0))
        return vdomain.Verification(False, reason, message)
    result = _verify(bundle, ring.keys, spec["artifact"]["digest"])
    if not result.ok and result.reason == "UntrustedKey" and ring.problems:
        result = vdomain.Verification(False, result.reason, f"{result.message} ({'; '.join(ring.problems)})")
    return result


def approval_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    m = meta(obj)
    record = (m.get("annotations") or {}).get(approval_domain.RECORD_ANNOTATION)
    digest = ((obj.get("spec") or {}).get("artifact") or {}).get("digest", "")
    a = approval_domain.unseal(STATE.approval_key, m["namespace"], m["name"], record, digest)
    if a is None:
        return None
    return {"approvedBy": a.by, "approvedAt": a.at, "groups": list(a.groups)}


async def workload_state(obj: dict[str, Any]) -> vdomain.WorkloadState:
    m = meta(obj)
    dep = STATE.cache.get("Deployment", m["namespace"], m["name"])
    if dep is None or (meta(dep).get("annotations") or {}).get(ANN_VERSION_NAME) != m["name"]:
        return vdomain.WorkloadState()
    replicas = int((dep.get("spec") or {}).get("replicas") or 0)
    ready = int((dep.get("status") or {}).get("readyReplicas") or 0)
    tmpl = ((dep.get("spec") or {}).get("template") or {}).get("metadata") or {}
    unschedulable = None
    if ready < replicas:
        unschedulable = await kube_call(
            STATE.kube.unschedulable_message, m["namespace"], f"{LABEL_INSTANCE}={meta(dep)['labels'][LABEL_INSTANCE]}"
        )
    return vdomain.WorkloadState(
        deployment=meta(dep)["name"], replicas=replicas, ready_replicas=ready,
        served_digest=(tmpl.get("annotations") or {}).get(ANN_DIGEST), unschedulable=unschedulable,
    )


async def reconcile_version(namespace: str, name: str) -> float | None:
    def news(old: list[dict[str, Any]] | None, new: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
        """The condition transitions worth an Event: not the first "nothing to report" state of a new version
        (not revoked; approval not required), and not Available when Ready makes the same turn (every Event is
        an API write; a burst of new versions otherwise writes about ten each)."""
        seen = {c.get("type") for c in old or []}
        events = vdomain.transitions(old, new)
        turned = {e[2].split(":", 1)[0] for e in events}  # "Ready=True", "Available=False", ...
        out = []
        for e in events:
            ctype, _, cstatus = e[2].split(":", 1)[0].partition("=")
            if ctype not in seen and (ctype, e[1]) in {("Revoked", "NotRevoked"), ("Approved", "NotRequired")}:
                continue
            if ctype == "Available" and f"Ready={cstatus}" in turned:
                continue
            out.append(e)
        return out

    obj = STATE.cache.get("ModelVersion", namespace, name)
    if obj is None:
        return None
    spec = obj.get("spec") or {}
    model = STATE.cache.get("Model", namespace, spec.get("model", ""))
    verification = await verification_for(obj, model)
    facts_obj = obj
    if verification.ok:
        facts_obj = {**obj, "status": {**(obj.get("status") or {}), "verified": {"keyFingerprint": verification.key_fingerprint}}}
    cover = covering(facts_obj)
    revoked = None
    if cover:
        rev, why = cover
        at = ((obj.get("status") or {}).get("revocation") or {}).get("at") if (
            ((obj.get("status") or {}).get("revocation") or {}).get("name") == meta(rev)["name"]) else None
        revoked = vdomain.Revoked(meta(rev)["name"], (rev.get("spec") or {}).get("reason", ""), at or now_iso(), why)
    workload = await workload_state(obj)
    require = bool((((model or {}).get("spec") or {}).get("trust") or {}).get("requireApproval"))
    status = vdomain.version_status(
        obj, now=now_iso(), verification=verification, require_approval=require, approval=approval_of(obj),
        revoked=revoked, workload=workload, promoted=workload.deployment is not None,
    )
    old_conditions = (obj.get("status") or {}).get("conditions")
    if revoked:
        failpoints.hit("version.before-revoked-status")
    await patch_status_if_changed("ModelVersion", obj, status)
    STATE.index.upsert(rdomain.VersionFacts.from_object({**obj, "status": status}))
    await emit(obj, news(old_conditions, status["conditions"]), "Reconcile")
    if old_conditions != status["conditions"] and model is not None:
        STATE.enqueue("Model", namespace, meta(model)["name"])
    if workload.deployment and workload.ready_replicas < workload.replicas:
        return 3.0  # pods are still coming up (or cannot be placed): look again
    return None


# --- Model: rollout -----------------------------------------------------------------------------------------
def with_revocations(versions: list[dict[str, Any]], now: str) -> list[dict[str, Any]]:
    """Versions as the rollout must see them: any a live Revocation covers is Revoked, whatever its status says."""
    out = []
    for v in versions:
        cover = covering(v)
        if cover:
            status = dict(v.get("status") or {})
            status["conditions"] = set_condition(
                status.get("conditions"), "Revoked", "True", "Revoked",
                f"revoked by Revocation {meta(cover[0])['name']}", None, now,
            )
            v = {**v, "status": status}
        out.append(v)
    return out


async def apply_deployment(desired: dict[str, Any]) -> bool:
    """Make the live Deployment what we want; whether anything was written.

    Nothing is written when the live one already holds every field we set and nobody else changed its spec (its
    generation is the one we wrote): every watch event of a Deployment (status updates) reconciles its Model, and
    re-applying an unchanged object each time is a server-side apply the API server must still decode and merge.
    A spec edited by someone else (a higher generation) is replaced whole (drift correction).
    """

    def covers(live: Any, want: Any) -> bool:
        """Whether `live` holds every field of `want` (server defaults may add fields; lists keep their order;
        a zero value we set may be omitted, as the API server serialises e.g. `initialDelaySeconds: 0`)."""
        if isinstance(want, dict):
            return isinstance(live, dict) and all(
                covers(live[k], v) if k in live else v in (0, "", None) or v == [] or v == {}
                for k, v in want.items()
            )
        if isinstance(want, list):
            return isinstance(live, list) and len(live) == len(want) and all(map(covers, live, want))
        return bool(live == want)

    ns, name = desired["metadata"]["namespace"], desired["metadata"]["name"]
    live = STATE.cache.get("Deployment", ns, name)
    recorded = STATE.applied_generation.get((ns, name))
    # A generation past the one we wrote means a hand edit: replace the whole object. Unknown (after a restart):
    # server-side apply with force restores every field we own, and records the generation from then on.
    drifted = live is not None and recorded is not None and int(meta(live).get("generation") or 0) > recorded
    if live is not None and not drifted and not meta(live).get("deletionTimestamp"):
        m, want = meta(live), desired["metadata"]
        if (covers(live.get("spec"), desired["spec"]) and covers(m.get("labels") or {}, want.get("labels") or {})
                and covers(m.get("annotations") or {}, want.get("annotations") or {})
                and covers(m.get("ownerReferences") or [], want.get("ownerReferences") or [])):
            # Ours as it stands (e.g. after a restart): a later hand edit shows as a generation past this one.
            STATE.applied_generation.setdefault((ns, name), int(m.get("generation") or 0))
            return False
    fn = STATE.kube.replace if drifted else STATE.kube.apply
    result = await kube_call(fn, desired)
    STATE.applied_generation[(ns, name)] = int((result.get("metadata") or {}).get("generation") or 0)
    if drifted:
        log.info("restored Deployment %s/%s edited outside modelhub", ns, name)
    return True


async def reconcile_model(namespace: str, name: str) -> float | None:
    model = STATE.cache.get("Model", namespace, name)
    if model is None:
        return None
    now = now_iso()
    gen = meta(model).get("generation")
    versions = with_revocations(versions_of(namespace, name), now)
    try:
        api.parse_spec(api.ModelSpec, model.get("spec"))
        spec_error = None
    except api.InvalidResource as exc:
        spec_error = str(exc)
    plan = plan_rollout(model, versions, now)
    by_name = {meta(v)["name"]: v for v in versions}
    desired: list[dict[str, Any]] = []
    build_error = spec_error
    for w in plan.workloads:
        try:
            desired.append(build_deployment(
                model, by_name[w.version_name], replicas=w.replicas, role=w.role,
                loader_image=STATE.settings.loader_image, cpu_node_selector=STATE.settings.cpu_node_selector,
            ))
        except (PlacementError, WorkloadError) as exc:
            build_error = f"cannot build the Deployment of {w.version_name}: {exc.message}"
    conditions = plan.conditions
    if build_error:
        conditions = set_condition(conditions, "Ready", "False", "InvalidServing", build_error, gen, now)
        desired = []
    wanted = {d["metadata"]["name"] for d in desired}

    def ready(dep: dict[str, Any] | None) -> int:
        return int(((dep or {}).get("status") or {}).get("readyReplicas") or 0)

    def arrived(d: dict[str, Any]) -> bool:
        """The new Deployment serves all its replicas, or it cannot be placed (e.g. the GPUs it needs are held by
        the version it replaces): waiting for it would then wait forever."""
        if ready(STATE.cache.get("Deployment", namespace, d["metadata"]["name"])) >= d["spec"]["replicas"]:
            return True
        v = by_name.get(d["metadata"]["name"]) or {}
        return any(c.get("type") == "Available" and c.get("reason") == "Unschedulable"
                   for c in (v.get("status") or {}).get("conditions") or [])

    # Make before break: a version that is no longer promoted keeps serving until what replaces it is ready,
    # as long as it may still be served at all (revoked, unverified or unapproved ones go at once).
    from modelhub.domain.rollout import eligible

    handing_over = bool(desired) and not all(arrived(d) for d in desired)
    try:
        for dep in deployments_of_model(namespace, name):
            dep_name = meta(dep)["name"]
            if dep_name in wanted:
                continue
            old_version = by_name.get((meta(dep).get("annotations") or {}).get(ANN_VERSION_NAME) or dep_name)
            if handing_over and ready(dep) and old_version is not None and eligible(model, old_version)[0]:
                log.debug("Deployment %s/%s keeps serving until its successor is ready", namespace, dep_name)
                continue
            await kube_call(STATE.kube.delete_deployment, namespace, dep_name)
            STATE.cache.drop("Deployment", namespace, dep_name)
        written = await asyncio.gather(*(apply_deployment(d) for d in desired))
        if desired:
            service = build_service(model, port=80)
            # The Service depends on the Model alone: when Services are cached (their watch records them), apply
            # it only when it is missing, the Model changed or one of its Deployments was written, not on every
            # status update of a Deployment. Uncached, apply it every time: a deleted one must come back.
            services = STATE.cache.objects.get("Service")
            missing = services is None or (namespace, name) not in services
            if any(written) or missing or (model.get("status") or {}).get("observedGeneration") != gen:
                try:
                    await kube_call(STATE.kube.apply, service)
                except Exception:
                    for d in desired:  # so that the retry writes them, and this Service, again
                        STATE.applied_generation.pop((namespace, d["metadata"]["name"]), None)
                    raise
    except Exception as exc:
        if getattr(exc, "status", None) == 403 and "NamespaceTerminating" in str(getattr(exc, "body", "")):
            log.debug("Model %s/%s: its namespace is being deleted, nothing to roll out", namespace, name)
            return None
        raise
    serving: list[dict[str, Any]] = []
    for w in plan.workloads:
        dep = STATE.cache.get("Deployment", namespace, w.version_name) or {}
        serving.append({
            "version": w.version, "role": w.role, "replicas": w.replicas,
            "readyReplicas": int((dep.get("status") or {}).get("readyReplicas") or 0),
        })
        metrics.SERVING.labels(namespace, name, w.version, w.role).set(serving[-1]["readyReplicas"])
    old = model.get("status") or {}
    status = {
        **old,
        "observedGeneration": gen,
        "conditions": conditions,
        "stableVersion": plan.stable_version,
        "canaryVersion": plan.canary_version,
        "canaryWeight": plan.canary_weight,
        "serving": serving,
        "versions": model_domain.version_counts(versions),
        "history": plan.history,
    }
    await patch_status_if_changed("Model", model, status)
    await emit(model, plan.events, "Rollout")
    for v in versions:
        # A new or changed Model (keys, approval policy) changes how all its versions verify; otherwise only a
        # version whose status.workload lags behind its Deployment needs a look (re-checking every version on
        # every status update of a Deployment would multiply the work by the number of versions). Watch events
        # of the Deployment usually got there first; this also covers the ones that were not routed to it.
        v_name = meta(v)["name"]
        vdep = STATE.cache.get("Deployment", namespace, v_name)
        if vdep is not None and (meta(vdep).get("annotations") or {}).get(ANN_VERSION_NAME) != v_name:
            vdep = None
        shown = (v.get("status") or {}).get("workload") or {}
        actual = {} if vdep is None else {
            "deployment": v_name, "replicas": int((vdep.get("spec") or {}).get("replicas") or 0),
            "readyReplicas": ready(vdep),
        }
        if old.get("observedGeneration") != gen or {k: shown.get(k) for k in actual} != actual or (
                vdep is None and shown.get("deployment")):
            STATE.enqueue("ModelVersion", namespace, v_name)
    if handing_over or any(s["readyReplicas"] < s["replicas"] for s in serving):
        return 3.0
    return None


# --- Revocation: teardown ---------------------------------------------------------------------------------
def revoked_digests(rev: dict[str, Any]) -> set[str]:
    match = (rev.get("spec") or {}).get("match") or {}
    digests = set(match.get("digests") or [])
    for key in STATE.index.match(match):
        digests.add(STATE.index.facts[key].digest)
    return digests


def workloads_serving(digests: set[str]) -> list[tuple[str, str]]:
    out = []
    for d in STATE.cache.all("Deployment"):
        ann = meta(d).get("annotations") or {}
        if ann.get(ANN_DIGEST) in digests:
            out.append((meta(d)["namespace"], meta(d)["name"]))
    return out


async def teardown(workloads: list[tuple[str, str]]) -> int:
    """Delete workloads in parallel with bounded concurrency; the number actually deleted by us."""
    loop = asyncio.get_running_loop()
    until = time.monotonic() + 30
    for key in workloads:
        STATE.tearing[key] = until

    async def one(ns: str, name: str) -> bool:
        # The dedicated pool's size is the concurrency bound; nothing else queues in it.
        gone = await loop.run_in_executor(STATE.teardown_pool, STATE.kube.delete_deployment, ns, name)
        failpoints.hit("revocation.mid-delete")
        STATE.cache.drop("Deployment", ns, name)
        STATE.applied_generation.pop((ns, name), None)
        return bool(gone)

    results = await asyncio.gather(*(one(ns, n) for ns, n in workloads))
    return sum(results)


async def reconcile_revocation(namespace: str, name: str) -> float | None:  # noqa: ARG001 - cluster-scoped
    rev = STATE.cache.get("Revocation", "", name)
    if rev is None or meta(rev).get("deletionTimestamp"):
        return None
    started = time.monotonic()
    gen = meta(rev).get("generation")
    matched = STATE.index.match((rev.get("spec") or {}).get("match") or {})
    digests = revoked_digests(rev)
    targets = workloads_serving(digests)
    deleted = 0
    if targets:
        # Record the teardown as it starts (in parallel with the deletes, which are what users wait for).
        intent = rdomain.tearing_down_status(rev.get("status") or {}, generation=gen, targets=len(targets),
                                             now=dt.datetime.now(dt.UTC))
        failpoints.hit("revocation.before-delete")
        if STATE.queue is not None:
            STATE.queue.hold()
        try:
            _, deleted = await asyncio.gather(patch_status_if_changed("Revocation", rev, intent), teardown(targets))
        finally:
            if STATE.queue is not None:
                STATE.queue.release()
        metrics.TORN_DOWN.inc(deleted)
        rev = STATE.cache.get("Revocation", "", name) or rev
        failpoints.hit("revocation.after-delete")
    remaining = workloads_serving(digests)
    status, seconds = rdomain.enforcement_status(
        rev.get("status") or {}, generation=gen, matched=[STATE.index.facts[k] for k in matched],
        remaining=len(remaining), created=meta(rev)["creationTimestamp"], now=dt.datetime.now(dt.UTC),
    )
    if seconds is not None:
        metrics.ENFORCEMENT_SECONDS.observe(seconds)
    await patch_status_if_changed("Revocation", rev, status)
    failpoints.hit("revocation.after-status")
    # Versions: mark them Revoked; Models: fall back. (Their reconcilers refuse the revoked versions.)
    for ns, mv in matched:
        STATE.enqueue("ModelVersion", ns, mv)
    for ns, model in {(ns, STATE.index.facts[(ns, mv)].model) for ns, mv in matched}:
        STATE.enqueue("Model", ns, model)
    if deleted:
        await emit(rev, [("Warning", "TornDown", f"deleted {deleted} workloads serving revoked artifacts")], "Enforce")
    log.info("Revocation %s: %d versions, %d workloads deleted in %.3fs", name, len(matched), deleted,
             time.monotonic() - started)
    return 1.0 if remaining else None
