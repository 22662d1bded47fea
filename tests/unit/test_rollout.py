"""Eligibility of versions and the rollout plan: promotion, canary, rollback, revocation fallback, history."""

from __future__ import annotations

import copy
import hashlib

import pytest

from modelhub.api.conditions import get_condition
from modelhub.domain.rollout import RolloutPlan, Workload, eligible, plan_rollout

T0 = "2024-05-01T12:00:00Z"
T1 = "2024-05-01T12:05:00Z"
T2 = "2024-05-01T12:10:00Z"


def digest(version: str) -> str:
    return "sha256:" + hashlib.sha256(version.encode()).hexdigest()


def cond(type_: str, status: str, reason: str = "Checked", message: str = "") -> dict:
    return {"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": T0}


def mv(
    version: str,
    *,
    verified: bool = True,
    approved: bool = True,
    revoked: bool = False,
    model: str = "sentiment",
    name: str | None = None,
    serving: dict | None = None,
) -> dict:
    conditions = [
        cond(
            "SignatureVerified",
            "True" if verified else "False",
            "Verified" if verified else "SignatureMismatch",
        ),
        cond("Approved", "True" if approved else "False", "Approved" if approved else "Pending"),
    ]
    if revoked:
        conditions.append(cond("Revoked", "True", "Revoked", "revocation cve-2024-1 matched its digest"))
    spec: dict = {
        "model": model,
        "version": version,
        "artifact": {"uri": f"s3://models/{model}/{version}/", "digest": digest(version)},
    }
    if serving:
        spec["serving"] = serving
    return {
        "apiVersion": "modelhub.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {
            "name": name or f"{model}-{version.replace('.', '-').replace('+', '-')}",
            "namespace": "ml",
            "uid": f"uid-{version}",
            "generation": 1,
        },
        "spec": spec,
        "status": {"conditions": conditions, "verified": {"digest": digest(version)} if verified else {}},
    }


def model(
    stable: str | None = "1.0.0",
    *,
    canary: tuple[str, int] | None = None,
    on_revocation: str | None = None,
    require_approval: bool = True,
    replicas: int = 3,
    status: dict | None = None,
) -> dict:
    promotion: dict = {}
    if stable:
        promotion["stable"] = stable
    if canary:
        promotion["canary"] = {"version": canary[0], "weight": canary[1]}
    if on_revocation:
        promotion["onRevocation"] = on_revocation
    return {
        "apiVersion": "modelhub.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "sentiment", "namespace": "ml", "uid": "model-uid", "generation": 4},
        "spec": {
            "trust": {"keys": [{"name": "keys"}], "requireApproval": require_approval},
            "serving": {"runtime": {"image": "server:1"}, "replicas": replicas},
            "promotion": promotion,
        },
        "status": status or {},
    }


def served(
    stable: str | None, canary: str | None = None, weight: int = 0, history: list | None = None
) -> dict:
    """A status as the handler writes it after applying a plan."""
    status: dict = {"canaryWeight": weight if canary else 0, "history": history or []}
    if stable:
        status["stableVersion"] = stable
    if canary:
        status["canaryVersion"] = canary
    return status


def applied(m: dict, plan: RolloutPlan) -> dict:
    """The Model after the handler wrote the plan into its status."""
    out = copy.deepcopy(m)
    out["status"] = {
        **served(plan.stable_version, plan.canary_version, plan.canary_weight, plan.history),
        "conditions": plan.conditions,
    }
    return out


def ready(plan: RolloutPlan) -> dict:
    c = get_condition(plan.conditions, "Ready")
    assert c is not None
    return c


def reasons(plan: RolloutPlan) -> list[str]:
    return [r for _, r, _ in plan.events]


# --- eligible ---------------------------------------------------------------------------------------------
def test_eligible_version():
    ok, reason, message = eligible(model(), mv("1.0.0"))
    assert (ok, reason) == (True, "Eligible")
    assert "1.0.0" in message


def test_not_verified():
    assert eligible(model(), mv("1.0.0", verified=False))[:2] == (False, "NotVerified")
    no_conditions = mv("1.0.0")
    no_conditions["status"] = {}
    ok, reason, message = eligible(model(), no_conditions)
    assert (ok, reason) == (False, "NotVerified") and "no condition yet" in message


def test_verified_digest_must_be_the_artifact_digest():
    v = mv("1.0.0")
    v["status"]["verified"]["digest"] = "sha256:" + "0" * 64
    ok, reason, message = eligible(model(), v)
    assert (ok, reason) == (False, "NotVerified") and "verified digest" in message


def test_approval_only_when_required():
    assert eligible(model(require_approval=True), mv("1.0.0", approved=False))[:2] == (False, "NotApproved")
    assert eligible(model(require_approval=False), mv("1.0.0", approved=False))[:2] == (True, "Eligible")


def test_revoked_wins_over_other_reasons():
    ok, reason, message = eligible(model(), mv("1.0.0", verified=False, revoked=True))
    assert (ok, reason) == (False, "Revoked")
    assert "cve-2024-1" in message


def test_wrong_model_and_deleting():
    assert eligible(model(), mv("1.0.0", model="other"))[:2] == (False, "WrongModel")
    other_ns = mv("1.0.0")
    other_ns["metadata"]["namespace"] = "prod"
    assert eligible(model(), other_ns)[:2] == (False, "WrongModel")
    deleting = mv("1.0.0")
    deleting["metadata"]["deletionTimestamp"] = T0
    assert eligible(model(), deleting)[:2] == (False, "Deleting")


# --- plan_rollout: the happy paths ------------------------------------------------------------------------
def test_simple_stable():
    plan = plan_rollout(model("1.0.0"), [mv("1.0.0"), mv("0.9.0")], T0)
    assert plan.workloads == (Workload("sentiment-1-0-0", "1.0.0", "stable", 3),)
    assert (plan.stable_version, plan.canary_version, plan.canary_weight) == ("1.0.0", None, 0)
    r = ready(plan)
    assert (r["status"], r["reason"], r["observedGeneration"], r["lastTransitionTime"]) == (
        "True",
        "Serving",
        4,
        T0,
    )
    assert get_condition(plan.conditions, "Progressing")["reason"] == "NoCanary"
    assert plan.history == [{"at": T0, "stable": "1.0.0", "canaryWeight": 0, "reason": "Promoted"}]
    assert plan.events == [("Normal", "Promoted", "promoted 1.0.0 (sentiment-1-0-0) to stable")]


def test_canary_20_percent_of_5():
    m = model("1.0.0", canary=("1.1.0", 20), replicas=5, status=served("1.0.0"))
    plan = plan_rollout(m, [mv("1.0.0"), mv("1.1.0")], T1)
    assert plan.workloads == (
        Workload("sentiment-1-0-0", "1.0.0", "stable", 4),
        Workload("sentiment-1-1-0", "1.1.0", "canary", 1),
    )
    assert (plan.stable_version, plan.canary_version, plan.canary_weight) == ("1.0.0", "1.1.0", 20)
    assert ready(plan)["status"] == "True"
    progressing = get_condition(plan.conditions, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "CanaryActive")
    assert reasons(plan) == ["CanaryStarted"]
    assert plan.history[-1] == {
        "at": T1,
        "stable": "1.0.0",
        "canary": "1.1.0",
        "canaryWeight": 20,
        "reason": "CanaryStarted",
    }


def test_canary_weight_change_and_canary_promotion():
    versions = [mv("1.0.0"), mv("1.1.0")]
    m = model("1.0.0", canary=("1.1.0", 50), replicas=4, status=served("1.0.0", "1.1.0", 20))
    plan = plan_rollout(m, versions, T1)
    assert [w.replicas for w in plan.workloads] == [2, 2]
    assert reasons(plan) == ["CanaryWeightChanged"]
    assert plan.history[-1]["reason"] == "CanaryWeightChanged"

    promoted = model("1.1.0", replicas=4, status=served("1.0.0", "1.1.0", 50))
    plan = plan_rollout(promoted, versions, T2)
    assert plan.workloads == (Workload("sentiment-1-1-0", "1.1.0", "stable", 4),)
    assert reasons(plan) == ["Promoted"]  # no CanaryStopped: the canary became the stable
    assert plan.history[-1] == {"at": T2, "stable": "1.1.0", "canaryWeight": 0, "reason": "Promoted"}


def test_canary_stopped():
    m = model("1.0.0", status=served("1.0.0", "1.1.0", 20))
    plan = plan_rollout(m, [mv("1.0.0"), mv("1.1.0")], T1)
    assert reasons(plan) == ["CanaryStopped"]
    assert [w.role for w in plan.workloads] == ["stable"]


def test_canary_weight_100_keeps_a_stable_deployment_at_zero():
    m = model("1.0.0", canary=("1.1.0", 100), replicas=3)
    plan = plan_rollout(m, [mv("1.0.0"), mv("1.1.0")], T0)
    assert [(w.role, w.replicas) for w in plan.workloads] == [("stable", 0), ("canary", 3)]


def test_canary_weight_0_is_not_started():
    m = model("1.0.0", canary=("1.1.0", 0))
    plan = plan_rollout(m, [mv("1.0.0"), mv("1.1.0")], T0)
    assert [w.role for w in plan.workloads] == ["stable"]
    assert ready(plan)["status"] == "True"
    assert get_condition(plan.conditions, "Progressing")["reason"] == "ZeroWeight"


def test_replicas_come_from_the_stable_versions_serving_override():
    plan = plan_rollout(model("1.0.0", replicas=3), [mv("1.0.0", serving={"replicas": 8})], T0)
    assert plan.workloads[0].replicas == 8


def test_rollback_is_setting_stable_to_an_older_version():
    m = model("1.0.0", status=served("1.2.0"))
    plan = plan_rollout(m, [mv("1.0.0"), mv("1.2.0")], T1)
    assert plan.workloads == (Workload("sentiment-1-0-0", "1.0.0", "stable", 3),)
    assert ready(plan)["status"] == "True"
    assert reasons(plan) == ["RolledBack"]
    assert plan.history[-1]["reason"] == "RolledBack"
    assert "from 1.2.0 to 1.0.0" in plan.events[0][2]


# --- plan_rollout: degraded -------------------------------------------------------------------------------
def test_fallback_takes_a_newer_eligible_version_when_it_is_the_newest():
    versions = [mv("1.0.0"), mv("1.2.0", revoked=True), mv("1.3.0")]
    plan = plan_rollout(model("1.2.0", status=served("1.2.0")), versions, T1)
    assert plan.stable_version == "1.3.0"
    assert ready(plan)["reason"] == "FellBack"


def test_revoked_stable_with_rollback_falls_back_to_the_newest_eligible_version():
    versions = [
        mv("0.9.0"),
        mv("1.0.0"),
        mv("1.1.0", verified=False),  # not eligible
        mv("1.2.0-rc.1", revoked=True),  # not eligible
        mv("1.2.0", revoked=True),
        mv("1.3.0", approved=False),  # newer but not eligible
    ]
    m = model(
        "1.2.0",
        status=served(
            "1.2.0", history=[{"at": T0, "stable": "1.2.0", "canaryWeight": 0, "reason": "Promoted"}]
        ),
    )
    plan = plan_rollout(m, versions, T1)
    assert plan.workloads == (Workload("sentiment-1-0-0", "1.0.0", "stable", 3),)
    assert plan.stable_version == "1.0.0"
    r = ready(plan)
    assert (r["status"], r["reason"]) == ("False", "FellBack")
    assert "1.2.0" in r["message"] and "1.0.0" in r["message"]
    assert reasons(plan) == ["FellBack"]
    assert plan.events[0][0] == "Warning"
    assert plan.history[-1] == {"at": T1, "stable": "1.0.0", "canaryWeight": 0, "reason": "FellBack"}

    # the default onRevocation is rollback; stating it changes nothing
    explicit = copy.deepcopy(m)
    explicit["spec"]["promotion"]["onRevocation"] = "rollback"
    assert plan_rollout(explicit, versions, T1) == plan


def test_revoked_stable_with_rollback_and_nothing_eligible_serves_nothing():
    versions = [mv("1.0.0", approved=False), mv("1.2.0", revoked=True), mv("1.3.0", verified=False)]
    plan = plan_rollout(model("1.2.0", status=served("1.2.0")), versions, T1)
    assert plan.workloads == ()
    assert plan.stable_version is None
    r = ready(plan)
    assert (r["status"], r["reason"]) == ("False", "NoEligibleVersion")
    assert "1.2.0" in r["message"]
    assert reasons(plan) == ["ServingStopped", "NoEligibleVersion"]
    assert plan.history[-1] == {"at": T1, "canaryWeight": 0, "reason": "ServingStopped"}


def test_revoked_with_on_revocation_none_serves_nothing():
    versions = [mv("1.0.0"), mv("1.2.0", revoked=True)]
    plan = plan_rollout(model("1.2.0", on_revocation="none", status=served("1.2.0")), versions, T1)
    assert plan.workloads == ()
    r = ready(plan)
    assert (r["status"], r["reason"]) == ("False", "Revoked")
    assert "revoked" in r["message"] and "onRevocation is none" in r["message"]
    assert "ServingStopped" in reasons(plan)


@pytest.mark.parametrize(
    "bad, reason",
    [(mv("1.1.0", verified=False), "NotVerified"), (mv("1.1.0", approved=False), "NotApproved")],
)
def test_unverified_or_unapproved_stable_is_never_planned_the_previous_keeps_serving(bad, reason):
    m = model("1.1.0", status=served("1.0.0"))
    plan = plan_rollout(m, [mv("1.0.0"), bad], T1)
    assert plan.workloads == (Workload("sentiment-1-0-0", "1.0.0", "stable", 3),)
    r = ready(plan)
    assert (r["status"], r["reason"]) == ("False", reason)
    assert "still serving the previous stable 1.0.0" in r["message"]
    assert plan.history == []  # nothing served changed
    assert reasons(plan) == [reason]  # one Warning, for the Ready transition


@pytest.mark.parametrize(
    "bad, reason",
    [(mv("1.0.0", verified=False), "NotVerified"), (mv("1.0.0", approved=False), "NotApproved")],
)
def test_unverified_or_unapproved_stable_without_previous_serves_nothing(bad, reason):
    plan = plan_rollout(model("1.0.0"), [bad], T0)
    assert plan.workloads == () and plan.stable_version is None
    assert (ready(plan)["status"], ready(plan)["reason"]) == ("False", reason)
    assert "serving nothing" in ready(plan)["message"]
    assert plan.history == []
    assert plan.events == [("Warning", reason, ready(plan)["message"])]


def test_previous_that_is_no_longer_eligible_is_not_kept():
    versions = [mv("1.0.0", revoked=True), mv("1.1.0", verified=False)]
    plan = plan_rollout(model("1.1.0", status=served("1.0.0")), versions, T1)
    assert plan.workloads == ()
    assert reasons(plan)[0] == "ServingStopped"


def test_ineligible_canary_is_dropped_and_the_stable_takes_all_replicas():
    m = model("1.0.0", canary=("1.1.0", 20), replicas=5, status=served("1.0.0"))
    plan = plan_rollout(m, [mv("1.0.0"), mv("1.1.0", approved=False)], T1)
    assert plan.workloads == (Workload("sentiment-1-0-0", "1.0.0", "stable", 5),)
    assert plan.canary_version is None and plan.canary_weight == 0
    r = ready(plan)
    assert (r["status"], r["reason"]) == ("False", "NotApproved")
    assert "canary dropped" in r["message"]
    progressing = get_condition(plan.conditions, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "NotApproved")


def test_revoked_canary_is_dropped_even_with_rollback():
    m = model("1.0.0", canary=("1.1.0", 20), replicas=5, status=served("1.0.0", "1.1.0", 20))
    plan = plan_rollout(m, [mv("1.0.0"), mv("1.1.0", revoked=True)], T1)
    assert [w.version for w in plan.workloads] == ["1.0.0"]
    assert reasons(plan) == ["CanaryStopped", "Revoked"]


def test_version_not_found_and_no_promotion():
    plan = plan_rollout(model("2.0.0", status=served("1.0.0")), [mv("1.0.0")], T1)
    assert (ready(plan)["reason"], plan.stable_version) == ("VersionNotFound", "1.0.0")  # keeps the previous

    plan = plan_rollout(model("2.0.0"), [mv("1.0.0")], T1)
    assert (ready(plan)["reason"], plan.workloads) == ("VersionNotFound", ())

    plan = plan_rollout(model(None), [mv("1.0.0")], T1)
    assert (ready(plan)["status"], ready(plan)["reason"], plan.workloads) == ("True", "NoPromotion", ())
    assert plan.events == []


def test_versions_of_other_models_are_ignored():
    other = mv("1.0.0", model="translate", name="translate-1-0-0")
    plan = plan_rollout(model("1.0.0"), [other], T0)
    assert ready(plan)["reason"] == "VersionNotFound"
    plan = plan_rollout(model("1.0.0"), [other, mv("1.0.0")], T0)
    assert [w.version_name for w in plan.workloads] == ["sentiment-1-0-0"]


def test_build_metadata_is_part_of_the_version_name():
    plan = plan_rollout(model("1.0.0+build.5"), [mv("1.0.0+build.4"), mv("1.0.0+build.5")], T0)
    assert [w.version_name for w in plan.workloads] == ["sentiment-1-0-0-build-5"]


# --- history, conditions, purity --------------------------------------------------------------------------
def test_replanning_the_applied_plan_changes_nothing():
    versions = [mv("1.0.0"), mv("1.1.0")]
    m = model("1.0.0", canary=("1.1.0", 20), replicas=5)
    first = plan_rollout(m, versions, T0)
    second = plan_rollout(applied(m, first), versions, T1)
    assert second.history == first.history  # appended only on change
    assert second.events == []
    assert second.workloads == first.workloads
    assert ready(second)["lastTransitionTime"] == T0  # status did not flip


def test_degraded_state_is_reported_once():
    versions = [mv("1.0.0"), mv("1.1.0", verified=False)]
    m = model("1.1.0", status=served("1.0.0"))
    first = plan_rollout(m, versions, T1)
    assert reasons(first) == ["NotVerified"]
    second = plan_rollout(applied(m, first), versions, T2)
    assert second.events == [] and second.history == first.history


def test_ready_transition_time_changes_only_on_flip():
    versions = [mv("1.0.0"), mv("1.1.0", verified=False)]
    m = model("1.0.0")
    good = plan_rollout(m, versions, T0)
    m2 = applied(m, good)
    m2["spec"]["promotion"]["stable"] = "1.1.0"
    bad = plan_rollout(m2, versions, T1)
    assert (ready(bad)["status"], ready(bad)["lastTransitionTime"]) == ("False", T1)
    m3 = applied(m2, bad)
    m3["spec"]["promotion"]["stable"] = "1.0.0"
    fixed = plan_rollout(m3, versions, T2)
    assert (ready(fixed)["status"], ready(fixed)["lastTransitionTime"]) == ("True", T2)


def test_other_conditions_are_kept():
    m = model("1.0.0", status={"conditions": [cond("Degraded", "False")]})
    plan = plan_rollout(m, [mv("1.0.0")], T0)
    assert [c["type"] for c in plan.conditions] == ["Degraded", "Ready", "Progressing"]


def test_history_is_capped_at_20():
    old = [{"at": T0, "stable": f"0.{i}.0", "canaryWeight": 0, "reason": "Promoted"} for i in range(20)]
    m = model("1.0.0", status=served("0.19.0", history=old))
    plan = plan_rollout(m, [mv("1.0.0")], T1)
    assert len(plan.history) == 20
    assert plan.history[0]["stable"] == "0.1.0"  # the oldest dropped
    assert plan.history[-1] == {"at": T1, "stable": "1.0.0", "canaryWeight": 0, "reason": "Promoted"}


def test_previous_state_read_from_history_when_status_has_no_versions():
    m = model(
        "1.0.0", status={"history": [{"at": T0, "stable": "1.0.0", "canaryWeight": 0, "reason": "Promoted"}]}
    )
    plan = plan_rollout(m, [mv("1.0.0")], T1)
    assert len(plan.history) == 1 and plan.events == []


def test_plan_is_pure():
    versions = [mv("1.0.0"), mv("1.1.0"), mv("1.2.0", revoked=True)]
    m = model("1.2.0", canary=("1.1.0", 50), status=served("1.2.0"))
    before = copy.deepcopy((m, versions))
    a = plan_rollout(m, versions, T1)
    b = plan_rollout(copy.deepcopy(m), list(reversed(copy.deepcopy(versions))), T1)
    assert a == b
    assert (m, versions) == before
    # fallback 1.1.0 is also the canary: the canary is the served stable, not a second Deployment
    assert [w.version for w in a.workloads] == ["1.1.0"]
    assert get_condition(a.conditions, "Progressing")["reason"] == "SameAsStable"
