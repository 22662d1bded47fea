"""Everything a Model reconcile writes, as one pure plan: which Deployments to delete, write or leave, whether
the Service needs applying, the traffic router's objects (per-version Services and the HTTPRoute, to apply or
delete), the Model's status and Events, which versions to look at again and when to requeue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelhub.api.conditions import get_condition, remove_condition, set_condition
from modelhub.domain import models as model_domain
from modelhub.domain import requeue, traffic
from modelhub.domain import revocation as rdomain
from modelhub.domain.deployments import (
    Write,
    covers,
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
from modelhub.domain.workloads import (
    SERVICE_PORT,
    WorkloadError,
    build_deployment,
    build_service,
    split_replicas,
)
from modelhub.vocab import annotations as A
from modelhub.vocab import conditions as C
from modelhub.vocab import labels as L
from modelhub.vocab import reasons as R
from modelhub.vocab import traffic as T

# A Model that asks for a router: look again this often, for the HTTPRoute API appearing (or going).
GATEWAY_RECHECK = 30.0


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
    # The traffic router (HTTPRoute mode): per-version Services to apply, those to delete (by name), the
    # HTTPRoute to write (None: leave it) and whether to delete it (the Model no longer asks for a router).
    version_services: tuple[dict[str, Any], ...] = ()
    service_deletes: tuple[str, ...] = ()
    route: DeploymentWrite | None = None
    route_delete: bool = False


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
    gateway_api: bool = False,
    route_live: Mapping[str, Any] | None = None,
    route_recorded: int | None = None,
    cached_service: Callable[[str], Mapping[str, Any] | None] = lambda _name: None,
) -> ModelPlan:
    """The plan of one Model reconcile.

    `versions`: its ModelVersions with revocations already overlaid; `live`: its Deployments as cached;
    `recorded`: the generation our last write of each Deployment produced (by name). The traffic router:
    `gateway_api`: whether the cluster serves the HTTPRoute API; `route_live`: the Model's HTTPRoute as cached;
    `route_recorded`: the generation our last write of it produced; `cached_service`: a cached Service by name.
    """
    gen = _meta(model).get("generation")
    router = traffic.router_spec(model)
    routed = router is not None and gateway_api
    plan = plan_rollout(model, versions, now, traffic.routed_split if routed else split_replicas)
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

    # --- traffic: the HTTPRoute and one Service per served version, or the replica share ---
    mn = str(_meta(model).get("name") or "")
    old_traffic = old.get("traffic") or {}
    old_backends = [b for b in old_traffic.get("backends") or [] if isinstance(b, dict)]
    backends: list[traffic.Backend] = []
    if routed and desired:
        for w in plan.workloads:
            want = plan.canary_weight if w.role == L.ROLE_CANARY else 100 - plan.canary_weight
            backends.append(traffic.Backend(w.version_name, w.version, w.role, want, w.replicas,
                                            ready_replicas(live_by_name.get(w.version_name))))
        for dep_name in handover.keep:
            dep = live_by_name[dep_name]
            vname = (_meta(dep).get("annotations") or {}).get(A.MODEL_VERSION) or dep_name
            semver = str(((by_name.get(vname) or {}).get("spec") or {}).get("version") or "")
            backends.append(traffic.Backend(vname, semver, T.ROLE_PREVIOUS, 0,
                                            int((dep.get("spec") or {}).get("replicas") or 0), ready_replicas(dep)))
    weights = traffic.applied_weights(backends)
    version_services: list[dict[str, Any]] = []
    route = None
    applied: list[dict[str, Any]] = []
    if routed and router is not None:
        for b, weight in zip(backends, weights, strict=True):
            svc = traffic.build_version_service(model, b.version_name, b.version, b.role)
            name = svc["metadata"]["name"]
            applied.append({"service": name, "version": b.version, "role": b.role, "weight": weight})
            live_svc = cached_service(name)
            if live_svc is None or not services_watched or not (
                    covers(live_svc.get("spec"), svc["spec"])
                    and covers(_meta(live_svc).get("labels") or {}, svc["metadata"]["labels"])):
                version_services.append(svc)
        desired_route = traffic.build_httproute(model, router, [(a["service"], a["weight"]) for a in applied])
        decision = decide_write(route_live, desired_route, route_recorded)
        route = DeploymentWrite(desired_route, decision.write, decision.adopt_generation)
    wanted_services = {a["service"] for a in applied}
    candidates = {traffic.version_service_name(mn, n) for n in by_name} | {
        str(b.get("service")) for b in old_backends if b.get("service")}
    service_deletes = tuple(sorted(
        n for n in candidates - wanted_services
        if n != mn and (any(b.get("service") == n for b in old_backends) or _ours(cached_service(n), mn))))
    route_delete = not routed and (route_live is not None or old_traffic.get("mode") == T.MODE_HTTPROUTE)

    events = [Event(*e) for e in plan.events]
    mode = T.MODE_HTTPROUTE if routed else T.MODE_REPLICAS
    traffic_status = {"mode": mode, "backends": applied}
    if router is None:
        conditions = remove_condition(conditions, C.TRAFFIC_ROUTED)
    elif routed:
        split = ", ".join(f"{a['version']} ({a['role']}) {a['weight']}" for a in applied) or "no backends"
        conditions = set_condition(conditions, C.TRAFFIC_ROUTED, C.TRUE, R.ROUTE_APPLIED,
                                   f"HTTPRoute {mn} splits requests by weight: {split}", gen, now)
        if applied and [(a["service"], a["weight"]) for a in applied] != [
                (b.get("service"), b.get("weight")) for b in old_backends]:
            events.append(Event(C.NORMAL, R.TRAFFIC_SHIFTED, f"HTTPRoute {mn} weights: {split}"))
    else:
        before = get_condition(conditions, C.TRAFFIC_ROUTED)
        message = (f"spec.promotion.trafficRouting asks for an HTTPRoute, but the cluster does not serve "
                   f"{T.HTTPROUTE_PLURAL}.{T.GATEWAY_API_VERSION} (install the Gateway API CRDs): the canary "
                   f"weight is a share of replicas behind Service {mn}")
        conditions = set_condition(conditions, C.TRAFFIC_ROUTED, C.FALSE, R.GATEWAY_API_UNAVAILABLE, message,
                                   gen, now)
        if not (before and before.get("reason") == R.GATEWAY_API_UNAVAILABLE):
            events.append(Event(C.WARNING, R.GATEWAY_API_UNAVAILABLE, message))
    status = {
        **old,
        "observedGeneration": gen,
        "conditions": conditions,
        "stableVersion": plan.stable_version,
        "canaryVersion": plan.canary_version,
        "canaryWeight": plan.canary_weight,
        "serving": serving,
        "traffic": traffic_status,
        "versions": model_domain.version_counts(versions),
        "history": plan.history,
    }
    refresh = tuple(_meta(v)["name"] for v in versions
                    if model_changed or _workload_lags(v, live_by_name.get(_meta(v)["name"])))
    settle = requeue.MODEL_SETTLING if handover.handing_over or any(
        s["readyReplicas"] < s["replicas"] for s in serving) else None
    if router is not None:  # the Gateway API may appear (or go): look again now and then
        settle = requeue.soonest(settle, GATEWAY_RECHECK)
    return ModelPlan(
        deletes=handover.delete, writes=tuple(writes), service=service, status=status,
        events=events, refresh_versions=refresh, requeue=settle, serving=serving,
        version_services=tuple(version_services), service_deletes=service_deletes, route=route,
        route_delete=route_delete,
    )


def _ours(svc: Mapping[str, Any] | None, model_name: str) -> bool:
    """A cached Service that is one of this Model's per-version Services (managed by us, labelled with the model
    and a version instance)."""
    lab = _meta(svc or {}).get("labels") or {}
    return bool(svc) and lab.get(L.MANAGED_BY) == L.MANAGER and lab.get(L.MODEL) == model_name and bool(
        lab.get(L.INSTANCE))


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
