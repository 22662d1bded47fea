"""The Model reconciler's traffic router against the in-memory FakeKube: the HTTPRoute and per-version Services it
writes, a hand edit put back, a revoked canary leaving the route, and the replica share while the Gateway API is
not served (then the route once it is)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.support.fakekube import NotFound
from tests.support.harness import Harness
from tests.support.manifests import Key, Signed, make_model, model_manifest, new_key, revocation_manifest
from tests.unit.test_handlers import KEY_B, NS, condition, deployments, vname
from tests.unit.test_handlers import setup as setup_versions

from modelhub.domain.workloads import split_replicas
from modelhub.vocab import conditions as C
from modelhub.vocab import labels as L
from modelhub.vocab import reasons as R
from modelhub.vocab import traffic as T

ROUTER = {"parentRefs": [{"name": "public", "namespace": "gateways"}], "hostnames": ["clf.example.com"]}
HTTPROUTES = f"{T.GATEWAY_API_VERSION}/{T.HTTPROUTE_PLURAL}"


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Key, dict[str, Signed]]:
    key = new_key()
    root = tmp_path_factory.mktemp("models")
    return key, {v: make_model(root, f"m-{v}", key) for v in ("1.0.0", "1.1.0", "1.2.0")}


@pytest.fixture
def h() -> Any:
    harness = Harness(approval_key=KEY_B)
    harness.reconciler.models.gateway_discovery_every = 0.0
    yield harness
    harness.close()


def with_canary(h: Harness, weight: int, *, stable: str = "1.1.0", canary: str | None = "1.2.0",
                router: bool = True) -> None:
    promotion: dict[str, Any] = {}
    if canary:
        promotion["canary"] = {"version": canary, "weight": weight}
    if router:
        promotion["trafficRouting"] = {"httpRoute": ROUTER}
    manifest = model_manifest("clf", ["keys"], stable=stable, replicas=4, namespace=NS, **promotion)
    live = h.kube.get("Model", NS, "clf")
    h.apply({**manifest, "metadata": {**manifest["metadata"], **({"uid": live["metadata"]["uid"]} if live else {})}})


def route(h: Harness) -> dict[str, Any] | None:
    return h.kube.get("HTTPRoute", NS, "clf")


def weights(h: Harness) -> list[tuple[str, int]]:
    r = route(h) or {}
    return [(b["name"], b["weight"]) for b in r["spec"]["rules"][0]["backendRefs"]]


def services(h: Harness) -> dict[str, dict[str, Any]]:
    return {s["metadata"]["name"]: s for s in h.kube.of_kind("Service", NS)}


def test_a_router_gets_a_weighted_httproute_to_per_version_services(h: Harness, signed: Any) -> None:
    h.kube.served.add(HTTPROUTES)
    setup_versions(h, signed, stable="1.1.0")
    with_canary(h, 10)
    h.settle(controllers=h.settle_deployments)
    assert weights(h) == [(vname("1.1.0"), 90), (vname("1.2.0"), 10)]
    r = route(h)
    assert r is not None
    model = h.kube.get("Model", NS, "clf")
    assert r["metadata"]["ownerReferences"][0]["uid"] == model["metadata"]["uid"]
    assert r["spec"]["parentRefs"][0]["name"] == "public" and r["spec"]["hostnames"] == ["clf.example.com"]
    svcs = services(h)
    for v in ("1.1.0", "1.2.0"):  # each backend selects its version's pods only
        assert svcs[vname(v)]["spec"]["selector"][L.INSTANCE] == vname(v)
    assert "clf" in svcs  # the Model's own Service stays
    # Replicas: the stable keeps all 4, the canary gets ceil(10% of 4) = 1.
    assert {n: d["spec"]["replicas"] for n, d in deployments(h).items()} == {vname("1.1.0"): 4, vname("1.2.0"): 1}
    assert model["status"]["traffic"]["mode"] == T.MODE_HTTPROUTE
    assert [b["weight"] for b in model["status"]["traffic"]["backends"]] == [90, 10]
    assert condition(model, C.TRAFFIC_ROUTED)["reason"] == R.ROUTE_APPLIED
    # Settled: nothing more is written.
    before = len(h.kube.requests)
    h.run(("Model", NS, "clf"))
    assert [q for q in h.kube.requests[before:] if q[0] not in ("get", "list")] == []

    # A weight change moves the weights (and the canary's replicas).
    with_canary(h, 50)
    h.settle(controllers=h.settle_deployments)
    assert weights(h) == [(vname("1.1.0"), 50), (vname("1.2.0"), 50)]
    assert deployments(h)[vname("1.2.0")]["spec"]["replicas"] == 2

    # Someone edits the route: it is put back whole.
    edited = dict(route(h) or {})
    edited["spec"] = {**edited["spec"], "rules": [{"backendRefs": [{"name": vname("1.2.0"), "port": 80,
                                                                     "weight": 100}]}]}
    h.apply(edited)
    h.settle(controllers=h.settle_deployments)
    assert ("replace", "HTTPRoute") in h.kube.requests
    assert weights(h) == [(vname("1.1.0"), 50), (vname("1.2.0"), 50)]

    # The canary is revoked: it leaves the route, its Service and Deployment go, the stable takes everything.
    h.apply(revocation_manifest("bad-canary", digests=[signed[1]["1.2.0"].digest]))
    h.settle(controllers=h.settle_deployments)
    assert weights(h) == [(vname("1.1.0"), 100)]
    assert vname("1.2.0") not in services(h) and vname("1.2.0") not in deployments(h)
    model = h.kube.get("Model", NS, "clf")
    assert model["status"]["traffic"]["backends"] == [
        {"service": vname("1.1.0"), "version": "1.1.0", "role": "stable", "weight": 100}]


def test_a_promotion_keeps_the_previous_stable_in_the_route_until_the_new_one_is_ready(
        h: Harness, signed: Any) -> None:
    h.kube.served.add(HTTPROUTES)
    setup_versions(h, signed, stable="1.1.0")
    with_canary(h, 25)
    h.settle(controllers=h.settle_deployments)
    with_canary(h, 0, stable="1.2.0", canary=None)
    h.settle()  # the controllers do not move: the new stable has 1 of 4 ready
    assert weights(h) == [(vname("1.2.0"), 25), (vname("1.1.0"), 75)]
    assert vname("1.1.0") in deployments(h)
    h.settle(controllers=h.settle_deployments)
    assert weights(h) == [(vname("1.2.0"), 100)]
    assert vname("1.1.0") not in deployments(h) and vname("1.1.0") not in services(h)


def test_without_the_gateway_api_the_canary_is_a_replica_share_until_the_crd_appears(
        h: Harness, signed: Any) -> None:
    setup_versions(h, signed, stable="1.1.0")
    with_canary(h, 25)
    h.settle(controllers=h.settle_deployments)
    assert route(h) is None
    stable, canary = split_replicas(4, 25)
    assert {n: d["spec"]["replicas"] for n, d in deployments(h).items()} == {vname("1.1.0"): stable,
                                                                            vname("1.2.0"): canary}
    model = h.kube.get("Model", NS, "clf")
    assert model["status"]["traffic"] == {"mode": T.MODE_REPLICAS, "backends": []}
    assert condition(model, C.TRAFFIC_ROUTED)["reason"] == R.GATEWAY_API_UNAVAILABLE
    assert [e["type"] for e in h.kube.recorded_events if e["reason"] == R.GATEWAY_API_UNAVAILABLE] == [C.WARNING]
    assert set(services(h)) == {"clf"}
    # The Gateway API CRDs are installed: the Model's next look (it requeues itself) switches to the route.
    h.kube.served.add(HTTPROUTES)
    h.run(("Model", NS, "clf"))
    h.settle(controllers=h.settle_deployments)
    assert weights(h) == [(vname("1.1.0"), 75), (vname("1.2.0"), 25)]
    assert condition(h.kube.get("Model", NS, "clf"), C.TRAFFIC_ROUTED)["reason"] == R.ROUTE_APPLIED
    # The router is dropped from the Model: route and per-version Services go, the condition too.
    with_canary(h, 25, router=False)
    h.settle(controllers=h.settle_deployments)
    assert route(h) is None and set(services(h)) == {"clf"}
    model = h.kube.get("Model", NS, "clf")
    assert condition(model, C.TRAFFIC_ROUTED) == {} and model["status"]["traffic"]["mode"] == T.MODE_REPLICAS


def test_a_model_without_a_router_never_asks_for_the_gateway_api(h: Harness, signed: Any) -> None:
    setup_versions(h, signed, stable="1.1.0")
    with_canary(h, 25, router=False)
    h.settle(controllers=h.settle_deployments)
    assert ("get", f"APIResourceList {T.GATEWAY_API_VERSION}") not in h.kube.requests
    assert condition(h.kube.get("Model", NS, "clf"), C.TRAFFIC_ROUTED) == {}


def test_a_gateway_api_removed_under_a_live_route_falls_back_to_the_replica_share(h: Harness, signed: Any) -> None:
    h.kube.served.add(HTTPROUTES)
    setup_versions(h, signed, stable="1.1.0")
    with_canary(h, 25)
    h.settle(controllers=h.settle_deployments)
    assert weights(h) == [(vname("1.1.0"), 75), (vname("1.2.0"), 25)]
    h.kube.served.clear()  # the CRDs are deleted (with every HTTPRoute)
    h.kube.objects.pop(("HTTPRoute", NS, "clf"))
    h.reconciler.models.gateway_discovery_every = 3600.0
    with_canary(h, 50)
    h.deliver_all()
    with pytest.raises(NotFound):  # the write that finds the API gone fails (the queue retries it)
        h.run(("Model", NS, "clf"))
    h.run(("Model", NS, "clf"))
    h.settle(controllers=h.settle_deployments)
    model = h.kube.get("Model", NS, "clf")
    assert model["status"]["traffic"]["mode"] == T.MODE_REPLICAS
    assert condition(model, C.TRAFFIC_ROUTED)["reason"] == R.GATEWAY_API_UNAVAILABLE
    assert {n: d["spec"]["replicas"] for n, d in deployments(h).items()} == dict(
        zip([vname("1.1.0"), vname("1.2.0")], split_replicas(4, 50), strict=True))
    assert set(services(h)) == {"clf"}


def test_a_removed_gateway_api_is_noticed_by_the_models_periodic_look(h: Harness, signed: Any) -> None:
    h.kube.served.add(HTTPROUTES)
    setup_versions(h, signed, stable="1.1.0")
    with_canary(h, 25)
    h.settle(controllers=h.settle_deployments)
    h.kube.served.clear()
    h.kube.objects.pop(("HTTPRoute", NS, "clf"))  # no watch event: the CRD's deletion took the route along
    h.reconciler.models.gateway_confirm_every = 0.0
    h.run(("Model", NS, "clf"))  # the periodic look (every model_plan.GATEWAY_RECHECK seconds)
    h.settle(controllers=h.settle_deployments)
    model = h.kube.get("Model", NS, "clf")
    assert model["status"]["traffic"]["mode"] == T.MODE_REPLICAS
    assert condition(model, C.TRAFFIC_ROUTED)["reason"] == R.GATEWAY_API_UNAVAILABLE
    assert h.ctx.cache.get("HTTPRoute", NS, "clf") is None and set(services(h)) == {"clf"}
