#!/usr/bin/env python3
"""Benchmark at scale: 1000 ModelVersions over 50 namespaces beside 5,000 unrelated objects.

    python tests/bench/bench_scale.py [--versions 1000] [--namespaces 50] [--unrelated 5000] [--idle 60]

Needs KUBECONFIG pointing at a live cluster (`make bench-scale` brings up the local control plane). Unless
MODELHUB_OPERATOR=external, it applies the CRDs and starts the operator as a subprocess, like the e2e fixture.

1. Unrelated objects first (not timed): in 10 namespaces of their own, ConfigMaps, Deployments (0 replicas, so
   they cost the scheduler nothing; labelled like any application, not for modelhub) and Services, in equal
   shares - the operator must not pay for them.
2. The operator's share: per namespace a keyring and a ConfigMap of bundles, one CPU Model per version
   (1 replica, `stable: 1.0.0`), then all ModelVersions at once. `converge_s`: from the first ModelVersion
   create to every version's Deployment Available.
3. `idle_cpu_s`: the operator's CPU seconds (user + system, /proc) over `--idle` seconds at rest once converged;
   `peak_rss_mb`: its peak resident set (VmHWM) over the whole run. Its API requests at rest are printed too.

The last line is one JSON object: {"versions", "namespaces", "unrelated", "converge_s", "peak_rss_mb",
"idle_cpu_s", "idle_seconds", "idle_requests"}. Namespaces are deleted after.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO))

from tests.bench.bench_rollout import (  # noqa: E402
    GROUP,
    VERSION,
    Clients,
    Watcher,
    create_namespaces,
    delete_namespaces,
    keyrings_and_bundles,
    log,
    make_items,
    wait_models_settled,
)
from tests.support.kube import install_crds  # noqa: E402
from tests.support.operator import (  # noqa: E402
    Operator,
    api_requests,
    requests_between,
    settled_requests,
    start_operator,
)

from modelhub.domain.signing import generate_private_key  # noqa: E402
from modelhub.domain.workloads import LABEL_MANAGED  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def unrelated_objects(namespaces: list[str], total: int) -> list[tuple[str, dict[str, Any]]]:
    """(kind, body): ConfigMaps, Deployments (0 replicas) and Services in equal shares over `namespaces`."""
    out: list[tuple[str, dict[str, Any]]] = []
    for i in range(total):
        ns = namespaces[i % len(namespaces)]
        kind = ("ConfigMap", "Deployment", "Service")[i % 3]
        name = f"app-{i}"
        labels = {"app": name, "team": "other"}
        if kind == "ConfigMap":
            body: dict[str, Any] = {"metadata": {"name": name, "namespace": ns, "labels": labels},
                                    "data": {"config.yaml": f"setting: {i}\n" * 8}}
        elif kind == "Deployment":
            body = {"metadata": {"name": name, "namespace": ns, "labels": labels},
                    "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                             "template": {"metadata": {"labels": labels},
                                          "spec": {"containers": [{"name": "app", "image": "example.invalid/a:1"}]}}}}
        else:
            body = {"metadata": {"name": name, "namespace": ns, "labels": labels},
                    "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}
        out.append((kind, body))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--versions", type=int, default=1000)
    ap.add_argument("--namespaces", type=int, default=50)
    ap.add_argument("--unrelated", type=int, default=5000)
    ap.add_argument("--unrelated-namespaces", type=int, default=10)
    ap.add_argument("--idle", type=float, default=60.0, help="seconds at rest to measure the operator's CPU over")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--timeout", type=float, default=1200)
    args = ap.parse_args()
    if not os.environ.get("KUBECONFIG"):
        raise SystemExit("set KUBECONFIG (make bench-scale brings up the local control plane)")

    run = uuid.uuid4().hex[:5]
    clients = Clients(pool=max(args.concurrency * 2, 64))
    private_key, public_key = generate_private_key("p256")
    root = Path(tempfile.mkdtemp(prefix="bench-scale-models-"))
    items = make_items(root, run, args.versions, args.namespaces, private_key)
    op_namespaces = sorted({it.namespace for it in items})
    other_namespaces = [f"bench-other-{run}-{i}" for i in range(args.unrelated_namespaces)]
    log(f"scale benchmark: {args.versions} ModelVersions in {len(op_namespaces)} namespaces, {args.unrelated} "
        f"unrelated objects in {len(other_namespaces)} namespaces, KUBECONFIG={os.environ['KUBECONFIG']}")
    install_crds()
    op: Operator | None = None
    try:
        # 1. the unrelated objects, before the operator starts (its first lists see them all)
        t = time.monotonic()
        create_namespaces(clients, other_namespaces)
        create = {"ConfigMap": clients.core.create_namespaced_config_map,
                  "Deployment": clients.apps.create_namespaced_deployment,
                  "Service": clients.core.create_namespaced_service}
        with cf.ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(lambda kb: create[kb[0]](kb[1]["metadata"]["namespace"], kb[1]),
                          unrelated_objects(other_namespaces, args.unrelated)))
        log(f"unrelated: {args.unrelated} objects created in {time.monotonic() - t:.1f}s")

        if os.environ.get("MODELHUB_OPERATOR") != "external":
            log_path = Path(tempfile.mkdtemp(prefix="bench-scale-")) / "operator.log"
            op = start_operator(log_path)
            log(f"operator: pid {op.proc.pid}, metrics on :{op.metrics_port}, log {log_path}")

        # 2. the operator's share
        keyrings_and_bundles(clients, op_namespaces, items, public_key)
        with cf.ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(lambda it: clients.custom.create_namespaced_custom_object(
                GROUP, VERSION, it.namespace, "models", it.model_manifest()), items))
        wait_models_settled(clients, items, timeout=args.timeout)
        watcher = Watcher(clients, set(op_namespaces), f"{LABEL_MANAGED}=modelhub")
        watcher.start()
        try:
            t0 = time.monotonic()
            with cf.ThreadPoolExecutor(args.concurrency) as pool:
                list(pool.map(lambda it: clients.custom.create_namespaced_custom_object(
                    GROUP, VERSION, it.namespace, "modelversions", it.version_manifest()), items))
            end = watcher.wait(len(items), args.timeout)
        finally:
            watcher.stop()
        converge = end - t0
        log(f"converged: {args.versions} versions Available in {converge:.2f}s")

        result: dict[str, Any] = {"versions": args.versions, "namespaces": len(op_namespaces),
                                  "unrelated": args.unrelated, "converge_s": round(converge, 3)}
        if op is not None:
            # 3. at rest: the follow-up done (no request but the Lease's for 3 s), then one quiet stretch
            before = settled_requests(op, quiet=3.0, timeout=300)
            cpu0, t_idle = cpu_seconds(op.proc.pid), time.monotonic()
            time.sleep(args.idle)
            idle_cpu = cpu_seconds(op.proc.pid) - cpu0
            idle_s = time.monotonic() - t_idle
            idle_requests = requests_between(before, api_requests(op.metrics_port))
            result.update({"peak_rss_mb": round(peak_rss_mb(op.proc.pid), 1), "idle_cpu_s": round(idle_cpu, 3),
                           "idle_seconds": round(idle_s, 1), "idle_requests": idle_requests})
            log(f"at rest for {idle_s:.0f}s: {idle_cpu:.2f} CPU seconds, requests {idle_requests}; "
                f"peak RSS {result['peak_rss_mb']} MB")
        print(json.dumps(result), flush=True)
        return 0
    finally:
        if op is not None:
            op.stop(20)
        delete_namespaces(clients, op_namespaces + other_namespaces, wait=300)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
