"""Benchmark: how fast one Revocation tears down N running versions across 20 namespaces, against a floor.

Setup: N ModelVersions (each the stable of its own Model, 1 replica on the kwok CPU nodes, behind the Model's
Service) signed by one key, spread over 20 namespaces, all Deployments Ready and every pod a Ready endpoint. Each
run creates one Revocation matching them all by key fingerprint and measures, with watches, from just before the
create call to three moments users feel:

* deployments: the last Deployment gone;
* traffic: no Ready, non-terminating endpoint left in any EndpointSlice of those namespaces (the kube-controller-
  manager's endpointslice controller keeps them from the pods; every endpoint there serves a revoked artifact);
* pods: the last pod gone.

Then it deletes the Revocation and waits for everything to serve again. Each timed moment, the operator's and the
floor's, starts once the operator has sent no request for 3 s (Lease renewals aside): both measure from a quiet
operator, not while the previous step's status writes and Events (rate limited to 10/s) still drain. The floor, in the same run on the same
cluster: N equivalent Deployments, each behind its own Service, torn down by a plain client that knows their
ReplicaSets and pods (listed before the clock starts) and deletes each chain top-down (Deployment, ReplicaSet,
pods) with the same concurrency and the same deletion options (Background propagation; the pods with the same
grace period, MODELHUB_REVOCATION_GRACE_SECONDS, default 1) - the best a bare client can do for the same outcome.

Prints p50/p99 over the runs of each moment and the ratios of p99s (operator / floor), and the operator's API
requests during the runs by verb and resource; the last line is one JSON object.
Usage: python tests/bench/bench_revocation.py --n 100 [--runs 5] (KUBECONFIG must point at the cluster;
`make bench-revocation N=100` brings up the local one and the operator).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import kubernetes
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "operator"))

from tests.support.counters import Counter, EndpointCounter  # noqa: E402
from tests.support.kube import install_crds, kubectl_bin  # noqa: E402
from tests.support.operator import (  # noqa: E402
    Operator,
    api_requests,
    requests_between,
    settled_requests,
    start_operator,
)

from modelhub.domain.signing import (  # noqa: E402
    compute_manifest,
    generate_private_key,
    key_fingerprint,
    sign_model_dir,
    subject_digest,
)
from modelhub.domain.workloads import build_deployment  # noqa: E402

SERVES = "modelhub.dev/serves-artifact=true"
KUBECTL = kubectl_bin()
MOMENTS = ("deployments", "traffic", "pods")


def kubectl_apply(docs: list[dict]) -> None:
    subprocess.run([KUBECTL, "apply", "--server-side", "--force-conflicts", "-f", "-"],
                   input=yaml.safe_dump_all(docs), text=True, check=True, capture_output=True)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def ensure_operator(log: Path, grace: int) -> Operator | None:
    install_crds()
    if os.environ.get("MODELHUB_OPERATOR") == "external":
        return None
    return start_operator(log, MODELHUB_REVOCATION_GRACE_SECONDS=str(grace))


def floor_objects(i: int, ns: str, model: dict, version: dict) -> tuple[dict, dict]:
    """The Deployment the operator builds for version `i` (its pod template as it is: the loader init container,
    the volumes), as a plain client's object - no owner, no digest it declares (the Revocation is still there when
    the floor runs) - and a Service in front of it."""
    m = {**model, "metadata": {**model["metadata"], "namespace": ns, "uid": "x"}}
    v = {**version, "metadata": {**version["metadata"], "namespace": ns, "uid": "x"},
         "status": {"verified": {"digest": version["spec"]["artifact"]["digest"]}}}
    dep = build_deployment(m, v, replicas=1, role="stable", loader_image="ghcr.io/modelhub/modelhub:0.1.0",
                           cpu_node_selector={"modelhub.dev/node-class": "cpu"})
    dep["metadata"] = {"name": f"f{i}", "namespace": ns, "labels": {"modelhub.dev/serves-artifact": "true"}}
    app = {"app": f"f{i}", "modelhub.dev/serves-artifact": "true"}
    dep["spec"]["selector"] = {"matchLabels": {"app": f"f{i}"}}
    tmpl = dep["spec"]["template"]["metadata"]
    tmpl["labels"] = app
    tmpl["annotations"] = {k: v for k, v in (tmpl.get("annotations") or {}).items() if not k.startswith("modelhub.dev/")}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"f{i}", "namespace": ns},
           "spec": {"selector": {"app": f"f{i}"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
    return dep, svc


def floor_teardown(chains: list[tuple[str, str, list[tuple[str, str, str]]]], concurrency: int, grace: int,
                   go: Any, done: Any) -> None:
    """The floor's client (in a process of its own): each chain top-down, Deployment, ReplicaSets, pods, with
    Background propagation and the pods' grace period, `concurrency` chains at a time; answers not decoded."""
    kubernetes.config.load_kube_config()
    cfg = kubernetes.client.Configuration.get_default_copy()
    cfg.connection_pool_maxsize = concurrency * 2
    api = kubernetes.client.ApiClient(cfg)
    apps, core = kubernetes.client.AppsV1Api(api), kubernetes.client.CoreV1Api(api)
    background = {"propagationPolicy": "Background"}
    pod_body = {"propagationPolicy": "Background", "gracePeriodSeconds": grace}

    def raw(fn: Any, *args: Any, **kwargs: Any) -> None:
        resp = fn(*args, **kwargs, _preload_content=False)
        resp.read()  # the connection goes back to the pool
        resp.release_conn()

    def tear(chain: tuple[str, str, list[tuple[str, str, str]]]) -> None:
        ns, name, owned = chain
        raw(apps.delete_namespaced_deployment, name, ns, body=background)
        for kind, _, oname in owned:
            try:
                if kind == "ReplicaSet":
                    raw(apps.delete_namespaced_replica_set, oname, ns, body=background)
                else:
                    raw(core.delete_namespaced_pod, oname, ns, body=pod_body)
            except kubernetes.client.ApiException as exc:
                if exc.status != 404:
                    raise

    with cf.ThreadPoolExecutor(concurrency) as pool:
        go.wait()
        list(pool.map(tear, chains))
    done.set()


class Moments:
    """The three counters, and the time each reached a predicate after t0."""

    def __init__(self, apps: Any, core: Any, discovery: Any, spaces: set[str]) -> None:
        self.deployments = Counter(apps.list_deployment_for_all_namespaces, spaces, SERVES)
        self.pods = Counter(core.list_pod_for_all_namespaces, spaces, SERVES)
        self.traffic = EndpointCounter(discovery, spaces)

    def serving(self, n: int, timeout: float) -> None:
        self.deployments.wait(lambda c, r: r >= n, timeout)
        self.pods.wait(lambda c, r: r >= n, timeout)
        self.traffic.wait(lambda c, r: r >= n, timeout)

    def gone(self, t0: float, timeout: float) -> dict[str, float]:
        return {
            "deployments": self.deployments.wait(lambda c, r: c == 0, timeout) - t0,
            "traffic": self.traffic.wait(lambda c, r: r == 0, timeout) - t0,
            "pods": self.pods.wait(lambda c, r: c == 0, timeout) - t0,
        }

    def close(self) -> None:
        for c in (self.deployments, self.pods, self.traffic):
            c.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--namespaces", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=int(os.environ.get("MODELHUB_TEARDOWN_CONCURRENCY", "32")))
    ap.add_argument("--grace", type=int, default=int(os.environ.get("MODELHUB_REVOCATION_GRACE_SECONDS", "1")),
                    help="grace period of the deleted pods (the operator's MODELHUB_REVOCATION_GRACE_SECONDS)")
    args = ap.parse_args()
    kubernetes.config.load_kube_config()
    cfg = kubernetes.client.Configuration.get_default_copy()
    cfg.connection_pool_maxsize = 64
    api = kubernetes.client.ApiClient(cfg)
    apps, core = kubernetes.client.AppsV1Api(api), kubernetes.client.CoreV1Api(api)
    discovery = kubernetes.client.DiscoveryV1Api(api)
    custom = kubernetes.client.CustomObjectsApi(api)
    timeout = 600 + args.n
    tag = uuid.uuid4().hex[:5]
    work = Path(tempfile.mkdtemp(prefix="bench-rvk-"))
    op = ensure_operator(work / "operator.log", args.grace)
    spaces = [f"bench-rvk-{tag}-{i:02d}" for i in range(args.namespaces)]
    floor_spaces = [f"bench-floor-{tag}-{i:02d}" for i in range(args.namespaces)]
    op_moments = floor_moments = None
    try:
        for ns in spaces + floor_spaces:
            core.create_namespace({"metadata": {"name": ns}})
        priv, pub = generate_private_key("p256")
        fingerprint = key_fingerprint(pub)
        # One signed artifact per version (distinct digests), bundles beside the files.
        docs_by_ns: dict[str, list[dict]] = {ns: [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "keys", "namespace": ns}, "data": {"release.pub": pub.decode()}}] for ns in spaces}
        for i in range(args.n):
            ns = spaces[i % len(spaces)]
            d = work / "models" / f"m{i}"
            d.mkdir(parents=True)
            (d / "weights.bin").write_bytes(f"weights {i} {tag}".encode())
            digest = subject_digest(compute_manifest(d))
            (d / "model.sig").write_bytes(sign_model_dir(d, priv))
            docs_by_ns[ns] += [
                {"apiVersion": "modelhub.dev/v1alpha1", "kind": "Model", "metadata": {"name": f"m{i}", "namespace": ns},
                 "spec": {"trust": {"keys": [{"name": "keys"}]},
                          "serving": {"runtime": {"image": "example.invalid/serve:1"}, "accelerator": {"kind": "cpu"},
                                      "replicas": 1},
                          "promotion": {"stable": "1.0.0", "onRevocation": "none"}}},
                {"apiVersion": "modelhub.dev/v1alpha1", "kind": "ModelVersion",
                 "metadata": {"name": f"m{i}-1-0-0", "namespace": ns},
                 "spec": {"model": f"m{i}", "version": "1.0.0", "artifact": {"uri": f"file://{d}", "digest": digest}}},
            ]
        op_moments = Moments(apps, core, discovery, set(spaces))
        floor_moments = Moments(apps, core, discovery, set(floor_spaces))
        by_name = {(d["kind"], d["metadata"]["name"]): d for docs in docs_by_ns.values() for d in docs}
        floor_docs = [floor_objects(i, floor_spaces[i % len(floor_spaces)], by_name[("Model", f"m{i}")],
                                    by_name[("ModelVersion", f"m{i}-1-0-0")]) for i in range(args.n)]
        t = time.time()
        with cf.ThreadPoolExecutor(8) as pool:
            list(pool.map(kubectl_apply, docs_by_ns.values()))
            list(pool.map(lambda ds: core.create_namespaced_service(ds[1]["metadata"]["namespace"], ds[1]),
                          floor_docs))
        op_moments.serving(args.n, timeout)
        print(f"setup: {args.n} versions serving (Deployments, pods and endpoints Ready) in {time.time() - t:.1f}s",
              flush=True)

        got: dict[str, dict[str, list[float]]] = {"operator": {m: [] for m in MOMENTS},
                                                   "floor": {m: [] for m in MOMENTS}}
        op_status: list[float] = []
        requests: dict[str, float] = {}
        for run in range(args.runs):
            # --- the operator: one Revocation by key fingerprint
            name = f"bench-{tag}-{run}"
            # From a quiet operator, as the floor gets a quiet cluster: the previous restore's follow-up (status
            # writes, its Events at 10/s) done.
            before = settled_requests(op) if op else {}
            t0 = time.time()
            custom.create_cluster_custom_object(
                "modelhub.dev", "v1alpha1", "revocations",
                {"apiVersion": "modelhub.dev/v1alpha1", "kind": "Revocation", "metadata": {"name": name},
                 "spec": {"reason": "bench", "match": {"keyFingerprints": [fingerprint]}}})
            for m, v in op_moments.gone(t0, timeout).items():
                got["operator"][m].append(v)
            for _ in range(100):
                st = custom.get_cluster_custom_object("modelhub.dev", "v1alpha1", "revocations", name).get(
                    "status") or {}
                if "enforcementSeconds" in st:
                    op_status.append(float(st["enforcementSeconds"]))
                    break
                time.sleep(0.1)
            o = got["operator"]
            print(f"run {run}: operator: deployments gone {o['deployments'][-1]:.3f}s, traffic stopped "
                  f"{o['traffic'][-1]:.3f}s, pods gone {o['pods'][-1]:.3f}s, "
                  f"status.enforcementSeconds {op_status[-1] if op_status else float('nan')}", flush=True)

            # --- the floor: the same number of Deployments, their chains deleted directly
            with cf.ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda ds: apps.create_namespaced_deployment(ds[0]["metadata"]["namespace"], ds[0]),
                              floor_docs))
            floor_moments.serving(args.n, timeout)
            # What a bare client knows before it starts: every chain's ReplicaSets and pods (listed, not timed).
            owned: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
            rs_owner: dict[tuple[str, str], str] = {}
            for rs in apps.list_replica_set_for_all_namespaces(label_selector=SERVES).items:
                if rs.metadata.namespace in floor_moments.deployments.namespaces and rs.metadata.owner_references:
                    dep = rs.metadata.owner_references[0].name
                    rs_owner[(rs.metadata.namespace, rs.metadata.name)] = dep
                    owned.setdefault((rs.metadata.namespace, dep), []).append(
                        ("ReplicaSet", rs.metadata.namespace, rs.metadata.name))
            for pod in core.list_pod_for_all_namespaces(label_selector=SERVES).items:
                refs = pod.metadata.owner_references or []
                dep = rs_owner.get((pod.metadata.namespace, refs[0].name)) if refs else None
                if dep:
                    owned.setdefault((pod.metadata.namespace, dep), []).append(
                        ("Pod", pod.metadata.namespace, pod.metadata.name))
            chains = [(d["metadata"]["namespace"], d["metadata"]["name"],
                       owned.get((d["metadata"]["namespace"], d["metadata"]["name"]), [])) for d, _ in floor_docs]
            # The floor's client runs in a process of its own (the watches here decode every event under this
            # process's GIL), sends raw requests and decodes no answer: the best a bare client can do.
            go, done = mp.Event(), mp.Event()
            proc = mp.Process(target=floor_teardown, args=(chains, args.concurrency, args.grace, go, done))
            proc.start()
            if op:
                settled_requests(op)  # the operator's follow-up of its own teardown does not slow the floor's
            time.sleep(1.0)  # the child is ready: it has its client and waits for go
            t0 = time.time()
            go.set()
            proc.join(timeout)
            if proc.exitcode != 0:
                raise RuntimeError(f"the floor's client failed (exit {proc.exitcode})")
            for m, v in floor_moments.gone(t0, timeout).items():
                got["floor"][m].append(v)
            f = got["floor"]
            print(f"run {run}: floor:    deployments gone {f['deployments'][-1]:.3f}s, traffic stopped "
                  f"{f['traffic'][-1]:.3f}s, pods gone {f['pods'][-1]:.3f}s", flush=True)

            # --- restore: lift the Revocation; the operator re-verifies and rolls everything out again
            custom.delete_cluster_custom_object("modelhub.dev", "v1alpha1", "revocations", name)
            t = time.time()
            op_moments.serving(args.n, timeout)
            if op:
                for k, v in requests_between(before, api_requests(op.metrics_port)).items():
                    requests[k] = requests.get(k, 0.0) + v
            print(f"restored in {time.time() - t:.1f}s", flush=True)

        result: dict[str, Any] = {"n": args.n, "runs": args.runs, "namespaces": args.namespaces,
                                  "concurrency": args.concurrency, "grace_seconds": args.grace}
        o, f = got["operator"], got["floor"]
        # Today's keys (deployments gone; pods gone), kept.
        result.update({
            "p50_s": round(statistics.median(o["deployments"]), 3), "p99_s": round(pct(o["deployments"], 0.99), 3),
            "pods_p50_s": round(statistics.median(o["pods"]), 3), "pods_p99_s": round(pct(o["pods"], 0.99), 3),
            "floor_p50_s": round(statistics.median(f["deployments"]), 3),
            "floor_p99_s": round(pct(f["deployments"], 0.99), 3),
            "floor_pods_p99_s": round(pct(f["pods"], 0.99), 3),
            "status_p99_s": round(pct(op_status, 0.99), 3) if op_status else None,
        })
        result["ratio"] = round(result["p99_s"] / result["floor_p99_s"], 3) if result["floor_p99_s"] else None
        for m in MOMENTS:
            result[f"p50_{m}_s"] = round(statistics.median(o[m]), 3)
            result[f"p99_{m}_s"] = round(pct(o[m], 0.99), 3)
            result[f"floor_p99_{m}_s"] = round(pct(f[m], 0.99), 3)
            result[f"ratio_{m}"] = (round(result[f"p99_{m}_s"] / result[f"floor_p99_{m}_s"], 3)
                                    if result[f"floor_p99_{m}_s"] else None)
        # The operator's requests per revoked version and run: the teardown and what follows it (the versions
        # marked Revoked, the Models falling back) and the restore after it.
        result["requests_per_version"] = {k: round(v / (args.n * args.runs), 2) for k, v in sorted(requests.items())
                                          if round(v / (args.n * args.runs), 2) > 0}
        print(f"{'':12}{'deployments':>14}{'traffic':>10}{'pods':>10}   (p99 over {args.runs} runs, s)")
        for who, g in (("operator", o), ("floor", f)):
            print(f"{who:12}" + "".join(f"{pct(g[m], 0.99):{w}.3f}" for m, w in zip(MOMENTS, (14, 10, 10),
                                                                                  strict=True)))
        print(f"{'ratio':12}" + "".join(f"{result['ratio_' + m] or 0:{w}.3f}" for m, w in zip(MOMENTS, (14, 10, 10),
                                                                                             strict=True)))
        if requests:
            print("operator requests per version and run (revocation + restore): " + ", ".join(
                f"{k} {v}" for k, v in result["requests_per_version"].items()))
        print(json.dumps(result))
        return 0
    finally:
        for c in (op_moments, floor_moments):
            if c:
                c.close()
        for ns in spaces + floor_spaces:
            try:
                core.delete_namespace(ns)
            except Exception:  # noqa: BLE001
                pass
        if op is not None:
            op.stop(20)


if __name__ == "__main__":
    mp.set_start_method("spawn")
    sys.exit(main())
