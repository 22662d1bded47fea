"""Watch routing: which keys a watch event puts on the work queue. O(1) per event through reverse indexes.

An event of an object nobody references costs a dictionary lookup and nothing else.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from modelhub.domain import revocation as rdomain
from modelhub.domain.events import Event
from modelhub.domain.teardown import declared_digest
from modelhub.handlers.context import Context
from modelhub.vocab import annotations as A
from modelhub.vocab import conditions as C
from modelhub.vocab import labels as L
from modelhub.vocab import reasons as R

ObjKey = tuple[str, str]


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def keyring_refs(model: dict[str, Any]) -> set[ObjKey]:
    """The ConfigMaps a Model's trust names: keyrings and CA certificates."""
    ns = _meta(model).get("namespace") or ""
    trust = (model.get("spec") or {}).get("trust") or {}
    refs = [*(trust.get("keys") or []), *(trust.get("certificateAuthorities") or [])]
    return {(ns, k["name"]) for k in refs if isinstance(k, dict) and k.get("name")}


def version_configmaps(version: dict[str, Any]) -> set[ObjKey]:
    """The ConfigMaps a version's verification reads: its bundle's (signature.configMapRef) and its store CA's
    (caConfigMapRef)."""
    artifact = (version.get("spec") or {}).get("artifact") or {}
    ns = _meta(version).get("namespace") or ""
    refs = [((artifact.get("signature") or {}).get("configMapRef")) or {}, artifact.get("caConfigMapRef") or {}]
    return {(ns, r["name"]) for r in refs if isinstance(r, dict) and r.get("name")}


def rollout_view(dep: dict[str, Any]) -> tuple[Any, ...]:
    """What the Model's and the version's reconciles read of a Deployment (its identity, labels, annotations,
    generation, deletion, replicas wanted and ready): a watch event that changes none of it reconciles nothing.
    (A Deployment coming up changes its status three or four times; its conditions and observedGeneration, and
    the counts of pods created and available, are read by no reconcile, or only by those other events start.)"""
    m = _meta(dep)
    spec, status = dep.get("spec") or {}, dep.get("status") or {}
    return (m.get("uid"), m.get("generation"), m.get("labels"), m.get("annotations"), m.get("deletionTimestamp"),
            spec.get("replicas"), status.get("readyReplicas"))


class RefIndex:
    """Which objects reference which ConfigMaps (a reverse index, kept current from watch events)."""

    def __init__(self) -> None:
        self._refs: dict[ObjKey, set[ObjKey]] = {}
        self._by_target: dict[ObjKey, set[ObjKey]] = defaultdict(set)

    def assign(self, owner: ObjKey, targets: set[ObjKey]) -> None:
        for t in self._refs.pop(owner, set()) - targets:
            self._drop(t, owner)
        if targets:
            self._refs[owner] = set(targets)
            for t in targets:
                self._by_target[t].add(owner)

    def _drop(self, target: ObjKey, owner: ObjKey) -> None:
        owners = self._by_target.get(target)
        if owners is not None:
            owners.discard(owner)
            if not owners:
                del self._by_target[target]

    def remove(self, owner: ObjKey) -> None:
        self.assign(owner, set())

    def owners(self, target: ObjKey) -> set[ObjKey]:
        return set(self._by_target.get(target, ()))

    def namespaces(self) -> set[str]:
        return {ns for ns, _ in self._by_target}


class Router:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        ctx.after_status_write = self.after_status_write
        self.keyrings = RefIndex()  # keyring ConfigMap -> Models
        self.bundles = RefIndex()  # bundle ConfigMap -> ModelVersions
        self.revoked_digests: dict[str, set[str]] = defaultdict(set)  # digest named in a match -> Revocations

    # --- the CRDs ----------------------------------------------------------------------------------------------
    def record(self, kind: str, event_type: str | None, obj: dict[str, Any]) -> bool:
        """Keep the cache current; False when the event is stale (an older state, or a late echo of an object
        our teardown deleted: it must not come back and be torn down, and counted, again)."""
        m = _meta(obj)
        if event_type == "DELETED":
            self.ctx.cache.drop(kind, m.get("namespace"), m["name"])
            return True
        gone = self.ctx.recently_deleted.get((kind, m.get("namespace") or "", m["name"]))
        if gone is not None and gone == m.get("uid"):
            return False
        return self.ctx.cache.put(kind, obj)

    def echo(self, kind: str, event_type: str | None, obj: dict[str, Any]) -> bool:
        """A MODIFIED event that is (or may be) the echo of our own status write: nothing to route now.

        Either the write's answer is in the cache already (the same resourceVersion), or the write is still
        on its way: then the event goes into the cache and its resourceVersion is noted; when the write ends, an
        event that was not its echo (somebody else's change) is routed then (`after_status_write`)."""
        if event_type != "MODIFIED":
            return False
        if self.ctx.cache.holds(kind, obj):
            return True
        m = _meta(obj)
        writing = self.ctx.status_writes.get((kind, m.get("namespace") or "", m.get("name") or ""))
        if writing is None:
            return False
        self.record(kind, event_type, obj)
        writing.seen.add(str(m.get("resourceVersion")))
        return True

    def after_status_write(self, kind: str, namespace: str, name: str) -> None:
        """A status write ended while watch events of the object came that were not its echo: route them now,
        from the object as the cache has it (the newest state)."""
        obj = self.ctx.cache.get(kind, namespace, name)
        if obj is None:
            return
        if kind == "Model":
            self._model_changed(obj)
        elif kind == "ModelVersion":
            self._version_changed(obj)

    def _as_cached(self, kind: str, event_type: str | None, obj: dict[str, Any]) -> dict[str, Any]:
        """A relist reports what vanished meanwhile as DELETED with its name only: what routes from it (a
        version's Model, a Revocation's match) is read from the object as it was cached."""
        if event_type != "DELETED" or "spec" in obj:
            return obj
        m = _meta(obj)
        return self.ctx.cache.get(kind, m.get("namespace"), m.get("name") or "") or obj

    def on_model(self, event_type: str | None, obj: dict[str, Any]) -> None:
        obj = self._as_cached("Model", event_type, obj)
        if self.echo("Model", event_type, obj):
            return
        self.record("Model", event_type, obj)
        m = _meta(obj)
        if event_type == "DELETED":
            self.keyrings.remove((m["namespace"], m["name"]))
            return
        self._model_changed(obj)

    def _model_changed(self, obj: dict[str, Any]) -> None:
        m = _meta(obj)
        key = (m["namespace"], m["name"])
        self.keyrings.assign(key, keyring_refs(obj))
        self.ctx.enqueue("Model", *key)

    def on_version(self, event_type: str | None, obj: dict[str, Any]) -> None:
        obj = self._as_cached("ModelVersion", event_type, obj)
        if self.echo("ModelVersion", event_type, obj):
            return
        self.record("ModelVersion", event_type, obj)
        m = _meta(obj)
        if event_type == "DELETED":
            key = (m["namespace"], m["name"])
            self.ctx.index.remove(key)
            self.bundles.remove(key)
            model = (obj.get("spec") or {}).get("model")
            if model:
                self.ctx.enqueue("Model", m["namespace"], model)
            return
        self._version_changed(obj)

    def _version_changed(self, obj: dict[str, Any]) -> None:
        m = _meta(obj)
        key = (m["namespace"], m["name"])
        self.facts_changed(rdomain.VersionFacts.from_object(obj))
        self.bundles.assign(key, version_configmaps(obj))
        self.ctx.enqueue("ModelVersion", *key)
        model = (obj.get("spec") or {}).get("model")
        # A version this operator has no verdict on yet (just created) changes nothing its Model can act on: its
        # reconcile enqueues the Model once it has one (spec.model is immutable).
        if model and key in self.ctx.verdicts:
            self.ctx.enqueue("Model", m["namespace"], model)

    def facts_changed(self, facts: rdomain.VersionFacts) -> None:
        """Index a version's facts; when they changed (a new version, a new digest, dataset or verified key), the
        Revocations that cover it now look again: a late link (a new version tying a dataset to a running
        workload's artifact) is enforced at once."""
        if self.ctx.index.upsert(facts):
            revs = self.ctx.live_revocations()
            if revs:
                hit = rdomain.first_covering(revs, facts)
                if hit:
                    self.ctx.enqueue("Revocation", "", _meta(dict(hit[0]))["name"])

    def late_link(self, revocation: str, digest: str) -> None:
        d = rdomain.normalize_digest(digest)
        if d and revocation:
            links = self.ctx.late_digests.setdefault(revocation, set())
            if d not in links and len(links) < 10_000:
                links.add(d)
                self.ctx.enqueue("Revocation", "", revocation)

    def resync(self) -> None:
        """The safety net: every live Revocation looks again."""
        for rev in self.ctx.live_revocations():
            self.ctx.enqueue("Revocation", "", _meta(rev)["name"])

    def on_revocation(self, event_type: str | None, obj: dict[str, Any]) -> None:
        obj = self._as_cached("Revocation", event_type, obj)
        self.record("Revocation", event_type, obj)
        name = _meta(obj)["name"]
        for names in self.revoked_digests.values():
            names.discard(name)
        match = (obj.get("spec") or {}).get("match") or {}
        if event_type == "DELETED" or _meta(obj).get("deletionTimestamp"):
            # Lifting a Revocation: re-check the versions it covered, so they may verify and roll out again.
            for ns, mv in self.ctx.index.match(match):
                self.ctx.enqueue("ModelVersion", ns, mv)
                self.ctx.enqueue("Model", ns, self.ctx.index.facts[(ns, mv)].model)
            return
        for d in [*(match.get("digests") or []), *((obj.get("status") or {}).get("revokedDigests") or [])]:
            if isinstance(d, str):
                self.revoked_digests[rdomain.normalize_digest(d)].add(name)
        self.ctx.enqueue("Revocation", "", name)

    # --- what the operator watches with selectors -------------------------------------------------------------
    def on_deployment(self, event_type: str | None, obj: dict[str, Any]) -> None:
        m = _meta(obj)
        ns, name = m["namespace"], m["name"]
        before = self.ctx.cache.get("Deployment", ns, name)
        ours_echo = event_type != "DELETED" and self.ctx.cache.holds("Deployment", obj)  # our apply's answer
        if not self.record("Deployment", event_type, obj):
            return
        if event_type == "MODIFIED" and before is not None and rollout_view(before) == rollout_view(obj):
            return  # a status change nobody reads (its controller's bookkeeping: conditions, observedGeneration)
        lab, ann = m.get("labels") or {}, m.get("annotations") or {}
        ours_tearing = (ns, name) in self.ctx.tearing
        if event_type == "DELETED":
            # The echo of our own delete ends the suppression: a Deployment recreated under this name is seen again.
            self.ctx.tearing.discard((ns, name))
        if lab.get(L.MANAGED_BY) == L.MANAGER and lab.get(L.MODEL) and not ours_tearing and not ours_echo:
            # Ours: keep the Model's rollout (drift) and the version's status current. (Not for the echo of our
            # own teardown: the Revocation enqueues those once it is done, so they don't compete with it. Nor for
            # the echo of our own apply: the Model that wrote it enqueues the versions whose status lags it.)
            self.ctx.enqueue("Model", ns, lab[L.MODEL])
            self.ctx.enqueue("ModelVersion", ns, ann.get(A.MODEL_VERSION, ""))
        if event_type != "DELETED" and not m.get("deletionTimestamp"):
            declared = declared_digest(obj)
            if declared.problem:
                self._warn_malformed(obj, declared.problem)
            elif declared.digest:
                for rev in self.revocations_of_digest(declared.digest):
                    self.ctx.enqueue("Revocation", "", rev)

    def on_workload(self, kind: str, event_type: str | None, obj: dict[str, Any]) -> None:
        """A workload of any other kind that declares the artifact it serves: a Revocation covering it acts."""
        if not self.record(kind, event_type, obj):
            return
        if event_type == "DELETED" or _meta(obj).get("deletionTimestamp"):
            return  # going already: nothing for a Revocation to do (a teardown's echoes cost nothing)
        declared = declared_digest(obj)
        if declared.problem:
            self._warn_malformed(obj, declared.problem)
        elif declared.digest:
            for rev in self.revocations_of_digest(declared.digest):
                self.ctx.enqueue("Revocation", "", rev)

    def _warn_malformed(self, obj: dict[str, Any], problem: str) -> None:
        m = _meta(obj)
        mark = (str(m.get("uid") or m.get("name")), str((m.get("annotations") or {}).get(A.ARTIFACT_DIGEST)))
        if mark in self.ctx.warned:
            return
        if len(self.ctx.warned) > 10_000:
            self.ctx.warned.clear()
        self.ctx.warned[mark] = None
        self.ctx.events.record(obj, [Event(C.WARNING, R.MALFORMED_DIGEST, problem)], "Validate")

    def revocations_of_digest(self, digest: str) -> set[str]:
        """Live Revocations that cover an artifact digest: named in their match, or through a version with it."""
        names = set(self.revoked_digests.get(digest, ()))
        keys = self.ctx.index.by_digest.get(digest, ())
        if keys:
            revs = self.ctx.live_revocations()
            for key in keys:
                hit = rdomain.first_covering(revs, self.ctx.index.facts[key])
                if hit:
                    names.add(_meta(dict(hit[0]))["name"])
        return names

    def on_service(self, event_type: str | None, obj: dict[str, Any]) -> None:
        """A managed Service edited or deleted by hand: the Model's reconcile puts it back."""
        if event_type != "DELETED" and self.ctx.cache.holds("Service", obj):
            return  # the echo of our own apply (created or updated)
        self.record("Service", event_type, obj)
        m = _meta(obj)
        model = (m.get("labels") or {}).get(L.MODEL)
        if model and m.get("namespace"):
            self.ctx.enqueue("Model", m["namespace"], model)

    def on_configmap(self, event_type: str | None, obj: dict[str, Any]) -> None:
        """A keyring or signature ConfigMap changed: re-verify the versions that depend on it."""
        if not self.ctx.configmaps.observe(event_type, obj):
            return  # nobody read it, or it is as they read it
        m = _meta(obj)
        target = (m.get("namespace") or "", m.get("name") or "")
        for ns, model in self.keyrings.owners(target):
            for v in self.ctx.cache.by("ModelVersion", "model", (ns, model)):
                self.ctx.enqueue("ModelVersion", ns, _meta(v)["name"])
        for ns, mv in self.bundles.owners(target):
            self.ctx.enqueue("ModelVersion", ns, mv)

    def configmap_namespaces(self) -> set[str]:
        """The namespaces whose ConfigMaps somebody references (only these are watched)."""
        return self.keyrings.namespaces() | self.bundles.namespaces()
