"""The decisions moved out of the handlers, as pure functions with real inputs (parametrized)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from modelhub.domain import admission, requeue
from modelhub.domain.deployments import Write, covers, decide_write, plan_handover, service_needs_apply
from modelhub.domain.events import Transition, transitions, version_events
from modelhub.domain.status import status_patch
from modelhub.domain.versions import Verification, WorkloadState, plan_version
from modelhub.vocab import annotations as A
from modelhub.vocab import conditions as C
from modelhub.vocab import reasons as R

NOW = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.UTC)


def dep(name: str, *, gen: int = 1, replicas: int = 2, ready: int = 0, image: str = "srv:1",
        version: str | None = None, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "generation": gen,
                            "labels": {"app": "x"}, "annotations": {A.MODEL_VERSION: version or name}}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-01T12:00:00Z"
    return {"metadata": meta, "spec": {"replicas": replicas, "template": {"spec": {"containers": [
        {"name": "server", "image": image, "ports": [{"containerPort": 8080}]}]}}},
        "status": {"readyReplicas": ready}}


def desired(name: str, replicas: int = 2, image: str = "srv:1") -> dict[str, Any]:
    d = dep(name, replicas=replicas, image=image)
    d.pop("status")
    d["metadata"].pop("generation")
    return d


# --- covers / decide_write ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("live", "want", "expected"), [
    ({"a": 1, "b": 2}, {"a": 1}, True),  # server defaults add fields
    ({"a": 1}, {"a": 2}, False),
    ({}, {"initialDelaySeconds": 0}, True),  # a zero value may be omitted
    ({}, {"x": []}, True),
    ({}, {"x": [1]}, False),
    ([{"a": 1, "d": 0}], [{"a": 1}], True),
    ([{"a": 1}, {"a": 2}], [{"a": 1}], False),  # lists keep their length
    ([{"a": 2}, {"a": 1}], [{"a": 1}, {"a": 2}], False),  # ... and order
    ("x", {"a": 1}, False),
])
def test_covers(live: Any, want: Any, expected: bool) -> None:
    assert covers(live, want) is expected


@pytest.mark.parametrize(("live", "recorded", "write", "adopt"), [
    (None, None, Write.APPLY, None),  # missing: create
    (dep("v1", gen=3, deleting=True), 3, Write.APPLY, None),  # being deleted: apply (recreate)
    (dep("v1", gen=3), 3, Write.SKIP, None),  # ours as we wrote it
    (dep("v1", gen=3), None, Write.SKIP, 3),  # after a restart: adopt its generation
    (dep("v1", gen=4), 3, Write.REPLACE, None),  # someone edited the spec
    (dep("v1", gen=3, replicas=5), 3, Write.APPLY, None),  # our fields differ (e.g. after a Model change)
    (dep("v1", gen=3, image="srv:2"), 3, Write.APPLY, None),
])
def test_decide_write(live: dict[str, Any] | None, recorded: int | None, write: Write, adopt: int | None) -> None:
    d = decide_write(live, desired("v1"), recorded)
    assert (d.write, d.adopt_generation) == (write, adopt)


# --- hand-over -----------------------------------------------------------------------------------------------
def version(name: str, unschedulable: bool = False) -> dict[str, Any]:
    conds = [{"type": C.AVAILABLE, "status": C.FALSE, "reason": R.UNSCHEDULABLE}] if unschedulable else []
    return {"metadata": {"name": name}, "status": {"conditions": conds}}


@pytest.mark.parametrize(("new_ready", "old_ready", "may_serve", "unschedulable", "delete", "keep", "handing"), [
    (0, 2, True, False, (), ("old",), True),  # successor not ready: the old one keeps serving
    (2, 2, True, False, ("old",), (), False),  # successor ready: the old one goes
    (1, 2, True, False, (), ("old",), True),  # partly ready is not arrived
    (0, 2, False, False, ("old",), (), True),  # revoked/unapproved old one goes at once
    (0, 0, True, False, ("old",), (), True),  # an old one that serves nothing goes at once
    (0, 2, True, True, ("old",), (), False),  # successor cannot be placed: do not wait forever
])
def test_plan_handover(new_ready: int, old_ready: int, may_serve: bool, unschedulable: bool,
                       delete: tuple[str, ...], keep: tuple[str, ...], handing: bool) -> None:
    live = [dep("new", ready=new_ready), dep("old", ready=old_ready)]
    versions = {"new": version("new", unschedulable), "old": version("old")}
    plan = plan_handover([desired("new")], live, versions, lambda v: may_serve)
    assert (plan.delete, plan.keep, plan.handing_over) == (delete, keep, handing)


def test_plan_handover_with_nothing_wanted_deletes_everything() -> None:
    plan = plan_handover([], [dep("a", ready=2), dep("b", ready=1)], {}, lambda v: True)
    assert plan.delete == ("a", "b") and not plan.handing_over


@pytest.mark.parametrize(("written", "watched", "cached", "changed", "expected"), [
    (False, True, True, False, False),
    (True, True, True, False, True),
    (False, False, True, False, True),
    (False, True, False, False, True),
    (False, True, True, True, True),
])
def test_service_needs_apply(written: bool, watched: bool, cached: bool, changed: bool, expected: bool) -> None:
    assert service_needs_apply(any_written=written, services_watched=watched, cached=cached,
                               model_changed=changed) is expected


# --- Events ---------------------------------------------------------------------------------------------------
def cond(t: str, s: str, r: str) -> dict[str, Any]:
    return {"type": t, "status": s, "reason": r, "message": f"{t} {r}"}


def test_transitions_are_structured() -> None:
    old = [cond(C.READY, C.FALSE, R.NOT_PROMOTED)]
    new = [cond(C.READY, C.TRUE, R.SERVING), cond(C.REVOKED, C.FALSE, R.NOT_REVOKED)]
    assert transitions(old, new) == [
        Transition(C.READY, C.TRUE, R.SERVING, "Ready Serving", first=False),
        Transition(C.REVOKED, C.FALSE, R.NOT_REVOKED, "Revoked NotRevoked", first=True),
    ]


@pytest.mark.parametrize(("old", "new", "expected"), [
    # a new version: its quiet first states are no Event
    (None, [cond(C.REVOKED, C.FALSE, R.NOT_REVOKED), cond(C.APPROVED, C.TRUE, R.NOT_REQUIRED),
            cond(C.SIGNATURE_VERIFIED, C.TRUE, R.VERIFIED)], [(C.NORMAL, R.VERIFIED)]),
    # Available turning with Ready is said once (by Ready)
    ([cond(C.AVAILABLE, C.FALSE, R.PROGRESSING), cond(C.READY, C.FALSE, R.PROGRESSING)],
     [cond(C.AVAILABLE, C.TRUE, R.MINIMUM_REPLICAS_AVAILABLE), cond(C.READY, C.TRUE, R.SERVING)],
     [(C.NORMAL, R.SERVING)]),
    # revoked is a Warning; a refused signature is a Warning; not promoted is not
    ([cond(C.REVOKED, C.FALSE, R.NOT_REVOKED)], [cond(C.REVOKED, C.TRUE, R.REVOKED)], [(C.WARNING, R.REVOKED)]),
    ([], [cond(C.SIGNATURE_VERIFIED, C.FALSE, R.DIGEST_MISMATCH)], [(C.WARNING, R.DIGEST_MISMATCH)]),
    ([cond(C.READY, C.TRUE, R.SERVING)], [cond(C.READY, C.FALSE, R.NOT_PROMOTED)], [(C.NORMAL, R.NOT_PROMOTED)]),
    # nothing changed
    ([cond(C.READY, C.TRUE, R.SERVING)], [cond(C.READY, C.TRUE, R.SERVING)], []),
    # a new version that no Model promotes yet says only that it verified
    (None, [cond(C.SIGNATURE_VERIFIED, C.TRUE, R.VERIFIED), cond(C.AVAILABLE, C.FALSE, R.NOT_PROMOTED),
            cond(C.READY, C.FALSE, R.NOT_PROMOTED)], [(C.NORMAL, R.VERIFIED)]),
    # pods coming up are no news; pods that cannot come up are
    ([cond(C.READY, C.FALSE, R.NOT_PROMOTED)], [cond(C.AVAILABLE, C.FALSE, R.PROGRESSING),
                                                cond(C.READY, C.FALSE, R.PROGRESSING)], []),
    ([cond(C.READY, C.FALSE, R.PROGRESSING)], [cond(C.READY, C.FALSE, R.UNSCHEDULABLE)],
     [(C.WARNING, R.UNSCHEDULABLE)]),
    ([cond(C.READY, C.TRUE, R.SERVING)], [cond(C.READY, C.FALSE, R.PROGRESSING)], [(C.WARNING, R.PROGRESSING)]),
    # revoked while serving: one Warning, not three (Ready and Available turn for the same reason)
    ([cond(C.REVOKED, C.FALSE, R.NOT_REVOKED), cond(C.AVAILABLE, C.TRUE, R.MINIMUM_REPLICAS_AVAILABLE),
      cond(C.READY, C.TRUE, R.SERVING)],
     [cond(C.REVOKED, C.TRUE, R.REVOKED), cond(C.AVAILABLE, C.FALSE, R.REVOKED), cond(C.READY, C.FALSE, R.REVOKED)],
     [(C.WARNING, R.REVOKED)]),
    # the Revocation lifted: that is the news; not promoted again (yet) is not
    ([cond(C.REVOKED, C.TRUE, R.REVOKED), cond(C.READY, C.FALSE, R.REVOKED)],
     [cond(C.REVOKED, C.FALSE, R.NOT_REVOKED), cond(C.READY, C.FALSE, R.NOT_PROMOTED)],
     [(C.NORMAL, R.NOT_REVOKED)]),
    # a signature refused while serving: the refusal says it
    ([cond(C.SIGNATURE_VERIFIED, C.TRUE, R.VERIFIED), cond(C.READY, C.TRUE, R.SERVING)],
     [cond(C.SIGNATURE_VERIFIED, C.FALSE, R.UNTRUSTED_KEY), cond(C.READY, C.FALSE, R.UNTRUSTED_KEY)],
     [(C.WARNING, R.UNTRUSTED_KEY)]),
])
def test_version_events(old: Any, new: Any, expected: list[tuple[str, str]]) -> None:
    assert [(e.type, e.reason) for e in version_events(old, new)] == expected


# --- requeue ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("since", "expected"), [
    (None, 5.0), ("2026-12-01T11:59:58Z", 5.0), ("2026-12-01T11:59:00Z", 30.0), ("2026-12-01T10:00:00Z", 300.0),
    ("garbage", 5.0), ("2026-12-01T13:00:00Z", 5.0),  # a clock skewed into the future
])
def test_bundle_retry_delay(since: str | None, expected: float) -> None:
    assert requeue.bundle_retry_delay(since, NOW) == expected


@pytest.mark.parametrize(("attempt", "expected"), [(1, 0.5), (2, 1.0), (5, 8.0), (20, 60.0), (0, 0.5)])
def test_failure_backoff(attempt: int, expected: float) -> None:
    assert requeue.failure_backoff(attempt) == expected


def test_plan_version_requeues_a_store_bundle_with_backoff_and_settling_workloads() -> None:
    obj = {"metadata": {"name": "v", "namespace": "ns", "generation": 1}, "spec": {}, "status": {"conditions": [
        {"type": C.SIGNATURE_VERIFIED, "status": C.FALSE, "reason": R.BUNDLE_UNREACHABLE, "message": "",
         "lastTransitionTime": "2026-12-01T11:58:00Z"}]}}
    unreachable = Verification(False, R.BUNDLE_UNREACHABLE, "down", retry=True)
    plan = plan_version(obj, now=NOW, verification=unreachable, require_approval=False, approval=None,
                        revoked=None, workload=WorkloadState())
    assert plan.requeue == 60.0  # half the 2 minutes it has failed
    assert not plan.conditions_changed or plan.status["conditions"][0]["reason"] == R.BUNDLE_UNREACHABLE
    ok = Verification(True, R.VERIFIED, "ok", digest="sha256:" + "a" * 64, key_fingerprint="f", key_name="k", files=1)
    plan = plan_version(obj, now=NOW, verification=ok, require_approval=False, approval=None, revoked=None,
                        workload=WorkloadState(deployment="v", replicas=2, ready_replicas=1))
    assert plan.requeue == requeue.WORKLOAD_SETTLING  # when its pods are asked is unknown: soon
    plan = plan_version(obj, now=NOW, verification=ok, require_approval=False, approval=None, revoked=None,
                        workload=WorkloadState(deployment="v", replicas=2, ready_replicas=1, look_again=25.0))
    assert plan.requeue == 25.0  # readiness comes as Deployment events; only the pods' why needs a look again
    plan = plan_version(obj, now=NOW, verification=ok, require_approval=False, approval=None, revoked=None,
                        workload=WorkloadState(deployment="v", replicas=2, ready_replicas=2, look_again=25.0))
    assert plan.requeue is None  # serving: nothing to look again for
    assert plan.conditions_changed
    assert [e.reason for e in plan.events][:1] == [R.VERIFIED]


OK = Verification(True, R.VERIFIED, "ok", digest="sha256:" + "a" * 64, key_fingerprint="f", key_name="k", files=1)
WRITTEN = {"conditions": [{"type": C.SIGNATURE_VERIFIED, "status": C.TRUE, "reason": R.VERIFIED, "message": "ok",
                           "lastTransitionTime": "2026-12-01T11:59:59Z"}]}


@pytest.mark.parametrize(("created", "status", "kw", "held_for"), [
    ("2026-12-01T12:00:00Z", {}, {}, 10.0),  # just created: its Model decides first
    ("2026-12-01T11:59:58Z", {}, {}, 8.0),  # the hold ends ten seconds after creation at the latest
    ("2026-12-01T11:59:50Z", {}, {}, None),  # over: its status is written now (NotPromoted)
    ("2026-12-01T12:00:00Z", {}, {"decided": True}, None),  # its Model has decided: written now
    (None, {}, {}, None),  # no creation time: no hold
    ("2026-12-01T12:00:00Z", WRITTEN, {}, None),  # a status was written already: only the first is held
    ("2026-12-01T12:00:00Z", {}, {"workload": WorkloadState(deployment="v", replicas=1)}, None),  # deployed
    ("2026-12-01T12:00:00Z", {}, {"tagged": True}, None),  # its Model deploys from status.resolvedUri
    ("2026-12-01T12:00:00Z", {}, {"verification": Verification(False, R.UNTRUSTED_KEY, "no")}, None),
    ("2026-12-01T12:00:00Z", {}, {"require_approval": True}, None),  # awaiting approval: told at once
])
def test_the_first_status_of_a_new_version_is_held_until_its_model_decides(
        created: str | None, status: dict[str, Any], kw: dict[str, Any], held_for: float | None) -> None:
    meta: dict[str, Any] = {"name": "v", "namespace": "ns", "generation": 1}
    if created:
        meta["creationTimestamp"] = created
    obj = {"metadata": meta, "spec": {}, "status": status}
    args: dict[str, Any] = {"verification": OK, "require_approval": False, "approval": None, "revoked": None,
                            "workload": WorkloadState(), **kw}
    plan = plan_version(obj, now=NOW, **args)
    assert plan.held == (held_for is not None)
    if held_for is not None:
        assert plan.requeue == held_for
        assert plan.events == [] and plan.status == status and not plan.conditions_changed
    else:
        assert plan.status["conditions"] and plan.conditions_changed == (plan.status["conditions"] != status.get(
            "conditions"))


# --- status patches --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("old", "new", "patch"), [
    ({"a": 1}, {"a": 1}, None),
    ({"a": 1}, {"a": 1, "b": None}, None),
    ({"a": 1, "b": 2}, {"a": 1}, {"a": 1, "b": None}),
    ({}, {"a": [1]}, {"a": [1]}),
])
def test_status_patch(old: dict[str, Any], new: dict[str, Any], patch: dict[str, Any] | None) -> None:
    assert status_patch(old, new) == patch


# --- admission -------------------------------------------------------------------------------------------
DIGEST = "sha256:" + "b" * 64


def mv(version: str = "1.0.0", digest: str = DIGEST) -> dict[str, Any]:
    return {"metadata": {"name": "m-1", "namespace": "ns"},
            "spec": {"model": "m", "version": version, "artifact": {"digest": digest}}}


def rev(**match: Any) -> dict[str, Any]:
    return {"metadata": {"name": "r"}, "spec": {"reason": "leak", "match": match}}


@pytest.mark.parametrize(("obj", "old", "op", "revs", "refused"), [
    (mv(), None, "CREATE", [rev(digests=[DIGEST.upper()])], True),
    (mv(), None, "CREATE", [rev(digests=["sha256:" + "c" * 64])], False),
    (mv(), mv(), "UPDATE", [rev(digests=[DIGEST])], False),  # metadata-only update of an existing version
    (mv("1.2.0"), None, "CREATE", [rev(models=[{"name": "m", "versions": ">=1.2.0"}])], True),
    (mv("1.1.0"), None, "CREATE", [rev(models=[{"name": "m", "versions": ">=1.2.0"}])], False),
    # matched earlier by key through another version: the artifact is refused under any name (no key known yet)
    (mv(), None, "CREATE", [{**rev(keyFingerprints=["f" * 64]), "status": {"revokedDigests": [DIGEST]}}], True),
    (mv(), None, "CREATE", [{**rev(keyFingerprints=["f" * 64]), "status": {"revokedDigests": []}}], False),
])
def test_refuse_version(obj: Any, old: Any, op: str, revs: Any, refused: bool) -> None:
    why = admission.refuse_version(obj, old, op, revs)
    assert bool(why) is refused
    if why:
        assert "Revocation r" in why


def model(stable: str | None) -> dict[str, Any]:
    return {"metadata": {"name": "m", "namespace": "ns"}, "spec": {"promotion": {"stable": stable} if stable else {}}}


@pytest.mark.parametrize(("new", "old", "versions", "revs", "refused"), [
    (model("1.0.0"), model(None), [mv("1.0.0")], [rev(digests=[DIGEST])], True),
    (model("1.0.0"), model("1.0.0"), [mv("1.0.0")], [rev(digests=[DIGEST])], False),  # not newly promoted
    (model("1.3.0"), model(None), [], [rev(models=[{"name": "m", "versions": ">=1.2.0"}])], True),  # no MV yet
    (model("1.0.0"), model(None), [mv("1.0.0")], [], False),
])
def test_refuse_promotion(new: Any, old: Any, versions: Any, revs: Any, refused: bool) -> None:
    assert bool(admission.refuse_promotion(new, old, versions, revs)) is refused
