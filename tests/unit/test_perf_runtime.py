"""The pieces that keep the operator's requests down: the request counter's naming, the routine lane's order
(versions before Models, no starvation), the Event rate limit and its bounded backlog."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.support.fakekube import FakeKube

from modelhub.adapters import metrics
from modelhub.adapters.kube import request_kind
from modelhub.domain.events import Event
from modelhub.handlers.context import Context, Settings
from modelhub.handlers.runtime import Lane
from modelhub.vocab import conditions as C


@pytest.mark.parametrize(("method", "url", "expected"), [
    ("GET", "https://h:6443/api/v1/namespaces/a/pods?labelSelector=x%3Dy", ("list", "pods")),
    ("GET", "https://h:6443/api/v1/pods?watch=true&resourceVersion=5", ("watch", "pods")),
    ("GET", "https://h:6443/api/v1/namespaces/a/configmaps/keys", ("get", "configmaps")),
    ("PATCH", "https://h/apis/modelhub.dev/v1alpha1/namespaces/a/modelversions/v1/status", ("patch",
                                                                                          "modelversions/status")),
    ("PATCH", "https://h/apis/modelhub.dev/v1alpha1/revocations/r/status", ("patch", "revocations/status")),
    ("PATCH", "https://h/apis/apps/v1/namespaces/a/deployments/d?fieldManager=m&force=true", ("patch",
                                                                                            "deployments")),
    ("PUT", "https://h/apis/coordination.k8s.io/v1/namespaces/s/leases/l", ("update", "leases")),
    ("POST", "https://h/apis/events.k8s.io/v1/namespaces/a/events", ("create", "events")),
    ("DELETE", "https://h/api/v1/namespaces/a/pods/p", ("delete", "pods")),
    ("DELETE", "https://h/api/v1/namespaces/a/pods?labelSelector=x", ("deletecollection", "pods")),
    ("GET", "https://h/apis/serving.kserve.io/v1beta1", ("get", "discovery")),
    ("GET", "https://h/api/v1/namespaces/a", ("get", "namespaces")),
])
def test_request_kind_names_verb_and_resource(method: str, url: str, expected: tuple[str, str]) -> None:
    assert request_kind(method, url) == expected


def test_requests_are_counted_with_bounded_labels() -> None:
    def value(verb: str, resource: str) -> float:
        return metrics.REGISTRY.get_sample_value("modelhub_api_requests_total",
                                                 {"verb": verb, "resource": resource}) or 0.0

    before, other = value("delete", "pods"), value("create", metrics.OTHER)
    metrics.record_api_request("delete", "pods")
    metrics.record_api_request("create", "widgets/of/any/name")
    assert value("delete", "pods") == before + 1
    assert value("create", metrics.OTHER) == other + 1


def test_lane_takes_versions_before_models_but_never_starves_a_model() -> None:
    async def run() -> tuple[list[Any], list[Any]]:
        lane = Lane(max_wait=0.2)
        for key in [("Model", "a", "m"), ("ModelVersion", "a", "v1"), ("ModelVersion", "a", "v2")]:
            lane.put_nowait(key)
        first = [await lane.get() for _ in range(3)]
        lane.put_nowait(("Model", "a", "m"))
        await asyncio.sleep(0.25)  # the Model has waited its turn: it goes before a version queued now
        lane.put_nowait(("ModelVersion", "a", "v3"))
        second = [await lane.get() for _ in range(2)]
        assert lane.qsize() == 0
        return first, second

    first, second = asyncio.run(run())
    assert first == [("ModelVersion", "a", "v1"), ("ModelVersion", "a", "v2"), ("Model", "a", "m")]
    assert second == [("Model", "a", "m"), ("ModelVersion", "a", "v3")]


def _recorder(**settings: Any) -> tuple[Context, FakeKube]:
    kube = FakeKube()

    async def direct(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    ctx = Context(kube=kube, settings=Settings(**settings), io=direct)
    return ctx, kube


def test_events_are_rate_limited_and_a_full_backlog_drops_and_counts() -> None:
    obj = {"apiVersion": "modelhub.dev/v1alpha1", "kind": "Model", "metadata": {"name": "m", "namespace": "a"}}
    dropped = lambda: metrics.REGISTRY.get_sample_value("modelhub_events_dropped_total") or 0.0  # noqa: E731

    async def run() -> tuple[int, int, float]:
        ctx, kube = _recorder(event_qps=20.0, event_burst=5, event_backlog=30)
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i in range(40):
            ctx.events.record(obj, [Event(C.NORMAL, "Tested", f"event {i}")], "Test")
        await asyncio.sleep(0.1)
        early = len(kube.recorded_events)
        await ctx.events.drain()
        return early, len(kube.recorded_events), loop.time() - started

    before = dropped()
    early, total, took = asyncio.run(run())
    assert total == 30 and dropped() == before + 10  # 10 beyond the backlog: dropped, counted
    assert early <= 5 + 3  # the burst, then 20 a second
    assert took >= (30 - 5) / 20 * 0.9


def test_the_event_backlog_keeps_whom_each_event_regards_not_a_task_and_body_each() -> None:
    big = {"apiVersion": "modelhub.dev/v1alpha1", "kind": "ModelVersion",
           "metadata": {"name": "v", "namespace": "a", "uid": "u-1", "resourceVersion": "7", "labels": {"x": "y"}},
           "spec": {"artifact": {"uri": "s3://b/m"}}, "status": {"conditions": [{"type": "Verified"}]}}
    seen: list[dict[str, Any]] = []

    async def run() -> tuple[int, int]:
        ctx, kube = _recorder(event_qps=0.0, event_concurrency=3)
        real = kube.event
        kube.event = lambda obj, **kw: (seen.append(obj), real(obj, **kw))  # type: ignore[method-assign]
        for i in range(100):
            ctx.events.record(big, [Event(C.NORMAL, "Tested", f"event {i}"), Event(C.NORMAL, "Again", "x")], "Test")
        tasks = len(asyncio.all_tasks()) - 1  # (this one)
        await ctx.events.drain()
        return tasks, len(kube.recorded_events)

    tasks, total = asyncio.run(run())
    assert tasks == 3 and total == 200  # three senders, however many records wait
    assert seen[0] == {"apiVersion": "modelhub.dev/v1alpha1", "kind": "ModelVersion",
                       "metadata": {"name": "v", "namespace": "a", "uid": "u-1", "resourceVersion": "7"}}


def test_a_reconcile_supersedes_its_keys_look_again_timer() -> None:
    """A key with a pending requeue that is reconciled earlier (an event enqueued it) is not reconciled again when
    the old timer would have fired: the reconcile decided its own requeue (here: none)."""
    from modelhub.handlers.runtime import WorkQueue

    calls: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def reconcile(key: Any) -> float | None:
            calls.append(loop.time())
            return 0.3 if len(calls) == 1 else None  # the first asks to look again; the next one does not

        q = WorkQueue(reconcile, workers=1, revocation_workers=1)
        q.start()
        key = ("Model", "ns", "m")
        q.add(key)
        await asyncio.sleep(0.05)
        assert len(calls) == 1  # and a timer for 0.3 s later is pending
        q.add(key)  # an event: reconciled at once
        await asyncio.sleep(0.5)  # past the old timer
        await q.stop()

    asyncio.run(main())
    assert len(calls) == 2
    assert calls[1] - calls[0] < 0.25  # the second was the event's, not the timer's


def test_a_write_behind_runs_once_per_key_and_again_only_for_something_new() -> None:
    from modelhub.handlers.context import WritesBehind

    ran: list[str] = []

    async def main() -> None:
        behind = WritesBehind(concurrency=2)
        gate = asyncio.Event()

        def write(label: str) -> Any:
            async def go() -> None:
                ran.append(label)
                await gate.wait()
            return go

        behind.submit("svc", write("a"), what="A")
        await asyncio.sleep(0)
        behind.submit("svc", write("a again"), what="A")  # the same, while it runs: nothing more
        behind.submit("svc", write("b"), what="B")  # something new: once the running one ends
        behind.submit("svc", write("c"), what="C")  # ... and the latest wins
        gate.set()
        await behind.drain()

    asyncio.run(main())
    assert ran == ["a", "c"]


def test_writes_behind_wait_in_order_as_one_queue_with_a_few_runners() -> None:
    from modelhub.handlers.context import WritesBehind

    ran: list[str] = []

    async def main() -> tuple[int, int]:
        behind = WritesBehind(concurrency=3)
        gate = asyncio.Event()

        def write(label: str) -> Any:
            async def go() -> None:
                await gate.wait()
                ran.append(label)
            return go

        for i in range(100):
            behind.submit(f"svc-{i}", write(f"{i}"), what=str(i))
        await asyncio.sleep(0)  # the runners take the first three
        behind.submit("svc-50", write("50 again"), what="50 again")  # waiting: replaced, keeps its place
        behind.submit("svc-0", write("0 again"), what="0 again")  # running: once more after it
        tasks = len(asyncio.all_tasks()) - 1
        gate.set()
        await behind.drain()
        return tasks, len(asyncio.all_tasks()) - 1

    tasks, after = asyncio.run(main())
    assert tasks == 3 and after == 0
    assert sorted(ran) == sorted([str(i) for i in range(100) if i != 50] + ["50 again", "0 again"])
    assert ran.index("0") < ran.index("0 again")
    assert ran.index("50 again") < ran.index("51") and "50" not in ran


@pytest.mark.parametrize(("env", "threads"), [
    ({}, 28),  # 2 x (4 workers + 4 revocation workers) + 8 Event senders + 4 writes behind (was a fixed 96)
    ({"MODELHUB_WORKERS": "16", "MODELHUB_REVOCATION_WORKERS": "1"}, 46),
    ({"MODELHUB_WORKERS": "64"}, 148),
])
def test_the_io_threads_follow_what_can_be_in_flight(env: dict[str, str], threads: int) -> None:
    assert Settings.from_env(env).io_threads == threads


def _decoded(name: str, *, replicas: Any = 1, message: str = "ready") -> dict[str, Any]:
    """A Deployment as a watch decodes it: every decode has its own copy of every string, dict and list."""
    import json

    from modelhub.handlers.runtime import SHARED_STRING_MAX

    return json.loads(json.dumps({
        "metadata": {"name": name, "namespace": "team-a", "labels": {"app": "clf", "version": name}},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [
            {"name": "server", "imagePullPolicy": "IfNotPresent", "args": ["--port", "8080", "--name", name],
             "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}, "ports": [{"containerPort": 8080}]}]}}},
        "status": {"conditions": [{"type": "Available", "message": message * (SHARED_STRING_MAX + 1)}]}}))


def test_cached_objects_share_their_equal_parts_and_stay_equal() -> None:
    import copy

    from modelhub.handlers.runtime import Cache

    cache = Cache()
    a, b = _decoded("a"), _decoded("b")
    assert a["metadata"]["namespace"] is not b["metadata"]["namespace"]
    before_a, before_b = copy.deepcopy(a), copy.deepcopy(b)
    cache.put("Deployment", a)
    cache.put("Deployment", b)
    ca, cb = cache.get("Deployment", "team-a", "a"), cache.get("Deployment", "team-a", "b")
    assert ca == before_a and cb == before_b  # nothing changed but identity
    assert ca is not None and cb is not None
    assert ca["metadata"]["namespace"] is cb["metadata"]["namespace"]  # short strings
    c0, c1 = ca["spec"]["template"]["spec"]["containers"][0], cb["spec"]["template"]["spec"]["containers"][0]
    assert c0["resources"] is c1["resources"] and c0["ports"] is c1["ports"]  # equal parts, once
    assert ca["status"] is cb["status"]  # long strings too, when the whole part is equal
    assert c0 is not c1 and c0["args"] is not c1["args"]  # parts that differ stay apart ...
    assert c0["args"][0] is c1["args"][0]  # ... and share what they can


@pytest.mark.parametrize(("one", "other"), [
    (True, 1), (1, 1.0), (0, False), (None, 0), ("1", 1), ([], {}), ({"a": 1}, {"a": True}),
])
def test_parts_equal_in_python_but_not_in_json_are_not_shared(one: Any, other: Any) -> None:
    import orjson

    from modelhub.handlers.runtime import Cache

    cache = Cache()
    cache.put("Deployment", _decoded("a", replicas={"x": one}))
    cache.put("Deployment", _decoded("b", replicas={"x": other}))
    ca, cb = cache.get("Deployment", "team-a", "a"), cache.get("Deployment", "team-a", "b")
    assert ca is not None and cb is not None
    assert orjson.dumps(ca["spec"]["replicas"]) == orjson.dumps({"x": one})
    assert orjson.dumps(cb["spec"]["replicas"]) == orjson.dumps({"x": other})


def test_a_deep_hostile_object_is_cached_as_decoded() -> None:
    from modelhub.handlers.runtime import SHARED_DEPTH_MAX, Cache

    deep: Any = "leaf"
    for _ in range(5000):  # far past the recursion limit: the parts below the depth bound are left alone
        deep = {"d": [deep]}
    cache = Cache()
    assert cache.put("ModelVersion", {"metadata": {"name": "deep", "namespace": "team-a"}, "spec": deep})
    node = (cache.get("ModelVersion", "team-a", "deep") or {})["spec"]
    for _ in range(5000):
        node = node["d"][0]
    assert node == "leaf"
    assert len(cache.parts) <= 2 * SHARED_DEPTH_MAX


def test_the_shared_parts_go_with_the_last_object_that_holds_them() -> None:
    from modelhub.handlers.runtime import Cache, SharedParts

    cache = Cache(parts=SharedParts(sweep_min=16))
    for i in range(200):  # statuses that change on every event: the old ones go at the sweeps
        cache.put("Deployment", _decoded(f"v{i % 5}", message=f"m{i}"))
    kept = cache.get("Deployment", "team-a", "v0")
    assert kept is not None
    assert len(cache.parts) < 16 + 16 // 4 + 5 * 12  # the live objects' parts, and those since the last sweep
    for i in range(5):
        cache.drop("Deployment", "team-a", f"v{i}")
    cache.parts.sweep()
    assert len(cache.parts) > 0  # `kept` still holds its parts
    resources = kept["spec"]["template"]["spec"]["containers"][0]["resources"]
    cache.put("Deployment", _decoded("again"))
    again = cache.get("Deployment", "team-a", "again")
    assert again is not None and again["spec"]["template"]["spec"]["containers"][0]["resources"] is resources
    del kept, resources, again
    cache.drop("Deployment", "team-a", "again")
    cache.parts.sweep()
    assert len(cache.parts) == 0


@pytest.mark.parametrize(("data", "expected"), [
    (b'{"metadata": {"name": "a"}, "spec": {"replicas": 2}}', {"metadata": {"name": "a"}, "spec": {"replicas": 2}}),
    (b'{"spec": {"s": "\\ud800"}}', {"spec": {"s": "\ud800"}}),  # a lone surrogate orjson refuses: json takes it
    ('{"s": "caf\u00e9"}', {"s": "caf\u00e9"}),
])
def test_api_json_is_decoded_whatever_a_tenant_put_in_it(data: bytes | str, expected: dict[str, Any]) -> None:
    from modelhub.adapters.kube import loads

    assert loads(data) == expected


def test_all_connections_of_the_api_pool_share_one_tls_context(tmp_path: Any) -> None:
    import ssl

    import urllib3

    from modelhub.adapters.certs import self_signed
    from modelhub.adapters.kube import share_tls_context

    cert, key = self_signed(tmp_path, ["127.0.0.1"])
    made = urllib3.PoolManager(cert_reqs=ssl.CERT_REQUIRED, ca_certs=str(cert), cert_file=str(cert),
                               key_file=str(key), ca_cert_data=None, maxsize=7)
    pool = share_tls_context(made)
    a, b = pool.connection_from_host("a.example", 443, "https"), pool.connection_from_host("b.example", 443, "https")
    ctx = a.conn_kw["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext) and b.conn_kw["ssl_context"] is ctx
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.get_ca_certs()  # the CA is loaded once, in the context
    assert a.pool is not None and a.pool.maxsize == 7 and "cert_file" not in pool.connection_pool_kw
    # Left as they are: a pool that does not verify, and a proxy's.
    insecure = urllib3.PoolManager(cert_reqs=ssl.CERT_NONE)
    assert share_tls_context(insecure) is insecure
    proxied = urllib3.ProxyManager("http://proxy.example:3128", cert_reqs=ssl.CERT_REQUIRED)
    assert share_tls_context(proxied) is proxied


def test_work_arriving_as_the_last_drainer_ends_is_drained() -> None:
    """The drainer ends, and before its task's done callbacks run, new work arrives: it must get a drainer (it
    used to wait for the next arrival, and the last Services of a rollout for a reconcile to come along)."""
    from modelhub.handlers.context import Drainers

    backlog: list[str] = []
    done: list[str] = []

    async def main() -> None:
        drainers = Drainers(limit=1)
        loop = asyncio.get_running_loop()

        def arrive(item: str) -> None:
            backlog.append(item)
            drainers.start(drain)

        async def drain() -> None:
            while backlog:
                done.append(backlog.pop(0))
                await asyncio.sleep(0)
            if "late" not in done:
                loop.call_soon(arrive, "late")  # runs before the finished task's done callbacks

        arrive("first")
        await drainers.wait()
        for _ in range(5):  # a few loop iterations for a drainer started late
            await asyncio.sleep(0)
        await drainers.wait()

    asyncio.run(main())
    assert done == ["first", "late"]
