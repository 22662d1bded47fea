"""Everything a Model reconcile writes, as one pure plan: which Deployments to delete, write or leave, whether
the Service needs applying, the Model's status and Events, which versions to look at again and when to requeue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelhub.api.conditions import set_condition
from modelhub.domain import models as model_domain
from modelhub.domain import requeue
from modelhub.domain import revocation as rdomain
from modelhub.domain.deployments import (
    Write,
    decide_write,
    plan_handover,
    ready_replicas,
    service_needs_apply,
)
from modelhub.domain.events import Event
from modelhub.domain.loadlimits import DEFAULTS as LOADER_DEFAULTS
from modelhub.domain.loadlimits import LoaderLimits
from modelhub.domain.placement import PlacementError
from modelhub.domain.rollout import eligible, plan_rollout
from modelhub.domain.workloads import SERVICE_PORT, WorkloadError, build_deployment, build_service
from modelhub.vocab import annotations as A
from modelhub.vocab import conditions as C
from modelhub.vocab import reasons as R


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    return dict(obj.get("metadata") or {})


def overlay_revocations(versions: Iterable[dict[str, Any]], revocations: list[dict[str, Any]],
                        now: str) -> list[dict[str, Any]]:
    """Versions as the rollout must see them: any a live Revocation covers is Revoked, whatever its status says."""
    out = []
    for v in versions:
        cover = rdomain.first_covering(revocations, rdomain.VersionFacts.from_object(v))
        if cover:
            status = dict(v.get("status") or {})
            status["conditions"] = set_condition(
                status.get("conditions"), C.REVOKED, C.TRUE, R.REVOKED,
                f"revoked by Revocation {_meta(cover[0]).get('name')}", None, now,
            )
            v = {**v, "status": status}
        out.append(v)
    return out


@dataclass(frozen=True)
class DeploymentWrite:
    desired: dict[str, Any]
    write: Write
    adopt_generation: int | None = None


@dataclass(frozen=True)
class ModelPlan:
    deletes: tuple[str, ...] = ()
    writes: tuple[DeploymentWrite, ...] = ()
    service: dict[str, Any] | None = None  # to apply (None: leave it)
    status: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    refresh_versions: tuple[str, ...] = ()
    requeue: float | None = None
    serving: list[dict[str, Any]] = field(default_factory=list)


def plan_model(
    model: dict[str, Any],
    versions: list[dict[str, Any]],
    *,
    live: list[dict[str, Any]],
    recorded: Mapping[str, int],
    services_watched: bool,
    service_cached: bool,
    loader_image: str,
    cpu_node_selector: Mapping[str, str],
    now: str,
    spec_error: str | None = None,
    loader_limits: LoaderLimits = LOADER_DEFAULTS,
) -> ModelPlan:
    """The plan of one Model reconcile.

    `versions`: its ModelVersions with revocations already overlaid; `live`: its Deployments as cached;
    `recorded`: the generation our last write of each Deployment produced (by name).
    """
    gen = _meta(model).get("generation")
    plan = plan_rollout(model, versions, now)
    by_name = {_meta(v)["name"]: v for v in versions}
    live_by_name = {_meta(d)["name"]: d for d in live}
    desired: list[dict[str, Any]] = []
    build_error = spec_error
    for w in plan.workloads:
        try:
            desired.append(build_deployment(
                model, by_name[w.version_name], replicas=w.replicas, role=w.role,
                loader_image=loader_image, cpu_node_selector=dict(cpu_node_selector), loader_limits=loader_limits,
            ))
        except (PlacementError, WorkloadError) as exc:
            build_error = f"cannot build the Deployment of {w.version_name}: {exc.message}"
    conditions = plan.conditions
    if build_error:
        conditions = set_condition(conditions, C.READY, C.FALSE, R.INVALID_SERVING, build_error, gen, now)
        desired = []

    handover = plan_handover(desired, live, by_name, lambda v: eligible(model, dict(v))[0])
    writes = []
    for d in desired:
        name = d["metadata"]["name"]
        decision = decide_write(live_by_name.get(name), d, recorded.get(name))
        writes.append(DeploymentWrite(d, decision.write, decision.adopt_generation))
    old = model.get("status") or {}
    model_changed = old.get("observedGeneration") != gen
    service = None
    if desired and service_needs_apply(any_written=any(w.write is not Write.SKIP for w in writes),
                                       services_watched=services_watched, cached=service_cached,
                                       model_changed=model_changed):
        service = build_service(model, port=SERVICE_PORT)

    serving: list[dict[str, Any]] = [{
        "version": w.version, "role": w.role, "replicas": w.replicas,
        "readyReplicas": ready_replicas(live_by_name.get(w.version_name)),
    } for w in plan.workloads]
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
    refresh = tuple(_meta(v)["name"] for v in versions
                    if model_changed or _workload_lags(v, live_by_name.get(_meta(v)["name"])))
    settle = requeue.WORKLOAD_SETTLING if handover.handing_over or any(
        s["readyReplicas"] < s["replicas"] for s in serving) else None
    return ModelPlan(
        deletes=handover.delete, writes=tuple(writes), service=service, status=status,
        events=[Event(*e) for e in plan.events], refresh_versions=refresh, requeue=settle, serving=serving,
    )


def _workload_lags(version: Mapping[str, Any], dep: Mapping[str, Any] | None) -> bool:
    """A version whose status.workload lags behind its Deployment needs a look. (A new or changed Model — keys,
    approval policy — changes how all its versions verify, which the caller checks; re-checking every version
    on every status update of a Deployment would multiply the work by the number of versions.)"""
    name = _meta(version)["name"]
    if dep is not None and (_meta(dep).get("annotations") or {}).get(A.MODEL_VERSION) != name:
        dep = None
    shown = (version.get("status") or {}).get("workload") or {}
    if dep is None:
        return bool(shown.get("deployment"))
    actual = {"deployment": name, "replicas": int((dep.get("spec") or {}).get("replicas") or 0),
              "readyReplicas": ready_replicas(dep)}
    return {k: shown.get(k) for k in actual} != actual
