"""The reconcilers against the in-memory FakeKube: each reconciler's plan applied to realistic objects (real
keys, real signed bundles), and a cluster-api style sequence test in seeded random order with invariants."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import pytest
from tests.support.fakekube import WatchEvent
from tests.support.harness import Harness
from tests.support.manifests import (
    Key,
    Signed,
    bundle_configmap,
    keyring_manifest,
    make_model,
    model_manifest,
    new_key,
    revocation_manifest,
    version_manifest,
)

from modelhub.domain import approval as approval_domain
from modelhub.vocab import annotations as A
from modelhub.vocab import conditions as C
from modelhub.vocab import labels as L
from modelhub.vocab import reasons as R

NS = "team-a"
KEY_B = b"approval-key-for-tests-0123456789abcdef"


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Key, dict[str, Signed]]:
    key = new_key()
    root = tmp_path_factory.mktemp("models")
    return key, {v: make_model(root, f"m-{v}", key) for v in ("1.0.0", "1.1.0", "1.2.0")}


def vname(v: str) -> str:
    return "clf-" + v.replace(".", "-")


def condition(obj: dict[str, Any] | None, ctype: str) -> dict[str, Any]:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == ctype:
            return dict(c)
    return {}


def approved(h: Harness, manifest: dict[str, Any]) -> dict[str, Any]:
    """The version with a sealed approval record, as the mutating webhook writes it."""
    m = {**manifest["metadata"], "uid": f"uid-{manifest['metadata']['name']}"}
    subject = approval_domain.Subject.of({**manifest, "metadata": {**m, "namespace": NS}})
    rec = approval_domain.seal_for(h.ctx.approval_key, subject, "alice", ("approvers",), "2026-12-01T11:00:00Z")
    return {**manifest, "metadata": {**m, "annotations": {A.APPROVAL: rec}}}


def setup(h: Harness, signed: tuple[Key, dict[str, Signed]], *, stable: str | None, require_approval: bool = False,
          replicas: int = 2, approve: tuple[str, ...] = ("1.0.0", "1.1.0", "1.2.0")) -> None:
    key, models = signed
    h.apply(keyring_manifest("keys", {"release.pub": key}, NS))
    h.apply(model_manifest("clf", ["keys"], stable=stable, require_approval=require_approval, replicas=replicas,
                           namespace=NS))
    for v, s in models.items():
        h.apply(bundle_configmap(f"sig-{vname(v)}", s.bundle, NS))
        mv = version_manifest(vname(v), "clf", v, s, namespace=NS,
                              signature={"configMapRef": {"name": f"sig-{vname(v)}", "key": "model.sig"}})
        h.apply(approved(h, mv) if v in approve else mv)


def promote(h: Harness, stable: str) -> None:
    model = dict(h.kube.get("Model", NS, "clf") or {})
    h.apply({**model, "spec": {**model["spec"], "promotion": {**model["spec"].get("promotion", {}), "stable": stable}}})


def deployments(h: Harness) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in h.kube.of_kind("Deployment", NS)}


@pytest.fixture
def h() -> Any:
    harness = Harness(approval_key=KEY_B)
    yield harness
    harness.close()


# --- each reconciler on its own --------------------------------------------------------------------------------
def test_version_reconcile_verifies_and_records_events(h: Harness, signed: Any) -> None:
    setup(h, signed, stable=None)
    h.deliver_all()
    h.run(("ModelVersion", NS, vname("1.0.0")))
    v = h.kube.get("ModelVersion", NS, vname("1.0.0"))
    assert condition(v, C.SIGNATURE_VERIFIED)["reason"] == R.VERIFIED
    assert v["status"]["verified"]["keyFingerprint"] == signed[0].fingerprint
    assert condition(v, C.READY)["reason"] == R.NOT_PROMOTED
    reasons = [(e["name"], e["reason"]) for e in h.kube.recorded_events]
    assert (vname("1.0.0"), R.VERIFIED) in reasons
    assert (vname("1.0.0"), R.NOT_REVOKED) not in reasons  # the quiet first state is no Event
    # Nothing changed: the second reconcile writes nothing.
    before = len(h.kube.requests)
    h.deliver_all()
    h.run(("ModelVersion", NS, vname("1.0.0")))
    assert [r for r in h.kube.requests[before:] if r[0] not in ("get", "list")] == []


def test_a_new_versions_first_status_waits_for_its_model_and_says_both_in_one_write(signed: Any) -> None:
    """Just created: its verdict goes to its Model at once; the Model writes its Deployment; the version's one
    status write then says Verified and Progressing (one write fewer per rollout, none before the Deployment)."""
    h = Harness(approval_key=KEY_B, now=dt.datetime(2026, 12, 1, 0, 0, 1, tzinfo=dt.UTC))  # (FakeKube creates at 0:00)
    try:
        setup(h, signed, stable="1.0.0")
        h.deliver_all()
        for v in ("1.0.0", "1.1.0", "1.2.0"):
            h.run(("ModelVersion", NS, vname(v)))
        assert ("patch-status", "ModelVersion") not in h.kube.requests
        assert ("Model", NS, "clf") in h.queue.ready
        h.run(("Model", NS, "clf"))
        assert vname("1.0.0") in deployments(h)
        h.run(("ModelVersion", NS, vname("1.0.0")))
        assert h.kube.requests.count(("patch-status", "ModelVersion")) == 1
        v = h.kube.get("ModelVersion", NS, vname("1.0.0"))
        assert condition(v, C.SIGNATURE_VERIFIED)["reason"] == R.VERIFIED
        assert condition(v, C.AVAILABLE)["reason"] == R.PROGRESSING
        assert [(e["name"], e["reason"]) for e in h.kube.recorded_events].count((vname("1.0.0"), R.VERIFIED)) == 1
        # A version its Model does not deploy: the Model's decision ends its hold (no waiting for its end).
        assert ("ModelVersion", NS, vname("1.1.0")) in h.queue.ready
        h.run(("ModelVersion", NS, vname("1.1.0")))
        assert condition(h.kube.get("ModelVersion", NS, vname("1.1.0")), C.READY)["reason"] == R.NOT_PROMOTED
    finally:
        h.close()


def test_a_new_versions_held_status_goes_out_when_the_hold_ends_if_its_model_never_decides(signed: Any) -> None:
    h = Harness(approval_key=KEY_B, now=dt.datetime(2026, 12, 1, 0, 0, 1, tzinfo=dt.UTC))
    try:
        setup(h, signed, stable="1.0.0")
        h.deliver_all()
        assert h.run(("ModelVersion", NS, vname("1.1.0"))) == pytest.approx(9.0)  # held: its Model decides first
        assert ("patch-status", "ModelVersion") not in h.kube.requests
        h.now += dt.timedelta(seconds=9)  # the Model has not reconciled (say its worker is busy)
        h.run(("ModelVersion", NS, vname("1.1.0")))
        assert condition(h.kube.get("ModelVersion", NS, vname("1.1.0")), C.READY)["reason"] == R.NOT_PROMOTED
    finally:
        h.close()


def test_a_new_version_reaches_its_model_through_its_verdict_not_its_watch_event(h: Harness, signed: Any) -> None:
    """The Model can do nothing with a version that has no verdict yet: its event enqueues only the version,
    whose reconcile enqueues the Model."""
    setup(h, signed, stable="1.0.0")
    h.settle(controllers=h.settle_deployments)
    s = signed[1]["1.0.0"]
    h.apply(version_manifest("clf-again", "clf", "1.0.0", s, namespace=NS,
                             signature={"configMapRef": {"name": f"sig-{vname('1.0.0')}", "key": "model.sig"}}))
    h.deliver_all()
    assert ("ModelVersion", NS, "clf-again") in h.queue.ready and ("Model", NS, "clf") not in h.queue.ready
    h.run(("ModelVersion", NS, "clf-again"))
    assert ("Model", NS, "clf") in h.queue.ready


def test_wrong_pinned_digest_is_refused(h: Harness, signed: Any) -> None:
    setup(h, signed, stable=None)
    mv = dict(h.kube.get("ModelVersion", NS, vname("1.0.0")) or {})
    mv["spec"] = {**mv["spec"], "artifact": {**mv["spec"]["artifact"], "digest": signed[1]["1.1.0"].digest}}
    h.apply(mv)
    h.deliver_all()
    h.run(("ModelVersion", NS, vname("1.0.0")))
    assert condition(h.kube.get("ModelVersion", NS, vname("1.0.0")), C.SIGNATURE_VERIFIED)["reason"] == R.DIGEST_MISMATCH


def test_model_rolls_out_once_then_skips_and_reverts_hand_edits(h: Harness, signed: Any) -> None:
    setup(h, signed, stable="1.0.0")
    h.settle(controllers=h.settle_deployments)
    deps = deployments(h)
    assert list(deps) == [vname("1.0.0")]
    dep = deps[vname("1.0.0")]
    assert dep["metadata"]["labels"][L.MODEL] == "clf"
    assert dep["metadata"]["annotations"][A.ARTIFACT_DIGEST] == signed[1]["1.0.0"].digest
    assert dep["spec"]["replicas"] == 2
    applies = [r for r in h.kube.requests if r == ("apply", "Deployment")]
    assert len(applies) == 1, h.kube.requests
    model = h.kube.get("Model", NS, "clf")
    assert model["status"]["stableVersion"] == "1.0.0"
    assert condition(model, C.READY)["status"] == C.TRUE
    # A hand edit (the spec's generation moves past ours) is put back whole.
    edited = dict(dep)
    edited["spec"] = {**dep["spec"], "replicas": 7}
    h.apply(edited)
    h.settle(controllers=h.settle_deployments)
    assert ("replace", "Deployment") in h.kube.requests
    assert deployments(h)[vname("1.0.0")]["spec"]["replicas"] == 2


def test_a_failed_service_write_behind_reconciles_the_model_again_and_writes_it(h: Harness, signed: Any) -> None:
    """The Model's Service is written behind its reconcile: a failure is not lost, the Model looks again (with
    backoff) and writes its Deployment and its Service again."""
    setup(h, signed, stable="1.0.0")
    real_apply = h.kube.apply
    failures = []

    def apply(obj: dict[str, Any]) -> dict[str, Any]:
        if obj["kind"] == "Service" and not failures:
            failures.append(obj["metadata"]["name"])
            raise RuntimeError("the API server timed out")
        return real_apply(obj)

    h.kube.apply = apply  # type: ignore[method-assign]
    h.deliver_all()
    for v in signed[1]:
        h.run(("ModelVersion", NS, vname(v)))
    h.run(("Model", NS, "clf"))
    assert failures == ["clf"]
    assert h.kube.get("Service", NS, "clf") is None
    assert ("Model", NS, "clf") in h.queue.later  # looks again after a backoff
    h.settle(controllers=h.settle_deployments)
    assert h.kube.get("Service", NS, "clf") is not None
    assert list(deployments(h)) == [vname("1.0.0")]


def test_a_deployment_status_change_nobody_reads_reconciles_nothing(h: Harness, signed: Any) -> None:
    """Its controller's bookkeeping (conditions, observedGeneration, the counts of pods created, updated and
    available) enqueues neither the Model nor the version; a change of ready replicas enqueues both."""
    setup(h, signed, stable="1.0.0")
    h.settle(controllers=h.settle_deployments)
    dep = deployments(h)[vname("1.0.0")]
    assert not h.queue.ready
    status = dict(dep.get("status") or {})
    bookkeeping = {**dep, "status": {**status, "observedGeneration": 99, "replicas": 7, "availableReplicas": 0,
                                     "updatedReplicas": 3, "conditions": [{"type": "Progressing", "status": "True"}]}}
    h.kube.put(bookkeeping)
    h.deliver_all()
    assert ("Model", NS, "clf") not in h.queue.ready and ("ModelVersion", NS, vname("1.0.0")) not in h.queue.ready
    fewer = {**bookkeeping, "status": {**bookkeeping["status"], "readyReplicas": 0}}
    h.kube.put(fewer)
    h.deliver_all()
    assert ("Model", NS, "clf") in h.queue.ready and ("ModelVersion", NS, vname("1.0.0")) in h.queue.ready


@pytest.mark.parametrize("foreign", [False, True])
def test_a_status_writes_echo_arriving_before_its_answer_reconciles_nothing(h: Harness, signed: Any,
                                                                           foreign: bool) -> None:
    """The watch may deliver a status write's echo before the write's answer is back: that echo enqueues
    nothing. A change by somebody else that arrives during the write (a spec edit) is routed once it ends."""
    setup(h, signed, stable=None)
    h.deliver_all()
    name = vname("1.0.0")
    real = h.kube.patch_status

    def patch_status(kind: str, namespace: str | None, n: str, status: dict[str, Any]) -> Any:
        out = real(kind, namespace, n, status)
        if kind == "ModelVersion" and n == name:
            if foreign:  # an edit lands right after our write, before its answer is back
                edited = dict(h.kube.get("ModelVersion", NS, name) or {})
                h.kube.put({**edited, "metadata": {**edited["metadata"],
                                                   "labels": {"team": "b"}}})
            while h.kube.pending:  # the watch is faster than the answer
                e = h.kube.pending.pop(0)
                if e.kind == "ModelVersion":
                    h.reconciler.router.on_version(e.type, e.obj)
        return out

    h.kube.patch_status = patch_status  # type: ignore[method-assign]
    h.queue.ready.clear()
    h.run(("ModelVersion", NS, name))
    h.kube.patch_status = real  # type: ignore[method-assign]
    assert (("ModelVersion", NS, name) in h.queue.ready) is foreign
    assert not h.ctx.status_writes
    if foreign:
        assert (h.ctx.cache.get("ModelVersion", NS, name) or {})["metadata"]["labels"] == {"team": "b"}


def test_unapproved_version_is_never_deployed(h: Harness, signed: Any) -> None:
    setup(h, signed, stable="1.1.0", require_approval=True, approve=("1.0.0",))
    h.settle(controllers=h.settle_deployments)
    assert deployments(h) == {}
    model = h.kube.get("Model", NS, "clf")
    assert condition(model, C.READY)["reason"] == R.NOT_APPROVED


def test_revocation_tears_down_and_falls_back(h: Harness, signed: Any) -> None:
    setup(h, signed, stable="1.1.0")
    h.settle(controllers=h.settle_deployments)
    assert list(deployments(h)) == [vname("1.1.0")]
    h.apply(revocation_manifest("leak", digests=[signed[1]["1.1.0"].digest.upper()]))  # case-folded
    h.settle(controllers=h.settle_deployments)
    assert list(deployments(h)) == [vname("1.2.0")]  # the newest eligible version
    rev = h.kube.get("Revocation", "", "leak")
    assert condition(rev, C.ENFORCED)["status"] == C.TRUE
    assert rev["status"]["workloadsTornDown"] == 1
    v = h.kube.get("ModelVersion", NS, vname("1.1.0"))
    assert condition(v, C.REVOKED)["status"] == C.TRUE
    assert h.kube.get("Model", NS, "clf")["status"]["stableVersion"] == "1.2.0"
    assert any(e["reason"] == R.TORN_DOWN for e in h.kube.recorded_events)


@pytest.mark.parametrize("stub", [True, False], ids=["relist-name-only", "watch-full-object"])
def test_a_lifted_revocation_rolls_back_even_when_its_deletion_comes_as_a_name(h: Harness, signed: Any,
                                                                              stub: bool) -> None:
    """A relist reports an object that vanished meanwhile by name only: the lift still re-checks what the
    Revocation covered (read from the cache), as the watch's full DELETED object does."""
    setup(h, signed, stable="1.1.0")
    h.settle(controllers=h.settle_deployments)
    h.apply(revocation_manifest("leak", digests=[signed[1]["1.1.0"].digest]))
    h.settle(controllers=h.settle_deployments)
    assert list(deployments(h)) == [vname("1.2.0")]
    h.delete("Revocation", "", "leak")
    if stub:
        h.kube.pending = [e for e in h.kube.pending if e.kind != "Revocation"]
        h.deliver(WatchEvent("DELETED", "Revocation", {"metadata": {"name": "leak"}}))
    h.settle(controllers=h.settle_deployments)
    assert list(deployments(h)) == [vname("1.1.0")]
    assert condition(h.kube.get("ModelVersion", NS, vname("1.1.0")), C.REVOKED)["status"] == C.FALSE


def test_third_party_workload_declaring_a_revoked_digest_is_torn_down(h: Harness, signed: Any) -> None:
    setup(h, signed, stable=None)
    h.settle()
    h.apply({"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "rogue", "namespace": "other", "labels": {L.SERVES_ARTIFACT: "true"},
                          "annotations": {A.ARTIFACT_DIGEST: f"  {signed[1]['1.0.0'].digest}  "}},
             "spec": {"replicas": 1}})
    h.apply(revocation_manifest("by-key", keyFingerprints=[signed[0].fingerprint]))
    h.settle()
    assert h.kube.get("Deployment", "other", "rogue") is None


def test_keyring_change_reverifies_only_the_versions_of_models_that_use_it(h: Harness, signed: Any) -> None:
    setup(h, signed, stable=None)
    h.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unrelated", "namespace": NS}, "data": {}})
    h.settle()
    h.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unrelated", "namespace": NS},
             "data": {"x": "y"}})
    h.deliver_all()
    assert h.queue.ready == {}  # nobody references it: nothing to do
    other = new_key()
    h.apply(keyring_manifest("keys", {"other.pub": other}, NS))  # the release key is gone
    h.deliver_all()
    assert set(h.queue.ready) == {("ModelVersion", NS, vname(v)) for v in ("1.0.0", "1.1.0", "1.2.0")}
    h.settle()
    assert condition(h.kube.get("ModelVersion", NS, vname("1.0.0")), C.SIGNATURE_VERIFIED)["status"] == C.FALSE


# --- the sequence test --------------------------------------------------------------------------------------
def served(h: Harness) -> dict[str, int]:
    return {d["metadata"]["name"]: int((d.get("status") or {}).get("readyReplicas") or 0)
            for d in h.kube.of_kind("Deployment", NS)}


def end_state(h: Harness) -> dict[str, Any]:
    model = h.kube.get("Model", NS, "clf") or {}
    return {
        "deployments": {n: (d["spec"]["replicas"], (d.get("status") or {}).get("readyReplicas"))
                        for n, d in deployments(h).items()},
        "model": {k: model["status"].get(k) for k in ("stableVersion", "canaryVersion", "serving")},
        "model_ready": (condition(model, C.READY)["status"], condition(model, C.READY)["reason"]),
        "versions": {v["metadata"]["name"]: sorted((c["type"], c["status"], c["reason"])
                                                     for c in v["status"]["conditions"])
                     for v in h.kube.of_kind("ModelVersion", NS)},
        "revocation": condition(h.kube.get("Revocation", "", "leak"), C.ENFORCED).get("status"),
    }


def run_sequence(seed: int, signed: Any) -> dict[str, Any]:
    """Roll out 1.0.0, promote 1.1.0 (make before break), then revoke 1.1.0: the fallback is 1.0.0, the newest
    eligible version (1.2.0 is unapproved). Each phase in a seeded random order of events, reconciles and pod
    readiness."""
    rng = random.Random(seed)
    h = Harness(approval_key=KEY_B)
    try:
        setup(h, signed, stable="1.0.0", require_approval=True, approve=("1.0.0", "1.1.0"))
        revoked: set[str] = set()
        enforced = False

        def check(phase: str) -> None:
            assert not h.cache.changed(), f"{phase}: cached bodies changed in place"  # (parts are shared)
            deps = deployments(h)
            # A revoked version is never served once its Revocation has been enforced; an unapproved one never.
            assert vname("1.2.0") not in deps, f"{phase}: unapproved version deployed"
            if enforced:
                assert not revoked & set(deps), f"{phase}: revoked version still deployed"
            if phase == "promote":
                assert sum(served(h).values()) > 0, f"{phase}: ready replicas dropped to zero"

        def controllers() -> bool:
            # Pods become ready one at a time, in a random Deployment.
            deps = [n for n, d in deployments(h).items()
                    if int((d.get("status") or {}).get("readyReplicas") or 0) != d["spec"]["replicas"]]
            return bool(deps) and h.kube.settle_deployment(NS, rng.choice(deps), step=1)

        def play(phase: str, steps: int = 4000) -> None:
            for _ in range(steps):
                if not h.step(rng, settle=controllers):
                    if not controllers():
                        break
                check(phase)
            h.settle(rng, controllers=controllers)
            check(phase)

        play("rollout")
        assert served(h) == {vname("1.0.0"): 2}
        promote(h, "1.1.0")
        play("promote")
        assert served(h) == {vname("1.1.0"): 2}
        h.apply(revocation_manifest("leak", digests=[signed[1]["1.1.0"].digest]))
        revoked.add(vname("1.1.0"))
        for _ in range(4000):  # until the Revocation has been reconciled once
            if not h.step(rng, settle=controllers) or condition(h.kube.get("Revocation", "", "leak"), C.ENFORCED):
                break
        enforced = bool(condition(h.kube.get("Revocation", "", "leak"), C.ENFORCED))
        play("revoke")
        enforced = True
        check("revoke")
        return end_state(h)
    finally:
        h.close()


def test_sequence_converges_to_the_same_end_state_for_every_seed(signed: Any) -> None:
    ends = [run_sequence(seed, signed) for seed in range(12)]
    first = ends[0]
    assert first["deployments"] == {vname("1.0.0"): (2, 2)}  # fell back to the newest eligible version
    assert first["model"]["stableVersion"] == "1.0.0"
    assert first["revocation"] == C.TRUE
    for seed, end in enumerate(ends):
        assert end == first, f"seed {seed} ended elsewhere"


# --- issue 10: every workload kind, late links, no resurrection by key ------------------------------------------
def workload(kind: str, name: str, digest: str, namespace: str = "third", owner: tuple[str, str] | None = None,
             api_version: str = "apps/v1") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {L.SERVES_ARTIFACT: "true"},
                            "annotations": {A.ARTIFACT_DIGEST: digest}}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "controller": True}]
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": {}}


def test_every_workload_kind_is_torn_down_at_its_top_owner(h: Harness, signed: Any) -> None:
    setup(h, signed, stable=None)
    d = signed[1]["1.0.0"].digest
    for obj in [
        workload("StatefulSet", "sts", d),
        workload("DaemonSet", "ds", d),
        workload("Pod", "bare", d, api_version="v1"),
        workload("CronJob", "cron", d, api_version="batch/v1"),
        workload("Job", "cron-1", d, owner=("CronJob", "cron"), api_version="batch/v1"),
        workload("Pod", "cron-1-x", d, owner=("Job", "cron-1"), api_version="v1"),
        workload("InferenceService", "isvc", d, api_version="serving.kserve.io/v1beta1"),
        workload("Pod", "innocent", "sha256:" + "0" * 64, api_version="v1"),
    ]:
        h.apply(obj)
    h.settle()
    h.apply(revocation_manifest("leak", digests=[d]))
    h.settle()
    left = {(o["kind"], o["metadata"]["name"]) for o in h.kube.objects.values() if o["metadata"].get("namespace") == "third"}
    # The Job and its Pod are the CronJob's: they go right after it (top-down: the CronJob first, so nothing is
    # recreated; the pod directly, not when the garbage collector gets round to it).
    assert left == {("Pod", "innocent")}
    deletes = [r[1] for r in h.kube.requests if r[0] == "delete"]
    assert sorted(deletes) == ["CronJob", "DaemonSet", "InferenceService", "Job", "Pod", "Pod", "StatefulSet"]
    assert deletes.index("CronJob") < deletes.index("Job")


def test_a_malformed_digest_is_a_warning_event_once(h: Harness, signed: Any) -> None:
    h.apply(workload("StatefulSet", "sts", "sha256:NOTHEX"))
    h.deliver_all()
    h.apply(workload("StatefulSet", "sts", "sha256:NOTHEX") | {"spec": {"replicas": 2}})
    h.deliver_all()
    h.loop.run_until_complete(h.ctx.events.drain())
    warned = [e for e in h.kube.recorded_events if e["reason"] == R.MALFORMED_DIGEST]
    assert len(warned) == 1 and warned[0]["kind"] == "StatefulSet" and warned[0]["type"] == C.WARNING


def test_late_link_a_new_version_ties_a_revoked_dataset_to_a_running_workload(h: Harness, signed: Any) -> None:
    key, models = signed
    dataset = "sha256:" + "da" * 32
    h.apply(keyring_manifest("keys", {"release.pub": key}, NS))
    h.apply(model_manifest("clf", ["keys"], namespace=NS))
    h.apply(workload("Deployment", "third-party", models["1.0.0"].digest))
    h.apply(revocation_manifest("poisoned", datasetDigests=[dataset]))
    h.settle()
    assert h.kube.get("Deployment", "third", "third-party") is not None  # nothing links it yet
    h.apply(bundle_configmap("sig", models["1.0.0"].bundle, NS))
    h.apply(version_manifest("clf-1-0-0", "clf", "1.0.0", models["1.0.0"], namespace=NS,
                             signature={"configMapRef": {"name": "sig", "key": "model.sig"}},
                             lineage={"datasets": [{"name": "crawl", "uri": "s3://d/crawl", "digest": dataset}]}))
    h.deliver_all()
    assert ("Revocation", "", "poisoned") in h.queue.ready  # routed at once, not at the next resync
    h.settle()
    assert h.kube.get("Deployment", "third", "third-party") is None


def test_an_artifact_revoked_by_key_stays_revoked_under_a_new_name(h: Harness, signed: Any) -> None:
    setup(h, signed, stable="1.0.0")
    h.settle(controllers=h.settle_deployments)
    h.apply(revocation_manifest("key-leak", keyFingerprints=[signed[0].fingerprint]))
    h.settle(controllers=h.settle_deployments)
    rev = h.kube.get("Revocation", "", "key-leak")
    assert signed[1]["1.0.0"].digest in rev["status"]["revokedDigests"]
    # The same artifact under a new name (its bundle still by that key, so it matches twice over; admission's
    # digest-only check is in test_domain_plans).
    h.delete("ModelVersion", NS, vname("1.0.0"))
    h.apply(version_manifest("clf-again", "clf", "1.0.1", signed[1]["1.0.0"], namespace=NS))
    h.settle(controllers=h.settle_deployments)
    again = h.kube.get("ModelVersion", NS, "clf-again")
    assert condition(again, C.REVOKED)["status"] == C.TRUE
    assert not deployments(h)


def test_a_model_that_trusts_a_ca_verifies_certificate_signatures_and_a_ca_revocation_covers_them(
        h: Harness, tmp_path: Path) -> None:
    from tests.unit.pki import Pki

    from modelhub.domain.signing import compute_manifest, sign_model_dir, subject_digest

    pki = Pki()
    signer = pki.signer()
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "weights.bin").write_bytes(b"w" * 100)
    bundle = sign_model_dir(model_dir, signer.key_pem, signing_certificate=signer.pem,
                            certificate_chain=[pki.intermediate.pem])
    digest = subject_digest(compute_manifest(model_dir))
    h.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ca", "namespace": NS},
             "data": {"root.pem": pki.root.pem.decode()}})
    model = model_manifest("clf", [], stable="1.0.0", namespace=NS)
    model["spec"]["trust"] = {"certificateAuthorities": [{"name": "ca"}]}
    h.apply(model)
    h.apply(bundle_configmap("sig", bundle, NS))
    h.apply(version_manifest("clf-1-0-0", "clf", "1.0.0", Signed(model_dir, digest, bundle), namespace=NS,
                             signature={"configMapRef": {"name": "sig", "key": "model.sig"}}))
    h.settle(controllers=h.settle_deployments)
    v = h.kube.get("ModelVersion", NS, "clf-1-0-0")
    assert condition(v, C.SIGNATURE_VERIFIED)["reason"] == R.VERIFIED, condition(v, C.SIGNATURE_VERIFIED)
    verified = v["status"]["verified"]
    assert "ml-release" in verified["certificateSubject"]
    assert verified["certificateFingerprint"] and verified["certificateAuthorityFingerprints"]
    assert list(deployments(h)) == ["clf-1-0-0"]
    # Revoking the CA (by its fingerprint) tears the version down.
    h.apply(revocation_manifest("ca-compromised", certificateAuthorities=[verified["certificateAuthorityFingerprints"][-1]]))
    h.settle(controllers=h.settle_deployments)
    assert deployments(h) == {}
    assert condition(h.kube.get("ModelVersion", NS, "clf-1-0-0"), C.REVOKED)["status"] == C.TRUE


def test_a_refused_artifact_shows_on_the_version_as_artifact_rejected(h: Harness, signed: Any) -> None:
    setup(h, signed, stable="1.0.0")
    h.kube.rejected[NS] = "weights.bin: sha256 mismatch (expected 1f2e…, got 9a8b…)"
    h.settle(controllers=h.settle_deployments)
    v = h.kube.get("ModelVersion", NS, vname("1.0.0"))
    avail = condition(v, C.AVAILABLE)
    assert (avail["status"], avail["reason"]) == (C.FALSE, R.ARTIFACT_REJECTED)
    assert "weights.bin: sha256 mismatch" in avail["message"]
    assert condition(v, C.READY)["reason"] == R.ARTIFACT_REJECTED
    assert any(e["reason"] == R.ARTIFACT_REJECTED and e["type"] == C.WARNING for e in h.kube.recorded_events)


def test_a_stalled_versions_pods_are_asked_at_most_every_30s_and_their_answer_is_kept(h: Harness,
                                                                                      signed: Any) -> None:
    setup(h, signed, stable="1.0.0")
    h.kube.rejected[NS] = "weights.bin: sha256 mismatch"
    h.settle(controllers=h.settle_deployments)
    key = ("ModelVersion", NS, vname("1.0.0"))

    def pod_lists() -> int:
        return h.kube.requests.count(("list", "Pod"))

    asked = pod_lists()
    assert asked >= 1
    for _ in range(3):  # looks again: the answer holds, no pod list, the status keeps saying why
        assert h.run(key) == pytest.approx(30.0, abs=0.01)
        assert condition(h.kube.get(*key), C.AVAILABLE)["reason"] == R.ARTIFACT_REJECTED
    assert pod_lists() == asked
    del h.kube.rejected[NS]
    h.now += dt.timedelta(seconds=31)  # the next ask is due: the loader's refusal is gone
    h.run(key)
    assert pod_lists() == asked + 1
    assert condition(h.kube.get(*key), C.AVAILABLE)["reason"] == R.PROGRESSING


def test_a_late_echo_of_a_torn_down_workload_is_not_torn_down_and_counted_again(h: Harness, signed: Any) -> None:
    setup(h, signed, stable="1.0.0", replicas=3)
    h.settle()  # rolled out; its pods not ready yet
    h.kube.settle_deployment(NS, vname("1.0.0"), step=1)  # status updates on their way (undelivered)
    h.kube.settle_deployment(NS, vname("1.0.0"), step=1)
    h.apply(revocation_manifest("leak", digests=[signed[1]["1.0.0"].digest]))
    rev_events = [e for e in h.kube.pending if e.kind == "Revocation"]
    for e in rev_events:
        h.kube.pending.remove(e)
        h.deliver(e)
    h.run(("Revocation", "", "leak"))  # tears down before the Deployment's older events arrive
    h.settle()  # ... which arrive now, then its DELETED
    rev = h.kube.get("Revocation", "", "leak")
    assert rev["status"]["workloadsTornDown"] == 1
    assert [r for r in h.kube.requests if r == ("delete", "Deployment")] == [("delete", "Deployment")]


# --- what the operator computed decides, and bundles never hold a worker ----------------------------------------
def test_a_forged_approved_condition_serves_nothing(h: Harness, signed: Any) -> None:
    setup(h, signed, stable="1.1.0", require_approval=True, approve=("1.0.0",))
    h.settle(controllers=h.settle_deployments)
    assert deployments(h) == {}
    # Somebody with write access to modelversions/status marks 1.1.0 approved; the Model reconciles before the
    # version's own reconcile puts the truth back.
    v = h.kube.get("ModelVersion", NS, vname("1.1.0"))
    forged = [c for c in v["status"]["conditions"] if c["type"] != C.APPROVED] + [
        {"type": C.APPROVED, "status": C.TRUE, "reason": R.APPROVED, "message": "trust me",
         "lastTransitionTime": "2026-12-01T12:00:00Z", "observedGeneration": v["metadata"]["generation"]}]
    h.kube.patch_status("ModelVersion", NS, vname("1.1.0"), {**v["status"], "conditions": forged})
    h.deliver_all()
    h.run(("Model", NS, "clf"))
    assert deployments(h) == {}
    assert condition(h.kube.get("Model", NS, "clf"), C.READY)["reason"] == R.NOT_APPROVED


def test_a_model_waits_for_versions_this_operator_has_not_verified(h: Harness, signed: Any) -> None:
    setup(h, signed, stable="1.0.0")
    h.deliver_all()
    # The Model reconciles first (as just after a start): it plans nothing and asks for the versions.
    assert h.run(("Model", NS, "clf")) is not None
    assert deployments(h) == {}
    assert ("ModelVersion", NS, vname("1.0.0")) in h.queue.ready
    h.settle(controllers=h.settle_deployments)
    assert list(deployments(h)) == [vname("1.0.0")]


class _Later:
    """A bundle source whose fetches land when the test says so."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.waiting: dict[Any, tuple[str, Any]] = {}
        self.done: dict[Any, Any] = {}

    def request(self, key: Any, uri: str, *, credentials: Any = None, on_done: Any = None,
                resolve: bool = False, ca_pem: bytes | None = None) -> Any:
        if key in self.done:
            return self.done[key]
        self.waiting[key] = (uri, on_done)
        return None

    def land(self) -> None:
        for key, (uri, on_done) in list(self.waiting.items()):
            self.done[key] = self.inner.request(key, uri)
            del self.waiting[key]
            on_done()

    def cancel(self, key: Any) -> None:
        self.waiting.pop(key, None)
        self.done.pop(key, None)


def test_a_fetch_in_flight_writes_nothing_and_its_end_enqueues_the_version(h: Harness, signed: Any,
                                                                           tmp_path: Path) -> None:
    key, models = signed
    later = _Later(h.ctx.bundles)
    h.ctx.bundles = later
    h.apply(keyring_manifest("keys", {"release.pub": key}, NS))
    h.apply(model_manifest("clf", ["keys"], namespace=NS))
    h.apply(version_manifest("v1", "clf", "1.0.0", models["1.0.0"], namespace=NS))  # model.sig beside (file://)
    h.deliver_all()
    before = len(h.kube.requests)
    assert h.run(("ModelVersion", NS, "v1")) is None
    assert [r for r in h.kube.requests[before:] if r[0] == "patch-status"] == []
    assert (NS, "v1") in later.waiting
    later.land()
    assert ("ModelVersion", NS, "v1") in h.queue.ready
    h.run(("ModelVersion", NS, "v1"))
    assert condition(h.kube.get("ModelVersion", NS, "v1"), C.SIGNATURE_VERIFIED)["reason"] == R.VERIFIED
    h.kube.remove("ModelVersion", NS, "v1")
    h.deliver_all()
    h.run(("ModelVersion", NS, "v1"))
    assert (NS, "v1") not in later.done and (NS, "v1") not in h.ctx.verdicts  # forgotten with the object


def test_a_bundle_outside_the_operators_file_roots_is_refused_without_quoting_it(signed: Any,
                                                                                 tmp_path: Path) -> None:
    from tests.support.harness import InlineBundles

    from modelhub.adapters.bundles import BundleSettings

    key, models = signed
    secret = tmp_path / "private" / "shadow"
    secret.parent.mkdir()
    secret.write_text("root:SECRET-HASH:19000:0:99999:7:::\n")
    h = Harness(approval_key=KEY_B)
    h.ctx.bundles = InlineBundles(BundleSettings(file_roots=(str(tmp_path / "allowed"),)))
    try:
        h.apply(keyring_manifest("keys", {"release.pub": key}, NS))
        h.apply(model_manifest("clf", ["keys"], namespace=NS))
        h.apply(version_manifest("v1", "clf", "1.0.0", models["1.0.0"], namespace=NS,
                                 signature={"uri": f"file://{secret}"}))
        h.deliver_all()
        h.run(("ModelVersion", NS, "v1"))
        c = condition(h.kube.get("ModelVersion", NS, "v1"), C.SIGNATURE_VERIFIED)
        assert (c["status"], c["reason"]) == (C.FALSE, R.BUNDLE_REFUSED)
        assert "SECRET" not in c["message"] and "root:" not in c["message"]
    finally:
        h.close()


def test_s3_credentials_come_from_the_versions_namespace_and_a_forbidden_secret_says_so(h: Harness,
                                                                                       signed: Any) -> None:
    key, models = signed
    h.apply(keyring_manifest("keys", {"release.pub": key}, NS))
    h.apply(model_manifest("clf", ["keys"], namespace=NS))
    mv = version_manifest("v1", "clf", "1.0.0", models["1.0.0"], namespace=NS)
    mv["spec"]["artifact"].update(uri="s3://models/clf/1.0.0", credentialsSecretRef={"name": "s3"})
    h.apply(mv)
    for secret, reason in (
        (None, R.CREDENTIALS_NOT_FOUND),
        ({"data": {"AWS_ACCESS_KEY_ID": "QUtJQQ=="}}, R.INVALID_CREDENTIALS),
        ({"data": {}, "forbidden": True}, R.CREDENTIALS_FORBIDDEN),
    ):
        h.kube.objects.pop(("Secret", NS, "s3"), None)
        if secret is not None:
            h.kube.objects[("Secret", NS, "s3")] = {"metadata": {"name": "s3", "namespace": NS}, **secret}
        h.deliver_all()
        h.run(("ModelVersion", NS, "v1"))
        assert condition(h.kube.get("ModelVersion", NS, "v1"), C.SIGNATURE_VERIFIED)["reason"] == reason


def test_an_https_bundle_is_fetched_trusting_only_the_namespace_store_ca(h: Harness, signed: Any,
                                                                        tmp_path: Path) -> None:
    from tests.unit.store_servers import make_tls_files, serve_directory

    key, models = signed
    tls, other = make_tls_files(tmp_path / "tls"), make_tls_files(tmp_path / "other")
    h.apply(keyring_manifest("keys", {"release.pub": key}, NS))
    h.apply(model_manifest("clf", ["keys"], namespace=NS))
    with serve_directory(models["1.0.0"].path, tls=tls) as served:
        mv = version_manifest("v1", "clf", "1.0.0", models["1.0.0"], namespace=NS)
        mv["spec"]["artifact"].update(uri=f"{served.url}/", caConfigMapRef={"name": "store-ca"})
        h.apply(mv)
        for ca, reason in ((None, R.STORE_CA_NOT_FOUND), (other.ca, R.BUNDLE_UNREACHABLE), (tls.ca, R.VERIFIED)):
            if ca is not None:
                h.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "store-ca", "namespace": NS},
                         "data": {"ca.crt": ca.read_text()}})
            h.deliver_all()
            h.run(("ModelVersion", NS, "v1"))
            c = condition(h.kube.get("ModelVersion", NS, "v1"), C.SIGNATURE_VERIFIED)
            assert c["reason"] == reason, c
        assert "/model.sig" in served.requests
