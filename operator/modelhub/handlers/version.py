"""ModelVersion reconcile: gather (verification, approval, revocation, workload), decide (domain.versions),
write (status, Events, requeue)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from typing import Any

from modelhub.adapters import failpoints, metrics, stores
from modelhub.adapters.bundles import (
    Bundle,
    Refusal,
    bundle_from_configmap,
    registry_credentials_from_secret,
    s3_credentials_from_secret,
)
from modelhub.adapters.oci import oci_tag, same_repository
from modelhub.adapters.trust import TrustRoots, load_trust
from modelhub.api import types as api
from modelhub.domain import approval as approval_domain
from modelhub.domain import revocation as rdomain
from modelhub.domain import storeca, verdicts
from modelhub.domain import versions as vdomain
from modelhub.domain.signing import Reason as SignatureReason
from modelhub.domain.signing import SignatureError, verify_bundle
from modelhub.handlers.context import Context
from modelhub.handlers.status import write_status
from modelhub.vocab import annotations as A
from modelhub.vocab import labels as L
from modelhub.vocab import reasons as R

log = logging.getLogger(__name__)


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


class VersionReconciler:
    def __init__(self, ctx: Context, facts_changed: Callable[[rdomain.VersionFacts], None] | None = None) -> None:
        self.ctx = ctx
        self.router_facts = facts_changed or ctx.index.upsert
        self.spec_errors = api.SpecErrors(api.ModelVersionSpec)
        # The last answer of each version's pods to why they do not serve: (when asked, unschedulable, rejected).
        # Dropped once its Deployment serves or the version is gone; see vdomain.pods_question.
        self.pods_asked: dict[tuple[str, str], tuple[dt.datetime, str | None, str | None]] = {}

    # --- gather --------------------------------------------------------------------------------------------
    def _verify_sync(self, bundle: bytes, roots: TrustRoots, pinned: str) -> vdomain.Verification:
        """Runs on a thread (ctx.io): parsing and verifying a bundle of a few MiB is CPU the event loop (and the
        webhooks sharing it) must not wait for."""
        try:
            result = vdomain.verification_of(verify_bundle(bundle, roots.keys, trusted_cas=roots.cas), pinned)
        except SignatureError as exc:
            result = vdomain.Verification(False, exc.reason, exc.message)
        metrics.record_verification(result.reason)
        return result

    async def _verify(self, bundle: bytes, roots: TrustRoots, pinned: str) -> vdomain.Verification:
        cache_key = (
            hashlib.sha256(bundle).hexdigest(), pinned,
            *sorted(f"{k}={hashlib.sha256(v).hexdigest()}" for k, v in roots.keys.items()),
            *sorted(f"ca:{k}={hashlib.sha256(v).hexdigest()}" for k, v in roots.cas.items()),
        )
        hit = self.ctx.verify_cache.get(cache_key)
        if isinstance(hit, vdomain.Verification):
            return hit
        result: vdomain.Verification = await self.ctx.io(self._verify_sync, bundle, roots, pinned)
        if len(self.ctx.verify_cache) > 10_000:
            self.ctx.verify_cache.clear()
        self.ctx.verify_cache[cache_key] = result
        return result

    async def bundle(self, obj: dict[str, Any]) -> Bundle | Refusal | None:
        """The version's signature bundle: from its ConfigMap (watched), or requested from the bundle fetcher,
        which never holds this worker: None while the fetch runs (its end enqueues the version again)."""
        ctx = self.ctx
        m = _meta(obj)
        ns, name = m["namespace"], m["name"]
        artifact = (obj.get("spec") or {})["artifact"]
        sig = artifact.get("signature") or {}
        ref = sig.get("configMapRef")
        if ref:
            ca = await self.store_ca(obj)
            if isinstance(ca, Refusal):
                return ca
            key = ref.get("key") or stores.DEFAULT_SIGNATURE_NAME
            cm = await ctx.io(ctx.configmaps.get_configmap, ns, ref["name"])
            return bundle_from_configmap(cm, ns, ref["name"], key)
        pinned = await self.pinned_uri(obj)
        if not isinstance(pinned, str):
            return pinned
        uri = sig.get("uri") or stores.default_signature_uri(pinned)
        credentials = await self.credentials(obj, uri)
        if isinstance(credentials, Refusal):
            return credentials
        ca_pem = await self.store_ca(obj)
        if isinstance(ca_pem, Refusal):
            return ca_pem
        assert ctx.bundles is not None
        result: Bundle | Refusal | None = ctx.bundles.request(
            (ns, name), uri, credentials=credentials, ca_pem=ca_pem,
            on_done=lambda: ctx.enqueue("ModelVersion", ns, name))
        return result

    async def store_ca(self, obj: dict[str, Any]) -> bytes | Refusal | None:
        """The CA certificates spec.artifact.caConfigMapRef names (the only roots trusted for the version's https
        store, by the loader and by the operator's bundle fetch); checked even when the bundle is in a ConfigMap,
        so that a missing or broken CA shows here, not as pods that cannot start. Its ConfigMap is watched."""
        ref = storeca.store_ca_ref((obj.get("spec") or {}).get("artifact"))
        if ref is None:
            return None
        ns = _meta(obj)["namespace"]
        cm = await self.ctx.io(self.ctx.configmaps.get_configmap, ns, ref.name)
        try:
            return storeca.ca_pem_from_configmap(cm, ref, ns)
        except storeca.StoreCAError as exc:
            return Refusal(exc.reason, exc.message)

    async def credentials(self, obj: dict[str, Any], uri: str) -> Any:
        """What the fetch of `uri` authenticates with: the Secret spec.artifact.credentialsSecretRef names in
        the version's namespace (S3 keys, or a dockerconfigjson for a registry), never the operator's own."""
        ctx = self.ctx
        m = _meta(obj)
        ns = m["namespace"]
        secret_ref = ((obj.get("spec") or {}).get("artifact") or {}).get("credentialsSecretRef")
        scheme = uri.split(":", 1)[0].lower()
        if not secret_ref or scheme not in ("s3", "oci"):
            return None
        try:
            secret = await ctx.io(ctx.kube.get_secret, ns, secret_ref["name"])
        except PermissionError as exc:
            return Refusal(R.CREDENTIALS_FORBIDDEN, f"{exc}: bind the ClusterRole modelhub-credentials-reader "
                           "to the operator's ServiceAccount in this namespace", retry=True)
        if scheme == "s3":
            return s3_credentials_from_secret(secret, ns, secret_ref["name"])
        return registry_credentials_from_secret(secret, ns, secret_ref["name"], uri)

    async def pinned_uri(self, obj: dict[str, Any]) -> str | Refusal | None:
        """The artifact URI pinned by digest. An ``oci://`` tag is resolved once, off the queue workers (None
        while that runs), and recorded in status.resolvedUri: a tag that moves later does not move the version."""
        ctx = self.ctx
        m = _meta(obj)
        uri = str(((obj.get("spec") or {}).get("artifact") or {})["uri"])
        if not oci_tag(uri):
            return uri
        recorded = (obj.get("status") or {}).get("resolvedUri")
        if recorded and same_repository(recorded, uri):
            return str(recorded)
        credentials = await self.credentials(obj, uri)
        if isinstance(credentials, Refusal):
            return credentials
        assert ctx.bundles is not None
        ns, name = m["namespace"], m["name"]
        found: str | Refusal | None = ctx.bundles.request(
            (ns, name, "resolve"), uri, credentials=credentials, resolve=True,
            on_done=lambda: ctx.enqueue("ModelVersion", ns, name))
        return found

    async def verification(self, obj: dict[str, Any], model: dict[str, Any] | None) -> vdomain.Verification | None:
        """What verifying the version's bundle against its Model's trust gives now; None while its bundle is
        being fetched."""
        ns = _meta(obj)["namespace"]
        spec = obj.get("spec") or {}
        invalid = self.spec_errors.of(obj)
        if invalid is not None:
            return vdomain.Verification(False, R.INVALID_SPEC, invalid)
        if model is None:
            return vdomain.Verification(
                False, R.MODEL_NOT_FOUND, f"Model {ns}/{spec.get('model')} does not exist; its keyring decides trust"
            )
        trust = (model.get("spec") or {}).get("trust") or {}
        roots = await self.ctx.io(load_trust, self.ctx.configmaps, ns, trust)
        if not roots:
            return vdomain.Verification(False, R.UNTRUSTED_KEY, roots.none_usable(str(spec.get("model"))))
        found = await self.bundle(obj)
        if found is None:
            return None
        if isinstance(found, Refusal):
            # A ConfigMap's watch re-verifies when it lands; a store is looked at again (retry) unless it can
            # never work (a location the operator may not fetch, content that is not a bundle).
            from_configmap = bool((spec["artifact"].get("signature") or {}).get("configMapRef")) or found.reason in (
                R.STORE_CA_NOT_FOUND, SignatureReason.INVALID_CERTIFICATE)  # (their ConfigMaps are watched)
            retry = found.retry and not from_configmap
            return vdomain.Verification(False, found.reason, found.message, retry=retry)
        result = await self._verify(found.data, roots, spec["artifact"]["digest"])
        if not result.ok and result.reason in (R.UNTRUSTED_KEY, R.UNTRUSTED_CERTIFICATE) and roots.problems:
            result = vdomain.Verification(False, result.reason, f"{result.message} ({'; '.join(roots.problems)})")
        return result

    def approval(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """The sealed approval record of this very object (namespace, name, uid, model, version, digest)."""
        a = approval_domain.unseal_object(self.ctx.approval_key, obj)
        return None if a is None else {"approvedBy": a.by, "approvedAt": a.at, "groups": list(a.groups)}

    def covering(self, obj: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
        """The live Revocation covering a ModelVersion (by its spec and verified key), if any."""
        found = rdomain.first_covering(self.ctx.live_revocations(), rdomain.VersionFacts.from_object(obj))
        return (dict(found[0]), found[1]) if found else None

    async def workload(self, obj: dict[str, Any]) -> vdomain.WorkloadState:
        m = _meta(obj)
        dep = self.ctx.cache.get("Deployment", m["namespace"], m["name"])
        if dep is None or (_meta(dep).get("annotations") or {}).get(A.MODEL_VERSION) != m["name"]:
            self.pods_asked.pop((m["namespace"], m["name"]), None)  # no Deployment (any more): nothing to ask
            return vdomain.WorkloadState()
        replicas = int((dep.get("spec") or {}).get("replicas") or 0)
        ready = int((dep.get("status") or {}).get("readyReplicas") or 0)
        tmpl = ((dep.get("spec") or {}).get("template") or {}).get("metadata") or {}
        key = (m["namespace"], m["name"])
        unschedulable = rejected = look_again = None
        if ready >= replicas:
            self.pods_asked.pop(key, None)
        else:  # why not (once it stalls): the scheduler cannot place them, or the loader refused the artifact
            now, last = self.ctx.clock(), self.pods_asked.get(key)
            question = vdomain.pods_question(dep, now, last[0] if last else None)
            look_again = question.again_in
            if question.ask:
                instance = (_meta(dep).get("labels") or {}).get(L.INSTANCE, "")
                unschedulable, rejected = await self.ctx.io(self.ctx.kube.pod_problems, m["namespace"],
                                                            f"{L.INSTANCE}={instance}")
                self.pods_asked[key] = (now, unschedulable, rejected)
            elif question.reuse and last is not None:
                _, unschedulable, rejected = last
        return vdomain.WorkloadState(
            deployment=_meta(dep)["name"], replicas=replicas, ready_replicas=ready,
            served_digest=(tmpl.get("annotations") or {}).get(A.ARTIFACT_DIGEST), unschedulable=unschedulable,
            loader_failure=rejected, look_again=look_again,
        )

    # --- reconcile -----------------------------------------------------------------------------------------
    async def reconcile(self, namespace: str, name: str) -> float | None:
        obj = self.ctx.cache.get("ModelVersion", namespace, name)
        if obj is None:
            assert self.ctx.bundles is not None
            self.ctx.bundles.cancel((namespace, name))  # a fetch for a deleted version stops
            self.ctx.bundles.cancel((namespace, name, "resolve"))
            self.ctx.verdicts.pop((namespace, name), None)
            self.pods_asked.pop((namespace, name), None)
            self.ctx.decided.discard((namespace, name))
            return None
        spec = obj.get("spec") or {}
        model = self.ctx.cache.get("Model", namespace, spec.get("model", ""))
        verification = await self.verification(obj, model)
        if verification is None:
            return None  # its bundle is being fetched; the fetch's end enqueues this version again
        facts_obj = obj
        if verification.ok:  # a Revocation by key or certificate matches on what verified it now
            facts_obj = {**obj, "status": {**(obj.get("status") or {}), "verified": verification.verified_fields()}}
        now = self.ctx.clock()
        revoked = vdomain.revoked_by(obj, self.covering(facts_obj), self.ctx.now_iso())
        approval = self.approval(obj)
        tagged = oci_tag(str((spec.get("artifact") or {}).get("uri", "")))
        plan = vdomain.plan_version(
            obj, now=now, verification=verification,
            require_approval=bool((((model or {}).get("spec") or {}).get("trust") or {}).get("requireApproval")),
            approval=approval, revoked=revoked, workload=await self.workload(obj),
            tagged=tagged, decided=model is None or (namespace, name) in self.ctx.decided,
        )
        verdict = verdicts.verdict_of(obj, verified=verification.ok, reason=verification.reason,
                                      message=verification.message,
                                      verified_digest=verification.digest, approved=approval is not None)
        verdict_changed = self.ctx.verdicts.get((namespace, name)) != verdict
        self.ctx.verdicts[(namespace, name)] = verdict
        # write
        if plan.became_available:
            seconds = metrics.rollout_seconds(_meta(obj).get("creationTimestamp") or "", now)
            if seconds is not None:
                metrics.record_rollout(seconds)
        if plan.held:  # its Model decides first (requeue.first_status_hold); the index learns who signed it now
            self.router_facts(rdomain.VersionFacts.from_object(facts_obj))
            if model is not None:
                self.ctx.enqueue("Model", namespace, _meta(model)["name"])
            return plan.requeue
        status = plan.status
        pinned = await self.pinned_uri(obj) if tagged else None
        if isinstance(pinned, str) and pinned != status.get("resolvedUri"):
            status = {**status, "resolvedUri": pinned}
        if revoked:
            failpoints.hit("version.before-revoked-status")
        wrote = await write_status(self.ctx, "ModelVersion", obj, status)
        self.router_facts(rdomain.VersionFacts.from_object({**obj, "status": status}))
        self.ctx.events.record(obj, plan.events, "Reconcile")
        # The Model reads its versions' status: it looks again after every write (the write's watch echo does
        # not enqueue it: Router.echo).
        if (wrote or plan.conditions_changed or verdict_changed) and model is not None:
            self.ctx.enqueue("Model", namespace, _meta(model)["name"])
        return plan.requeue
