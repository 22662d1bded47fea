"""Benchmark: how fast one Revocation tears down N running versions across 20 namespaces, against a floor.

Setup: N ModelVersions (each the stable of its own Model, 1 replica on the kwok CPU nodes) signed by one key,
spread over 20 namespaces, all Deployments Ready. Each run creates one Revocation matching them all by key
fingerprint and measures, with watches, from just before the create call to the last Deployment gone and to the
last pod gone; then deletes the Revocation and waits for everything to serve again. The floor, in the same run on
the same cluster: a plain client that deletes N equivalent Deployments directly with the same concurrency.

Prints p50/p99 over the runs and the ratio of p99s; the last line is one JSON object.
Usage: python tests/bench/bench_revocation.py --n 100 [--runs 5] (KUBECONFIG must point at the cluster;
`make bench-revocation N=100` brings up the local one and the operator).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import kubernetes
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "operator"))

from tests.support.counters import Counter  # noqa: E402
from tests.support.kube import install_crds, kubectl_bin  # noqa: E402
from tests.support.operator import start_operator  # noqa: E402

from modelhub.domain.signing import (  # noqa: E402
    compute_manifest,
    generate_private_key,
    key_fingerprint,
    sign_model_dir,
    subject_digest,
)

SERVES = "modelhub.dev/serves-artifact=true"
KUBECTL = kubectl_bin()


def kubectl_apply(docs: list[dict]) -> None:
    subprocess.run([KUBECTL, "apply", "--server-side", "--force-conflicts", "-f", "-"],
                   input=yaml.safe_dump_all(docs), text=True, check=True, capture_output=True)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def ensure_operator(log: Path) -> subprocess.Popen[bytes] | None:
    install_crds()
    if os.environ.get("MODELHUB_OPERATOR") == "external":
        return None
    return start_operator(log).proc


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--namespaces", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=int(os.environ.get("MODELHUB_TEARDOWN_CONCURRENCY", "32")))
    args = ap.parse_args()
    kubernetes.config.load_kube_config()
    cfg = kubernetes.client.Configuration.get_default_copy()
    cfg.connection_pool_maxsize = 64
    api = kubernetes.client.ApiClient(cfg)
    apps, core = kubernetes.client.AppsV1Api(api), kubernetes.client.CoreV1Api(api)
    tag = uuid.uuid4().hex[:5]
    work = Path(tempfile.mkdtemp(prefix="bench-rvk-"))
    op = ensure_operator(work / "operator.log")
    spaces = [f"bench-rvk-{tag}-{i:02d}" for i in range(args.namespaces)]
    floor_spaces = [f"bench-floor-{tag}-{i:02d}" for i in range(args.namespaces)]
    all_spaces = set(spaces) | set(floor_spaces)
    dep_counter = pod_counter = None
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
        dep_counter = Counter(apps.list_deployment_for_all_namespaces, all_spaces, SERVES)
        pod_counter = Counter(core.list_pod_for_all_namespaces, all_spaces, SERVES)
        t = time.time()
        with cf.ThreadPoolExecutor(8) as pool:
            list(pool.map(kubectl_apply, docs_by_ns.values()))
        dep_counter.wait(lambda n, r: r >= args.n, 900)
        print(f"setup: {args.n} versions serving in {time.time() - t:.1f}s", flush=True)

        op_dep, op_pod, op_status, floor_dep, floor_pod = [], [], [], [], []
        for run in range(args.runs):
            # --- the operator: one Revocation by key fingerprint
            name = f"bench-{tag}-{run}"
            t0 = time.time()
            kubernetes.client.CustomObjectsApi(api).create_cluster_custom_object(
                "modelhub.dev", "v1alpha1", "revocations",
                {"apiVersion": "modelhub.dev/v1alpha1", "kind": "Revocation", "metadata": {"name": name},
                 "spec": {"reason": "bench", "match": {"keyFingerprints": [fingerprint]}}})
            t_dep = dep_counter.wait(lambda n, r: n == 0, 600)
            t_pod = pod_counter.wait(lambda n, r: n == 0, 600)
            op_dep.append(t_dep - t0)
            op_pod.append(t_pod - t0)
            for _ in range(100):
                st = kubernetes.client.CustomObjectsApi(api).get_cluster_custom_object(
                    "modelhub.dev", "v1alpha1", "revocations", name).get("status") or {}
                if "enforcementSeconds" in st:
                    op_status.append(float(st["enforcementSeconds"]))
                    break
                time.sleep(0.1)
            print(f"run {run}: operator: deployments gone {op_dep[-1]:.3f}s, pods gone {op_pod[-1]:.3f}s, "
                  f"status.enforcementSeconds {op_status[-1] if op_status else float('nan')}", flush=True)

            # --- the floor: same number of Deployments, deleted directly with the same concurrency
            floor_docs = []
            for i in range(args.n):
                ns = floor_spaces[i % len(floor_spaces)]
                floor_docs.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {
                    "name": f"f{i}", "namespace": ns, "labels": {"modelhub.dev/serves-artifact": "true"}},
                    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": f"f{i}"}}, "template": {
                        "metadata": {"labels": {"app": f"f{i}", "modelhub.dev/serves-artifact": "true"}},
                        "spec": {"nodeSelector": {"modelhub.dev/node-class": "cpu"},
                                 "containers": [{"name": "s", "image": "example.invalid/serve:1"}]}}}})
            with cf.ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda d: apps.create_namespaced_deployment(d["metadata"]["namespace"], d), floor_docs))
            dep_counter.wait(lambda n, r: r >= args.n, 600)
            pod_counter.wait(lambda n, r: r >= args.n, 600)
            t0 = time.time()
            body = kubernetes.client.V1DeleteOptions(propagation_policy="Background", grace_period_seconds=0)
            with cf.ThreadPoolExecutor(args.concurrency) as pool:
                list(pool.map(lambda d, b=body: apps.delete_namespaced_deployment(
                    d["metadata"]["name"], d["metadata"]["namespace"], body=b), floor_docs))
            t_dep = dep_counter.wait(lambda n, r: n == 0, 600)
            t_pod = pod_counter.wait(lambda n, r: n == 0, 600)
            floor_dep.append(t_dep - t0)
            floor_pod.append(t_pod - t0)
            print(f"run {run}: floor:    deployments gone {floor_dep[-1]:.3f}s, pods gone {floor_pod[-1]:.3f}s",
                  flush=True)

            # --- restore: lift the Revocation; the operator re-verifies and rolls everything out again
            kubernetes.client.CustomObjectsApi(api).delete_cluster_custom_object(
                "modelhub.dev", "v1alpha1", "revocations", name)
            if run < args.runs - 1:
                t = time.time()
                dep_counter.wait(lambda n, r: r >= args.n, 900)
                print(f"restored in {time.time() - t:.1f}s", flush=True)

        result = {
            "n": args.n, "runs": args.runs,
            "p50_s": round(statistics.median(op_dep), 3), "p99_s": round(pct(op_dep, 0.99), 3),
            "pods_p50_s": round(statistics.median(op_pod), 3), "pods_p99_s": round(pct(op_pod, 0.99), 3),
            "floor_p50_s": round(statistics.median(floor_dep), 3), "floor_p99_s": round(pct(floor_dep, 0.99), 3),
            "floor_pods_p99_s": round(pct(floor_pod, 0.99), 3),
            "status_p99_s": round(pct(op_status, 0.99), 3) if op_status else None,
        }
        result["ratio"] = round(result["p99_s"] / result["floor_p99_s"], 3) if result["floor_p99_s"] else None
        print(f"operator: deployments gone p50 {result['p50_s']}s p99 {result['p99_s']}s; "
              f"pods gone p50 {result['pods_p50_s']}s p99 {result['pods_p99_s']}s")
        print(f"floor:    deployments gone p50 {result['floor_p50_s']}s p99 {result['floor_p99_s']}s; "
              f"pods gone p99 {result['floor_pods_p99_s']}s")
        print(f"ratio (p99 operator / p99 floor): {result['ratio']}")
        print(json.dumps(result))
        return 0
    finally:
        for c in (dep_counter, pod_counter):
            if c:
                c.close()
        for ns in spaces + floor_spaces:
            try:
                core.delete_namespace(ns)
            except Exception:  # noqa: BLE001
                pass
        if op is not None:
            op.terminate()
            op.wait(20)


if __name__ == "__main__":
    sys.exit(main())
