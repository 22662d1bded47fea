"""Weighted canaries through Gateway API HTTPRoutes on the real control plane.

The Gateway API CRDs come from the Go module sigs.k8s.io/gateway-api (hack/gateway-api-crds.sh copies them from the
module cache); no Gateway controller runs: the tests assert the HTTPRoute the operator writes on the real API server
(weights, backendRefs to Services whose selectors pick the right version's pods, the owner reference) through a
weight change, a promotion, a hand edit and a revoked canary, and, first, with the CRD absent (the replica share
and a clear condition), then the same Model switching to the route once the CRD is installed.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.kubehelp import ROOT, apply, condition, get, get_list, kubectl, unique, wait_for
from tests.e2e.test_rollout import Env, events, make_env, model_status, running, wait_ready

WAIT = 60  # generous: a loaded 2-core machine
DISCOVER = 120  # the CRD installed while the operator runs: discovery (10 s) and the Model's recheck (30 s)
GATEWAY_CRDS = ("gatewayclasses", "gateways", "httproutes")
ROUTER = {"httpRoute": {"parentRefs": [{"name": "public", "namespace": "gateways"}],
                        "hostnames": ["clf.example.com"], "pathPrefix": "/"}}


def crd_names() -> list[str]:
    return [f"{p}.gateway.networking.k8s.io" for p in GATEWAY_CRDS]


def crds_dir() -> Path:
    out = subprocess.run([str(ROOT / "hack" / "gateway-api-crds.sh")], capture_output=True, text=True, timeout=600,
                         check=True)
    return Path(out.stdout.strip().splitlines()[-1])


def remove_gateway_crds() -> None:
    kubectl("delete", "crd", *crd_names(), "--ignore-not-found", "--wait=true", timeout=120)


def install_gateway_crds(directory: Path) -> None:
    # Server-side: the HTTPRoute CRD is too large for client-side apply's last-applied annotation.
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(directory), timeout=120)
    kubectl("wait", "--for=condition=Established", *(f"crd/{n}" for n in crd_names()), "--timeout=60s", timeout=90)


@pytest.fixture(scope="module")
def gateway_crds_path(cluster: str) -> Iterator[Path]:
    """The CRDs' files, and none installed to begin with; removed again after the module."""
    path = crds_dir()
    remove_gateway_crds()
    yield path
    remove_gateway_crds()


@pytest.fixture(scope="module")
def shared_ns(cluster: str) -> Iterator[str]:
    ns = unique("e2e-canary")
    kubectl("create", "namespace", ns)
    yield ns
    kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture
def env(operator: Path, namespace: str, tmp_path: Path) -> Env:
    return make_env(namespace, tmp_path)


def route(ns: str, name: str = "clf") -> dict[str, Any] | None:
    return get("httproutes.gateway.networking.k8s.io", name, ns)


def route_weights(ns: str, name: str = "clf") -> list[tuple[str, int]] | None:
    r = route(ns, name)
    if r is None:
        return None
    return [(b["name"], b.get("weight", 1)) for b in r["spec"]["rules"][0].get("backendRefs") or []]


def wait_weights(ns: str, want: list[tuple[str, int]], timeout: float = WAIT) -> dict[str, Any]:
    wait_for(lambda: route_weights(ns) == want, timeout, what=f"HTTPRoute {ns}/clf weights {want}")
    r = route(ns)
    assert r is not None
    return r


def selected_pods(ns: str, service: str) -> set[str]:
    svc = get("service", service, ns)
    assert svc is not None, f"Service {ns}/{service} is missing"
    selector = ",".join(f"{k}={v}" for k, v in svc["spec"]["selector"].items())
    return {p["metadata"]["name"] for p in get_list("pods", ns, selector) if not p["metadata"].get("deletionTimestamp")}


def pod_names(pods: list[dict[str, Any]]) -> set[str]:
    return {p["metadata"]["name"] for p in pods}


def patch_model(ns: str, patch: dict[str, Any]) -> None:
    kubectl("patch", "model", "clf", "-n", ns, "--type=merge", "-p", json.dumps(patch))


# --- 1. no Gateway API: the replica share, and the condition saying so ----------------------------------------------
def test_without_the_gateway_api_crd_the_canary_is_a_replica_share_and_the_model_says_so(
        gateway_crds_path: Path, operator: Path, shared_ns: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    env = make_env(shared_ns, tmp_path_factory.mktemp("absent"))
    env.model("clf", stable="1.0.0", replicas=4, canary={"version": "1.1.0", "weight": 25}, trafficRouting=ROUTER)
    stable, canary = env.version("clf", "1.0.0"), env.version("clf", "1.1.0")
    wait_ready(env.ns, stable, canary)
    running(env.ns, stable, 3), running(env.ns, canary, 1)  # split_replicas(4, 25): 3 + 1

    def unavailable() -> dict[str, Any] | None:
        st = model_status(env.ns, "clf")
        c = condition({"status": st}, "TrafficRouted")
        return st if c and (c["status"], c["reason"]) == ("False", "GatewayAPIUnavailable") else None

    st = wait_for(unavailable, WAIT, what="TrafficRouted=False GatewayAPIUnavailable")
    assert st["traffic"] == {"mode": "Replicas", "backends": []}
    assert "httproutes.gateway.networking.k8s.io/v1" in condition({"status": st}, "TrafficRouted")["message"]
    assert condition({"status": st}, "Ready")["status"] == "True"  # serving, by replica share
    assert [s["metadata"]["name"] for s in get_list("services", env.ns)] == ["clf"]
    warnings = wait_for(lambda: [e for e in events(env.ns, "Model", "clf") if e.get("reason") == "GatewayAPIUnavailable"],
                        WAIT, what="the GatewayAPIUnavailable Event")
    assert warnings[0]["type"] == "Warning"

    # The CRDs are installed while the operator runs: the same Model switches to the weighted route by itself.
    install_gateway_crds(gateway_crds_path)
    r = wait_weights(env.ns, [(stable, 75), (canary, 25)], timeout=DISCOVER)
    assert r["metadata"]["ownerReferences"][0]["kind"] == "Model"
    running(env.ns, stable, 4), running(env.ns, canary, 1)  # the stable keeps every replica; the canary ceil(25% of 4)
    wait_for(lambda: condition({"status": model_status(env.ns, "clf")}, "TrafficRouted")["reason"] == "RouteApplied",
             WAIT, what="TrafficRouted=True RouteApplied")


# --- 2. the route through a weight change, a hand edit, a promotion and a revoked canary ---------------------------
def test_the_httproute_follows_weight_changes_hand_edits_and_promotions(
        gateway_crds_path: Path, env: Env) -> None:
    install_gateway_crds(gateway_crds_path)  # idempotent; the module's first test installed them already
    env.model("clf", stable="1.0.0", replicas=4, canary={"version": "1.1.0", "weight": 10}, trafficRouting=ROUTER)
    stable, canary = env.version("clf", "1.0.0"), env.version("clf", "1.1.0")
    wait_ready(env.ns, stable, canary)
    r = wait_weights(env.ns, [(stable, 90), (canary, 10)], timeout=DISCOVER)

    model = get("model", "clf", env.ns)
    assert model is not None
    owner = r["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "Model", "clf", model["metadata"]["uid"], True)
    assert r["spec"]["parentRefs"][0]["name"] == "public" and r["spec"]["parentRefs"][0]["namespace"] == "gateways"
    assert r["spec"]["hostnames"] == ["clf.example.com"]
    assert [b["port"] for b in r["spec"]["rules"][0]["backendRefs"]] == [80, 80]
    # Each backend Service selects exactly its version's pods.
    stable_pods, canary_pods = running(env.ns, stable, 4), running(env.ns, canary, 1)
    assert selected_pods(env.ns, stable) == pod_names(stable_pods)
    assert selected_pods(env.ns, canary) == pod_names(canary_pods)
    st = model_status(env.ns, "clf")
    assert st["traffic"]["mode"] == "HTTPRoute"
    assert [(b["service"], b["role"], b["weight"]) for b in st["traffic"]["backends"]] == [
        (stable, "stable", 90), (canary, "canary", 10)]

    # A weight change: the route's weights move; the canary gets ceil(40% of 4) = 2 replicas.
    patch_model(env.ns, {"spec": {"promotion": {"canary": {"version": "1.1.0", "weight": 40}}}})
    wait_weights(env.ns, [(stable, 60), (canary, 40)])
    running(env.ns, canary, 2)

    # A hand edit of the route is put back.
    kubectl("patch", "httproutes.gateway.networking.k8s.io", "clf", "-n", env.ns, "--type=json", "-p",
            json.dumps([{"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": 100}]))
    wait_weights(env.ns, [(stable, 60), (canary, 40)])

    # Promotion: the canary becomes the stable, the old stable leaves the route and its Service goes.
    patch_model(env.ns, {"spec": {"promotion": {"stable": "1.1.0", "canary": None}}})
    wait_weights(env.ns, [(canary, 100)])
    wait_for(lambda: get("service", stable, env.ns) is None, WAIT, what=f"Service {stable} deleted")
    new_pods = running(env.ns, canary, 4)
    assert selected_pods(env.ns, canary) == pod_names(new_pods)


def test_a_revoked_canary_drops_out_of_the_route_at_once(gateway_crds_path: Path, env: Env) -> None:
    install_gateway_crds(gateway_crds_path)
    env.model("clf", stable="1.0.0", replicas=2, canary={"version": "1.1.0", "weight": 30}, trafficRouting=ROUTER)
    stable, canary = env.version("clf", "1.0.0"), env.version("clf", "1.1.0")
    wait_ready(env.ns, stable, canary)
    wait_weights(env.ns, [(stable, 70), (canary, 30)], timeout=DISCOVER)

    name = unique("canary-bad")
    start = time.monotonic()
    apply({"apiVersion": "modelhub.dev/v1alpha1", "kind": "Revocation", "metadata": {"name": name},
           "spec": {"reason": "bad canary", "match": {"digests": [env.signed[canary].digest]}}})
    try:
        wait_weights(env.ns, [(stable, 100)], timeout=WAIT)
        # A figure, not an assertion (timing belongs in benchmarks): Revocation applied -> canary out of the route.
        print(f"\n[canary-routes] revoked canary left the HTTPRoute {time.monotonic() - start:.1f}s after kubectl apply")
        wait_for(lambda: get("service", canary, env.ns) is None, WAIT, what=f"Service {canary} deleted")
        st = model_status(env.ns, "clf")
        assert [(b["service"], b["weight"]) for b in st["traffic"]["backends"]] == [(stable, 100)]
        assert st.get("canaryVersion") is None
    finally:
        kubectl("delete", "revocation", name, "--ignore-not-found", "--wait=false", check=False)
