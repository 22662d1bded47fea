"""The pure traffic router: replica split, applied weights, the per-version Service, the HTTPRoute, and the plan
(model_plan) in both modes, on real-shaped objects."""

from __future__ import annotations

from typing import Any

import pytest

from modelhub.api import types as api
from modelhub.domain import traffic
from modelhub.domain.deployments import Write
from modelhub.domain.model_plan import plan_model
from modelhub.domain.traffic import Backend
from modelhub.domain.workloads import selector_labels, split_replicas
from modelhub.vocab import conditions as C
from modelhub.vocab import labels as L
from modelhub.vocab import reasons as R
from modelhub.vocab import traffic as T

ROUTER = {"parentRefs": [{"name": "public", "namespace": "gateways", "sectionName": "http"}],
          "hostnames": ["clf.example.com"], "pathPrefix": "/v1"}


@pytest.mark.parametrize(("total", "weight", "want"), [
    (4, 10, (4, 1)), (4, 50, (4, 2)), (10, 25, (10, 3)), (10, 5, (10, 1)), (3, 100, (3, 3)), (1, 1, (1, 1)),
    (4, 0, (4, 0)), (0, 50, (0, 0)), (7, 99, (7, 7)), (5, 20, (5, 1)), (5, 21, (5, 2)),
])
def test_routed_split_keeps_the_stable_whole_and_sizes_the_canary_to_its_share(
        total: int, weight: int, want: tuple[int, int]) -> None:
    assert traffic.routed_split(total, weight) == want


@pytest.mark.parametrize(("total", "weight"), [(-1, 10), (3, -1), (3, 101), (True, 10), (3, 1.5)])
def test_routed_split_refuses_nonsense(total: Any, weight: Any) -> None:
    with pytest.raises(ValueError):
        traffic.routed_split(total, weight)


def b(role: str, desired: int, replicas: int, ready: int, name: str = "") -> Backend:
    return Backend(name or f"clf-{role}", "1.0.0", role, desired, replicas, ready)


@pytest.mark.parametrize(("backends", "want"), [
    # both ready: the promotion's weights
    ([b("stable", 90, 4, 4), b("canary", 10, 1, 1)], [90, 10]),
    # a canary with no ready pod gets nothing, the stable all
    ([b("stable", 90, 4, 4), b("canary", 10, 1, 0)], [100, 0]),
    # a canary at 100 whose pods are not up yet leaves the requests to the stable
    ([b("stable", 0, 4, 4), b("canary", 100, 4, 0)], [100, 0]),
    ([b("stable", 0, 4, 4), b("canary", 100, 4, 4)], [0, 100]),
    # the stable's pods all gone (evicted), the canary answers: it takes everything
    ([b("stable", 80, 4, 0), b("canary", 20, 1, 1)], [0, 100]),
    # nothing ready at all: the weights meant
    ([b("stable", 70, 2, 0), b("canary", 30, 1, 0)], [70, 30]),
    # stable only
    ([b("stable", 100, 3, 1)], [100]),
    # hand-over (promotion): the new stable takes its ready share, the previous one the rest
    ([b("stable", 100, 4, 1), b("previous", 0, 4, 4)], [25, 75]),
    ([b("stable", 100, 3, 1), b("previous", 0, 4, 4)], [33, 67]),
    ([b("stable", 100, 4, 4), b("previous", 0, 4, 4)], [100, 0]),
    # hand-over with a canary: scaled shares, the rest to two previous versions by their ready pods
    ([b("stable", 90, 2, 1), b("canary", 10, 1, 1), b("previous", 0, 3, 3, "p1"), b("previous", 0, 1, 1, "p2")],
     [45, 10, 34, 11]),
    # a previous version with no ready pod gets nothing (the ready-share rule holds)
    ([b("stable", 100, 2, 1), b("previous", 0, 2, 0)], [100, 0]),
    ([], []),
])
def test_applied_weights_go_only_to_ready_backends(backends: list[Backend], want: list[int]) -> None:
    got = traffic.applied_weights(backends)
    assert got == want
    if want:
        assert sum(got) == 100


@pytest.mark.parametrize(("model", "version", "want"), [
    ("clf", "clf-1-2-0", "clf-1-2-0"),
    ("clf", "clf", None),  # the Model's own Service name: hashed
    ("clf", "clf.v1.2.0", None),  # dots: not a DNS-1035 label
    ("clf", "1-2-0", None),  # a digit first
    ("clf", "a" * 70, None),  # too long
])
def test_version_service_names_are_dns_labels_and_distinct(model: str, version: str, want: str | None) -> None:
    name = traffic.version_service_name(model, version)
    if want is not None:
        assert name == want
    else:
        assert name != version and name != model
        assert len(name) <= 63 and name[0].isalpha() and name.replace("-", "").isalnum() and name.islower()
        assert name != traffic.version_service_name(model, version + "x")


MODEL = {"apiVersion": "modelhub.dev/v1alpha1", "kind": "Model",
         "metadata": {"name": "clf", "namespace": "team-a", "uid": "u-model", "generation": 3}}


def test_the_version_service_selects_that_versions_pods_only() -> None:
    svc = traffic.build_version_service(MODEL, "clf-1-2-0", "1.2.0", L.ROLE_CANARY)
    assert svc["metadata"]["name"] == "clf-1-2-0" and svc["metadata"]["namespace"] == "team-a"
    assert svc["spec"]["selector"] == {**selector_labels("clf", "clf-1-2-0"), L.SERVES_ARTIFACT: L.SERVES_TRUE}
    assert svc["metadata"]["labels"][L.ROLE] == L.ROLE_CANARY
    assert svc["metadata"]["labels"][L.MANAGED_BY] == L.MANAGER
    assert svc["metadata"]["ownerReferences"][0]["uid"] == "u-model"
    assert svc["spec"]["ports"][0]["targetPort"] == "http"


def test_the_httproute_carries_parents_hosts_path_and_weights() -> None:
    route = traffic.build_httproute(MODEL, ROUTER, [("clf-1-1-0", 90), ("clf-1-2-0", 10)])
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1" and route["kind"] == "HTTPRoute"
    assert route["metadata"]["name"] == "clf" and route["metadata"]["namespace"] == "team-a"
    owner = route["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("Model", "clf", "u-model", True)
    assert route["spec"]["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                            "name": "public", "namespace": "gateways", "sectionName": "http"}]
    assert route["spec"]["hostnames"] == ["clf.example.com"]
    [rule] = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/v1"}}]
    assert [(r["name"], r["weight"], r["port"], r["kind"]) for r in rule["backendRefs"]] == [
        ("clf-1-1-0", 90, 80, "Service"), ("clf-1-2-0", 10, 80, "Service")]


@pytest.mark.parametrize("promotion", [
    {"trafficRouting": {"httpRoute": {"parentRefs": []}}},  # at least one parent
    {"trafficRouting": {"httpRoute": {"parentRefs": [{"name": "gw"}], "pathPrefix": "v1"}}},  # starts with /
    {"trafficRouting": {"httpRoute": {"parentRefs": [{"name": "gw"}], "hostnames": ["Bad_Host"]}}},
    {"trafficRouting": {"httpRoute": {"parentRefs": [{"name": "gw", "port": 0}]}}},
    {"trafficRouting": {"httpRoute": {"parentRefs": [{"name": "gw"}] * 33}}},
    {"trafficRouting": {"mesh": {}}},
])
def test_invalid_routers_are_refused_by_the_api_types(promotion: dict[str, Any]) -> None:
    with pytest.raises(api.InvalidResource):
        api.parse_spec(api.ModelSpec, {"promotion": {"stable": "1.0.0", **promotion}})


def test_a_valid_router_parses() -> None:
    spec = api.parse_spec(api.ModelSpec, {"promotion": {"stable": "1.0.0", "trafficRouting": {"httpRoute": ROUTER}}})
    assert spec.promotion is not None and spec.promotion.traffic_routing is not None


# --- the plan ---------------------------------------------------------------------------------------------------
def verified(name: str, version: str) -> dict[str, Any]:
    return {"apiVersion": "modelhub.dev/v1alpha1", "kind": "ModelVersion",
            "metadata": {"name": name, "namespace": "team-a", "uid": f"u-{name}"},
            "spec": {"model": "clf", "version": version,
                     "artifact": {"uri": "https://models.example.com/clf", "digest": "sha256:" + "a" * 64}},
            "status": {"conditions": [{"type": C.SIGNATURE_VERIFIED, "status": C.TRUE, "reason": R.VERIFIED}]}}


def model(weight: int, *, router: bool = True, stable: str = "1.1.0") -> dict[str, Any]:
    promotion: dict[str, Any] = {"stable": stable, "canary": {"version": "1.2.0", "weight": weight}}
    if router:
        promotion["trafficRouting"] = {"httpRoute": ROUTER}
    return {**MODEL, "spec": {"trust": {"keys": [{"name": "keys"}]},
                              "serving": {"runtime": {"image": "serve:1", "port": 8080}, "replicas": 4},
                              "promotion": promotion}}


def deployment(name: str, replicas: int, ready: int) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "team-a", "generation": 1,
                         "labels": {L.MANAGED_BY: L.MANAGER, L.MODEL: "clf"},
                         "annotations": {"modelhub.dev/model-version": name}},
            "spec": {"replicas": replicas}, "status": {"readyReplicas": ready}}


VERSIONS = [verified("clf-1-1-0", "1.1.0"), verified("clf-1-2-0", "1.2.0")]


def plan(m: dict[str, Any], live: list[dict[str, Any]], **kw: Any) -> Any:
    return plan_model(m, VERSIONS, live=live, recorded={}, services_watched=True, service_cached=True,
                      loader_image="loader:1", cpu_node_selector={}, now="2026-12-01T12:00:00Z", **kw)


def test_plan_with_a_router_writes_weights_services_and_full_stable_replicas() -> None:
    p = plan(model(10), [deployment("clf-1-1-0", 4, 4), deployment("clf-1-2-0", 1, 1)], gateway_api=True)
    assert {w.desired["metadata"]["name"]: w.desired["spec"]["replicas"] for w in p.writes} == {
        "clf-1-1-0": 4, "clf-1-2-0": 1}
    assert p.route is not None and p.route.write is Write.APPLY
    refs = p.route.desired["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == [("clf-1-1-0", 90), ("clf-1-2-0", 10)]
    assert sorted(s["metadata"]["name"] for s in p.version_services) == ["clf-1-1-0", "clf-1-2-0"]
    assert p.status["traffic"] == {"mode": T.MODE_HTTPROUTE, "backends": [
        {"service": "clf-1-1-0", "version": "1.1.0", "role": "stable", "weight": 90},
        {"service": "clf-1-2-0", "version": "1.2.0", "role": "canary", "weight": 10}]}
    cond = next(c for c in p.status["conditions"] if c["type"] == C.TRAFFIC_ROUTED)
    assert (cond["status"], cond["reason"]) == (C.TRUE, R.ROUTE_APPLIED)
    assert R.TRAFFIC_SHIFTED in [e.reason for e in p.events]
    api.parse_spec(api.ModelStatus, p.status, "status")  # the status fits its schema


def test_plan_without_the_gateway_api_keeps_the_replica_share_and_says_so() -> None:
    p = plan(model(25), [deployment("clf-1-1-0", 3, 3), deployment("clf-1-2-0", 1, 1)], gateway_api=False)
    assert {w.desired["metadata"]["name"]: w.desired["spec"]["replicas"] for w in p.writes} == dict(
        zip(["clf-1-1-0", "clf-1-2-0"], split_replicas(4, 25), strict=True))
    assert p.route is None and not p.version_services and not p.route_delete
    assert p.status["traffic"] == {"mode": T.MODE_REPLICAS, "backends": []}
    cond = next(c for c in p.status["conditions"] if c["type"] == C.TRAFFIC_ROUTED)
    assert (cond["status"], cond["reason"]) == (C.FALSE, R.GATEWAY_API_UNAVAILABLE)
    assert "httproutes.gateway.networking.k8s.io/v1" in cond["message"]
    assert [e.type for e in p.events if e.reason == R.GATEWAY_API_UNAVAILABLE] == [C.WARNING]
    assert p.requeue is not None  # it looks for the API again


def test_plan_without_a_router_has_no_condition_and_removes_what_a_router_left() -> None:
    before = plan(model(10), [deployment("clf-1-1-0", 4, 4), deployment("clf-1-2-0", 1, 1)], gateway_api=True)
    m = {**model(10, router=False), "status": before.status}
    svc = traffic.build_version_service(MODEL, "clf-1-2-0", "1.2.0", "canary")
    p = plan(m, [deployment("clf-1-1-0", 3, 3), deployment("clf-1-2-0", 1, 1)], gateway_api=True,
             route_live=before.route.desired if before.route else None,
             cached_service=lambda n: svc if n == "clf-1-2-0" else None)
    assert p.route is None and p.route_delete
    assert p.service_deletes == ("clf-1-1-0", "clf-1-2-0")
    assert all(c["type"] != C.TRAFFIC_ROUTED for c in p.status["conditions"])
    assert p.status["traffic"]["mode"] == T.MODE_REPLICAS


def test_plan_a_promotion_hands_traffic_over_as_the_new_stable_becomes_ready() -> None:
    m = model(10, stable="1.2.0")
    m["spec"]["promotion"].pop("canary")
    live = [deployment("clf-1-1-0", 4, 4), deployment("clf-1-2-0", 4, 1)]
    p = plan(m, live, gateway_api=True)
    assert p.route is not None
    refs = [(r["name"], r["weight"]) for r in p.route.desired["spec"]["rules"][0]["backendRefs"]]
    assert refs == [("clf-1-2-0", 25), ("clf-1-1-0", 75)]
    assert p.deletes == ()  # the previous stable keeps serving until its successor is ready
    done = plan(m, [deployment("clf-1-1-0", 4, 4), deployment("clf-1-2-0", 4, 4)], gateway_api=True)
    assert done.route is not None
    assert [(r["name"], r["weight"]) for r in done.route.desired["spec"]["rules"][0]["backendRefs"]] == [
        ("clf-1-2-0", 100)]
    assert done.deletes == ("clf-1-1-0",)


def test_plan_a_revoked_canary_leaves_the_route_at_once() -> None:
    revoked = {**VERSIONS[1], "status": {"conditions": [*VERSIONS[1]["status"]["conditions"],
                                                         {"type": C.REVOKED, "status": C.TRUE, "reason": R.REVOKED}]}}
    p = plan_model(model(30), [VERSIONS[0], revoked],
                   live=[deployment("clf-1-1-0", 4, 4), deployment("clf-1-2-0", 2, 2)], recorded={},
                   services_watched=True, service_cached=True, loader_image="loader:1", cpu_node_selector={},
                   now="2026-12-01T12:00:00Z", gateway_api=True,
                   cached_service=lambda n: traffic.build_version_service(MODEL, n, "1.2.0", "canary"))
    assert p.deletes == ("clf-1-2-0",)
    assert p.route is not None
    assert [(r["name"], r["weight"]) for r in p.route.desired["spec"]["rules"][0]["backendRefs"]] == [
        ("clf-1-1-0", 100)]
    assert p.service_deletes == ("clf-1-2-0",)


def test_plan_skips_a_route_that_is_as_we_wrote_it_and_replaces_a_hand_edit() -> None:
    live = [deployment("clf-1-1-0", 4, 4), deployment("clf-1-2-0", 1, 1)]
    first = plan(model(10), live, gateway_api=True)
    assert first.route is not None
    route = {**first.route.desired, "metadata": {**first.route.desired["metadata"], "generation": 2}}
    assert plan(model(10), live, gateway_api=True, route_live=route, route_recorded=2).route.write is Write.SKIP
    assert plan(model(10), live, gateway_api=True, route_live=route, route_recorded=1).route.write is Write.REPLACE
