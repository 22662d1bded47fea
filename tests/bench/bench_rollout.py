#!/usr/bin/env python3
"""Benchmark rollout: 100 signed ModelVersions applied at once, until all 100 Deployments are Available.

    python tests/bench/bench_rollout.py [--n 100] [--namespaces 10] [--concurrency 32] [--timeout 300]
                                        [--runs 1] [--operator-verbose] [--keep]
                                        [--apiserver-profile DIR [--apiserver-profile-seconds 60]]

Needs KUBECONFIG pointing at a live cluster (`make bench-rollout` brings up the local control plane). Unless
MODELHUB_OPERATOR=external, it applies the CRDs and starts the operator as a subprocess (webhooks on a free
port, no metrics port), like the e2e fixture.

Setup (not timed): N/NAMESPACES namespaces each hold a keyring ConfigMap, a ConfigMap of signature bundles and
one CPU Model per version (1 replica, `stable: 1.0.0`). The Models wait with VersionNotFound.

* operator: N ModelVersions (each its own Model's 1.0.0, bundle in the ConfigMap) are created concurrently by a
  thread pool; the clock runs from the first create to the moment the last of the N Deployments is Available
  (a watch on Deployments).
* floor: in fresh namespaces, the same N Deployments and the N Services in front of them (built by the
  operator's own builders, so the objects are the same shape; no owner, not labelled for the operator) are
  created directly by the same thread pool, each Deployment and its Service at once, and timed to all
  Available the same way. It is the best a plain client can do for the same work on this cluster (a Service
  create, which allocates a ClusterIP, costs the API server about three Deployment creates).
  `--floor deployments` leaves the Services out, as the floor did before.

With `--runs R` the floor and the operator run R times, alternating, each in new namespaces: `seconds` and
`floor_seconds` are the medians, `ratio` is theirs, and every run's figures are listed (this machine's figures
move by 20-30 % from one run to the next). The details printed are those of the median run.

Prints per-object latencies (create -> Deployment seen, seen -> Available; median / p99), where each
Deployment's time went on the server (its controller creating the ReplicaSet, the pod Ready, the controller
reporting it Available: the objects' own timestamps), then as the LAST line
one JSON object: {"n": ..., "floor": "services", "runs": R, "seconds": ..., "floor_seconds": ..., "ratio": ...,
"run_seconds": [...], "run_floor_seconds": [...], "requests_per_version": {"verb resource": count, ...}} - the operator's API requests (its modelhub_api_requests_total, scraped before the
creates and once its follow-up has settled) divided by N. Namespaces are deleted after.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO))

import kubernetes  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402
from tests.support import cpu  # noqa: E402
from tests.support.kube import install_crds  # noqa: E402
from tests.support.operator import (  # noqa: E402
    Operator,
    requests_between,
    scrape,
    settled_requests,
    start_operator,
    work_between,
)

from modelhub.domain.signing import (  # noqa: E402
    compute_manifest,
    generate_private_key,
    sign_model_dir,
    subject_digest,
)
from modelhub.domain.workloads import LABEL_MANAGED, LABEL_SERVES, build_deployment, build_service  # noqa: E402

GROUP, VERSION = "modelhub.dev", "v1alpha1"
IMAGE = "ghcr.io/example/serve:1.0"
LOADER_IMAGE = "ghcr.io/modelhub/modelhub:0.1.0"
KEYRING, SIGNATURES = "release-keys", "signatures"
BENCH_LABEL = "modelhub.dev/bench"


def log(msg: str) -> None:
    print(msg, flush=True)


# --- the cluster ------------------------------------------------------------------------------------------
class Clients:
    def __init__(self, pool: int) -> None:
        cfg = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(client_configuration=cfg)
        cfg.connection_pool_maxsize = pool
        self.api = kubernetes.client.ApiClient(cfg)
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.apps = kubernetes.client.AppsV1Api(self.api)
        self.custom = kubernetes.client.CustomObjectsApi(self.api)


@contextlib.contextmanager
def operator_process(verbose: bool) -> Iterator[Operator | None]:
    if os.environ.get("MODELHUB_OPERATOR") == "external":
        log("operator: external (MODELHUB_OPERATOR=external)")
        yield None
        return
    log_path = Path(tempfile.mkdtemp(prefix="bench-rollout-")) / "operator.log"
    op = start_operator(log_path, verbose=verbose)
    try:
        log(f"operator: pid {op.proc.pid}, webhooks on 127.0.0.1:{op.webhook_port}, metrics on "
            f":{op.metrics_port}, log {log_path}")
        yield op
    finally:
        op.stop(15)


# --- fixtures: keys, signed models, manifests --------------------------------------------------------------
@dataclass
class Item:
    namespace: str
    model: str
    version_name: str
    digest: str
    bundle: bytes
    uri: str

    def model_manifest(self) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "Model",
            "metadata": {"name": self.model, "namespace": self.namespace, "labels": {BENCH_LABEL: "true"}},
            "spec": {
                "card": {"description": "rollout benchmark", "owner": "bench"},
                "trust": {"keys": [{"name": KEYRING}]},
                "serving": {"runtime": {"image": IMAGE, "port": 8080}, "accelerator": {"kind": "cpu"}, "replicas": 1},
                "promotion": {"stable": "1.0.0"},
            },
        }

    def version_manifest(self) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelVersion",
            "metadata": {"name": self.version_name, "namespace": self.namespace, "labels": {BENCH_LABEL: "true"}},
            "spec": {"model": self.model, "version": "1.0.0", "artifact": {
                "uri": self.uri, "digest": self.digest,
                "signature": {"configMapRef": {"name": SIGNATURES, "key": f"{self.model}.sig"}},
            }},
        }

    def floor_deployment(self, namespace: str) -> dict[str, Any]:
        """The Deployment the operator would build for this version, as a plain client's object."""
        model = {**self.model_manifest(), "metadata": {"name": self.model, "namespace": namespace, "uid": "x"}}
        version = {**self.version_manifest(),
                   "metadata": {"name": self.version_name, "namespace": namespace, "uid": "x"}}
        dep = build_deployment(model, version, replicas=1, role="stable", loader_image=LOADER_IMAGE,
                               cpu_node_selector={"modelhub.dev/node-class": "cpu"})
        meta = dep["metadata"]
        del meta["ownerReferences"]  # no owner: the garbage collector would delete it
        meta["labels"] = {k: v for k, v in meta["labels"].items() if k not in (LABEL_SERVES, LABEL_MANAGED)}
        meta["labels"][BENCH_LABEL] = "floor"
        return dep

    def floor_service(self, namespace: str) -> dict[str, Any]:
        """The Service the operator would build in front of this version's Deployment, as a plain client's."""
        model = {**self.model_manifest(), "metadata": {"name": self.model, "namespace": namespace, "uid": "x"}}
        svc = build_service(model)
        meta = svc["metadata"]
        del meta["ownerReferences"]
        meta["labels"] = {k: v for k, v in meta["labels"].items() if k != LABEL_MANAGED}
        meta["labels"][BENCH_LABEL] = "floor"
        return svc


def make_items(root: Path, run: str, n: int, namespaces: int, private_key: bytes) -> list[Item]:
    items = []
    for i in range(n):
        ns = f"bench-roll-{run}-{i % namespaces}"
        model = f"m{i:03d}"
        path = root / f"{ns}-{model}"
        path.mkdir(parents=True)
        (path / "weights.bin").write_bytes(f"weights {run} {i}".encode() * 64)
        (path / "config.json").write_bytes(b'{"layers": 2}')
        digest = subject_digest(compute_manifest(path))
        bundle = sign_model_dir(path, private_key)
        items.append(Item(ns, model, f"{model}-1-0-0", digest, bundle, f"file://{path}"))
    return items


# --- watching Deployments --------------------------------------------------------------------------------
@dataclass
class Watcher:
    """Records, per Deployment in the watched namespaces, when it was first seen and when it became Available."""

    clients: Clients
    namespaces: set[str]
    label_selector: str
    seen: dict[tuple[str, str], float] = field(default_factory=dict)
    available: dict[tuple[str, str], float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _thread: threading.Thread | None = None
    error: BaseException | None = None

    def start(self) -> None:
        listed = self.clients.apps.list_deployment_for_all_namespaces(label_selector=self.label_selector)
        self._rv = listed.metadata.resource_version
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            w = kubernetes.watch.Watch()
            try:
                for ev in w.stream(self.clients.apps.list_deployment_for_all_namespaces,
                                   label_selector=self.label_selector, resource_version=self._rv,
                                   timeout_seconds=30, allow_watch_bookmarks=True):
                    now = time.monotonic()
                    obj = ev["object"]
                    if ev["type"] == "ERROR":
                        raw = obj if isinstance(obj, dict) else {}
                        raise ApiException(status=raw.get("code"), reason=raw.get("message"))
                    if ev["type"] == "BOOKMARK":
                        meta = obj.get("metadata", {}) if isinstance(obj, dict) else {}
                        self._rv = meta.get("resourceVersion") or self._rv
                        continue
                    self._rv = obj.metadata.resource_version
                    if obj.metadata.namespace not in self.namespaces:
                        continue
                    key = (obj.metadata.namespace, obj.metadata.name)
                    with self._changed:
                        self.seen.setdefault(key, now)
                        st = obj.status
                        avail = any(c.type == "Available" and c.status == "True" for c in (st.conditions or []))
                        if avail and (st.available_replicas or 0) >= (obj.spec.replicas or 0):
                            self.available.setdefault(key, now)
                        self._changed.notify_all()
                    if self._stop.is_set():
                        break
            except ApiException as exc:
                if exc.status == 410:  # expired: relist
                    self._rv = self.clients.apps.list_deployment_for_all_namespaces(
                        label_selector=self.label_selector).metadata.resource_version
                    continue
                self.error = exc
                return
            except Exception as exc:  # noqa: BLE001 - reported by wait()
                if self._stop.is_set():
                    return
                self.error = exc
                return
            finally:
                w.stop()

    def wait(self, n: int, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.available) < n:
                if self.error:
                    raise RuntimeError(f"deployment watch failed: {self.error}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"only {len(self.available)}/{n} Deployments Available after {timeout}s "
                                       f"({len(self.seen)} created)")
                self._changed.wait(min(left, 1.0))
            return max(self.available.values())

    def stop(self) -> None:
        self._stop.set()


# --- the two runs --------------------------------------------------------------------------------------------
def create_all(fns: list[Callable[[], Any]], concurrency: int) -> dict[int, float]:
    """Run the creates on a thread pool; the monotonic time each create was sent, by index."""
    sent: dict[int, float] = {}

    def one(i: int) -> None:
        sent[i] = time.monotonic()
        fns[i]()

    with cf.ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(one, i) for i in range(len(fns))]:
            f.result()
    return sent


def stats(values: list[float]) -> str:
    if not values:
        return "-"
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(round(0.99 * (len(values) - 1))))]
    return f"median {statistics.median(values):6.2f}s  p99 {p99:6.2f}s  max {values[-1]:6.2f}s"


@dataclass
class Result:
    seconds: float
    to_seen: list[float]
    seen_to_available: list[float]
    total: list[float]
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by process over the timed window
    stages: dict[str, list[float]] = field(default_factory=dict)  # server-side, per Deployment (see stages())


def timed_run(clients: Clients, namespaces: set[str], keys: list[tuple[str, str]],
              creates: list[Callable[[], Any]], label_selector: str, concurrency: int, timeout: float,
              names: dict[int, str] | None = None) -> Result:
    watcher = Watcher(clients, namespaces, label_selector)
    watcher.start()
    try:
        cpu_before = cpu.snapshot()
        t0 = time.monotonic()
        sent = create_all(creates, concurrency)
        created = time.monotonic() - t0
        end = watcher.wait(len(keys), timeout)
        spent = cpu.cpu_between(cpu_before, cpu.snapshot(), {os.getpid(): "(this benchmark)", **(names or {})})
    finally:
        watcher.stop()
    log(f"  all {len(creates)} creates returned after {created:.2f}s")
    to_seen = [watcher.seen[k] - sent[i] for i, k in enumerate(keys)]
    seen_to_avail = [watcher.available[k] - watcher.seen[k] for k in keys]
    total = [watcher.available[k] - sent[i] for i, k in enumerate(keys)]
    return Result(end - t0, to_seen, seen_to_avail, total, spent)


@contextlib.contextmanager
def apiserver_profile(clients: Clients, path: Path | None, seconds: int) -> Iterator[None]:
    """With a path: the API server's CPU profile (its /debug/pprof/profile, `seconds` long from the block's start)
    written there, for `go tool pprof -top -cum <path>`: where its time goes while the block runs."""
    if path is None:
        yield
        return
    failed: list[str] = []

    def fetch() -> None:
        try:
            _, url, headers, _, _ = clients.api.param_serialize(
                "GET", "/debug/pprof/profile", query_params=[("seconds", str(seconds))],
                auth_settings=["BearerToken"])
            resp = clients.api.call_api("GET", url, header_params=headers, _request_timeout=seconds + 60)
            data = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {data[:200]!r}")
            path.write_bytes(data)
        except Exception as exc:  # a profile is a diagnosis: its absence must not fail the run
            failed.append(f"{type(exc).__name__}: {exc}")

    t = threading.Thread(target=fetch, daemon=True)
    t.start()
    try:
        yield
    finally:
        t.join(seconds + 90)
        log(f"  API server CPU profile: {failed[0] if failed else path}")


def _owner(obj: Any) -> str | None:
    refs = obj.metadata.owner_references or []
    return refs[0].name if refs else None


def _median_max(xs: list[float]) -> str:
    return f"{statistics.median(xs):6.1f} / {max(xs):4.0f}" if xs else "-"


def stages(clients: Clients, namespaces: set[str], label_selector: str) -> dict[str, list[float]]:
    """Where each Deployment's time went on the server, from the objects' own timestamps (whole seconds): its
    controller creating the ReplicaSet, the pods created and Ready, the controller reporting it Available."""
    out: dict[str, list[float]] = {"Deployment -> ReplicaSet": [], "ReplicaSet -> pod Ready": [],
                                   "pod Ready -> Available": []}
    for ns in sorted(namespaces):
        rs_of = {_owner(r): r for r in clients.apps.list_namespaced_replica_set(ns).items}
        ready_of: dict[str | None, float] = {}
        for pod in clients.core.list_namespaced_pod(ns).items:
            for c in pod.status.conditions or []:
                if c.type == "Ready" and c.status == "True" and c.last_transition_time:
                    ready_of[_owner(pod)] = c.last_transition_time.timestamp()
        for dep in clients.apps.list_namespaced_deployment(ns, label_selector=label_selector).items:
            rs = rs_of.get(dep.metadata.name)
            avail = next((c.last_transition_time.timestamp() for c in (dep.status.conditions or [])
                          if c.type == "Available" and c.status == "True" and c.last_transition_time), None)
            if rs is None:
                continue
            created, rs_at = dep.metadata.creation_timestamp.timestamp(), rs.metadata.creation_timestamp.timestamp()
            out["Deployment -> ReplicaSet"].append(rs_at - created)
            ready = ready_of.get(rs.metadata.name)
            if ready is not None:
                out["ReplicaSet -> pod Ready"].append(ready - rs_at)
                if avail is not None:
                    out["pod Ready -> Available"].append(avail - ready)
    return out


def floor_create(clients: Clients, dep: dict[str, Any], svc: dict[str, Any] | None) -> None:
    """A bare client's rollout of one version: its Deployment and (unless --floor deployments) its Service, sent
    at once (neither waits for the other)."""
    ns = dep["metadata"]["namespace"]
    if svc is None:
        clients.apps.create_namespaced_deployment(ns, dep)
        return
    done = threading.Thread(target=clients.core.create_namespaced_service, args=(ns, svc))
    done.start()
    clients.apps.create_namespaced_deployment(ns, dep)
    done.join()


def create_namespaces(clients: Clients, names: list[str]) -> None:
    for ns in names:
        clients.core.create_namespace({"metadata": {"name": ns, "labels": {BENCH_LABEL: "true"}}})


def keyrings_and_bundles(clients: Clients, namespaces: list[str], items: list[Item], public_key: bytes) -> None:
    """The namespaces, each with the keyring ConfigMap and one ConfigMap of its versions' signature bundles."""
    create_namespaces(clients, namespaces)
    for ns in namespaces:
        clients.core.create_namespaced_config_map(ns, {
            "metadata": {"name": KEYRING}, "data": {"release.pub": public_key.decode()}})
        clients.core.create_namespaced_config_map(ns, {
            "metadata": {"name": SIGNATURES},
            "data": {f"{it.model}.sig": it.bundle.decode() for it in items if it.namespace == ns}})


def delete_namespaces(clients: Clients, names: list[str], wait: float = 90) -> None:
    for ns in names:
        with contextlib.suppress(ApiException):
            clients.core.delete_namespace(ns)
    deadline = time.monotonic() + wait
    left = set(names)
    while left and time.monotonic() < deadline:
        left = {ns for ns in left if _exists(clients, ns)}
        if left:
            time.sleep(1)
    if left:
        log(f"cleanup: {len(left)} namespaces still terminating")


def _exists(clients: Clients, ns: str) -> bool:
    try:
        clients.core.read_namespace(ns)
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def wait_models_settled(clients: Clients, items: list[Item], timeout: float = 120) -> None:
    """Every Model has been reconciled once (status.observedGeneration), so the operator is idle at t0."""
    deadline = time.monotonic() + timeout
    pending = {(it.namespace, it.model) for it in items}
    while pending and time.monotonic() < deadline:
        for ns in {ns for ns, _ in pending}:
            listed = clients.custom.list_namespaced_custom_object(GROUP, VERSION, ns, "models")
            for m in listed.get("items", []):
                if (m.get("status") or {}).get("observedGeneration") == m["metadata"].get("generation"):
                    pending.discard((ns, m["metadata"]["name"]))
        if pending:
            time.sleep(0.5)
    if pending:
        raise SystemExit(f"{len(pending)} Models were not reconciled within {timeout}s: is the operator running?")


def profile_path(args: argparse.Namespace, run: str, which: str) -> Path | None:
    if args.apiserver_profile is None:
        return None
    args.apiserver_profile.mkdir(parents=True, exist_ok=True)
    return args.apiserver_profile / f"{run}-{which}.pprof"


def one_run(args: argparse.Namespace, clients: Clients, op_proc: Operator | None, private_key: bytes,
            public_key: bytes, root: Path) -> tuple[Result, Result, dict[str, float], dict[str, float]]:
    """The floor, then the operator, each in namespaces of their own (deleted after): (operator, floor,
    the operator's requests of the run, its work)."""
    run = uuid.uuid4().hex[:5]
    requests: dict[str, float] = {}
    work: dict[str, float] = {}
    items = make_items(root / run, run, args.n, args.namespaces, private_key)
    op_namespaces = sorted({it.namespace for it in items})
    floor_namespaces = [f"bench-floor-{run}-{i}" for i in range(args.namespaces)]
    try:
        # --- floor first, on an idle cluster: the same Deployments, created directly ---
        create_namespaces(clients, floor_namespaces)
        floor_items = [(floor_namespaces[i % args.namespaces], it) for i, it in enumerate(items)]
        floor_deps = [it.floor_deployment(ns) for ns, it in floor_items]
        floor_svcs = [it.floor_service(ns) for ns, it in floor_items] if args.floor == "services" else []
        log(f"floor: creating the Deployments{' and their Services' if floor_svcs else ''} directly")
        with apiserver_profile(clients, profile_path(args, run, "floor"), args.apiserver_profile_seconds):
            floor = timed_run(
                clients, set(floor_namespaces), [(ns, it.version_name) for ns, it in floor_items],
                [lambda i=i: floor_create(clients, floor_deps[i], floor_svcs[i] if floor_svcs else None)
                 for i in range(len(floor_deps))],
                f"{BENCH_LABEL}=floor", args.concurrency, args.timeout,
            )
        floor.stages = stages(clients, set(floor_namespaces), f"{BENCH_LABEL}=floor")
        delete_namespaces(clients, floor_namespaces)  # gone before the operator run starts

        # --- setup for the operator (not timed) ---
        keyrings_and_bundles(clients, op_namespaces, items, public_key)
        for it in items:
            clients.custom.create_namespaced_custom_object(GROUP, VERSION, it.namespace, "models", it.model_manifest())
        wait_models_settled(clients, items)
        time.sleep(1)  # let the last status writes and their watch events drain
        before = settled_requests(op_proc) if op_proc else {}
        work_before = scrape(op_proc.metrics_port) if op_proc else {}

        log("operator: creating the ModelVersions")
        with apiserver_profile(clients, profile_path(args, run, "operator"), args.apiserver_profile_seconds):
            op = timed_run(
                clients, set(op_namespaces), [(it.namespace, it.version_name) for it in items],
                [lambda it=it: clients.custom.create_namespaced_custom_object(
                    GROUP, VERSION, it.namespace, "modelversions", it.version_manifest()) for it in items],
                f"{LABEL_MANAGED}=modelhub", args.concurrency, args.timeout,
                names={op_proc.proc.pid: "(the operator)"} if op_proc else None,
            )
        op.stages = stages(clients, set(op_namespaces), f"{LABEL_MANAGED}=modelhub")
        if op_proc:
            # Everything the rollout cost, up to its follow-up (status writes, Events) done.
            requests = requests_between(before, settled_requests(op_proc))
            work = work_between(work_before, scrape(op_proc.metrics_port))
    finally:
        if not args.keep:
            delete_namespaces(clients, op_namespaces + floor_namespaces)
    log(f"run {run}: operator {op.seconds:.2f}s, floor {floor.seconds:.2f}s, ratio "
        f"{op.seconds / floor.seconds if floor.seconds else float('inf'):.2f}")
    return op, floor, requests, work


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100, help="ModelVersions (and Deployments)")
    ap.add_argument("--namespaces", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=32, help="threads creating objects")
    ap.add_argument("--timeout", type=float, default=300, help="seconds to wait for all Available")
    ap.add_argument("--runs", type=int, default=1,
                    help="floor and operator runs, alternating; the ratio is of their medians")
    ap.add_argument("--operator-verbose", action="store_true", help="run the operator with --verbose (its log)")
    ap.add_argument("--keep", action="store_true", help="keep the namespaces")
    ap.add_argument("--apiserver-profile", type=Path, metavar="DIR",
                    help="write the API server's CPU profile of each timed window to DIR/<run>-<floor|operator>.pprof")
    ap.add_argument("--apiserver-profile-seconds", type=int, default=60, help="length of each profile")
    ap.add_argument("--floor", choices=("services", "deployments"), default="services",
                    help="what the floor creates per version: the Deployment and the Service the operator makes "
                         "(the same work, default), or the Deployment alone")
    args = ap.parse_args()
    if not os.environ.get("KUBECONFIG"):
        raise SystemExit("set KUBECONFIG (make bench-rollout brings up the local control plane)")

    clients = Clients(pool=max(args.concurrency * 2, 64))
    private_key, public_key = generate_private_key("p256")
    root = Path(tempfile.mkdtemp(prefix="bench-rollout-models-"))
    log(f"rollout benchmark: {args.n} ModelVersions in {args.namespaces} namespaces, concurrency "
        f"{args.concurrency}, {args.runs} run(s), KUBECONFIG={os.environ['KUBECONFIG']}")

    install_crds()
    runs: list[tuple[Result, Result, dict[str, float], dict[str, float]]] = []
    try:
        with operator_process(args.operator_verbose) as op_proc:
            for _ in range(max(1, args.runs)):
                runs.append(one_run(args, clients, op_proc, private_key, public_key, root))
            if op_proc:
                log(f"operator log: {op_proc.log_path}")
    finally:
        shutil.rmtree(root, ignore_errors=True)

    # The details of the median run (by the operator's time); the figures of every run.
    op_seconds = [r[0].seconds for r in runs]
    floor_seconds = [r[1].seconds for r in runs]
    op, floor, requests, work = sorted(runs, key=lambda r: r[0].seconds)[len(runs) // 2]
    seconds, floor_median = statistics.median(op_seconds), statistics.median(floor_seconds)
    log("")
    log(f"{'':34}{'operator':>12}{'floor':>12}")
    log(f"{'all ' + str(args.n) + ' Available (wall)':34}{op.seconds:11.2f}s{floor.seconds:11.2f}s")
    log("per object, operator:")
    log(f"  create -> Deployment exists     {stats(op.to_seen)}")
    log(f"  Deployment -> Available         {stats(op.seen_to_available)}")
    log(f"  create -> Available             {stats(op.total)}")
    log("per object, floor:")
    log(f"  create -> Deployment exists     {stats(floor.to_seen)}")
    log(f"  Deployment -> Available         {stats(floor.seen_to_available)}")
    log(f"  create -> Available             {stats(floor.total)}")
    log("per Deployment, on the server (its objects' timestamps, whole seconds; median / max):")
    for name in op.stages:
        o, f = sorted(op.stages[name]), sorted(floor.stages.get(name, []))
        log(f"  {name:32} {_median_max(o):>14}s {_median_max(f):>14}s")
    log("CPU seconds over the timed window, by process (2 cores: at most twice the wall time):")
    for name in list(dict.fromkeys([*op.cpu, *floor.cpu]))[:9]:
        log(f"  {name:32} {op.cpu.get(name, 0.0):10.2f}s{floor.cpu.get(name, 0.0):11.2f}s")
    log(f"  {'all':32} {sum(op.cpu.values()):10.2f}s{sum(floor.cpu.values()):11.2f}s")
    if len(runs) > 1:
        log(f"runs: operator {', '.join(f'{s:.2f}' for s in op_seconds)} s; floor "
            f"{', '.join(f'{s:.2f}' for s in floor_seconds)} s; ratios "
            f"{', '.join(f'{o / f:.2f}' if f else 'inf' for o, f in zip(op_seconds, floor_seconds, strict=True))}")
    ratio = seconds / floor_median if floor_median else float("inf")
    log(f"ratio operator/floor{' (medians)' if len(runs) > 1 else ''}: {ratio:.2f}")
    per_version = {k: round(v / args.n, 2) for k, v in requests.items() if round(v / args.n, 2) > 0}
    if per_version:
        log("operator requests per version (verb resource: count), rollout and its follow-up:")
        for k, v in per_version.items():
            log(f"  {k:34} {v:6.2f}")
        log(f"  {'total':34} {sum(per_version.values()):6.2f}")
    if work:
        log("operator work, rollout and its follow-up (reconciles per version, mean seconds each):")
        for kind in sorted({k.split()[-1] for k in work if k.startswith("reconciles ")}):
            count = work[f"reconciles {kind}"]
            mean = work[f"reconcile seconds {kind}"] / count if count else 0.0
            log(f"  {kind:34} {count / args.n:6.2f}  {mean * 1000:7.1f} ms")
        for k, v in work.items():
            if k.startswith("latency "):
                log(f"  {'answer to ' + k.split(' ', 1)[1] + ' (mean)':34} {'':6}  {v * 1000:7.1f} ms")
        waits = work.get("queue waits", 0.0)
        log(f"  {'queue wait (mean)':34} {'':6}  {work.get('queue wait seconds', 0.0) / waits * 1000 if waits else 0:7.1f} ms")
    print(json.dumps({"n": args.n, "namespaces": args.namespaces, "floor": args.floor, "runs": len(runs),
                      "seconds": round(seconds, 3), "floor_seconds": round(floor_median, 3),
                      "ratio": round(ratio, 3), "run_seconds": [round(s, 3) for s in op_seconds],
                      "run_floor_seconds": [round(s, 3) for s in floor_seconds],
                      "requests_per_version": per_version}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
