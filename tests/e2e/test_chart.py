"""The Helm chart as a platform engineer uses it: lint, a server-side dry run, and `helm install` with the operator
pod Running and Ready on the real node, serving its admission webhooks to the API server through its Service."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from modelhub.adapters.kube import Kube
from tests.e2e.kubehelp import ROOT, apply, condition, get, kubectl, unique, wait_condition, wait_for
from tests.e2e.signed import keyring, make_model, model_manifest, new_key, version_manifest
from tests.support import https_store

CHART = ROOT / "charts" / "modelhub"
IMAGE = os.environ.get("MODELHUB_IMAGE", "localhost/modelhub:dev")
# The model-server stand-in built with the same tag (hack/image.sh, MODELHUB_IMAGE_TAG).
SERVER_IMAGE = "localhost/modelhub-model-server:" + IMAGE.rsplit(":", 1)[1]
REAL = "modelhub.dev/node-class=real"


def helm(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    exe = os.environ.get("HELM") or shutil.which("helm")
    if not exe:
        pytest.fail("helm is not on PATH (hack/with-cluster.sh puts the pinned one there)")
    proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc


def image_values() -> list[str]:
    repo, tag = IMAGE.rsplit(":", 1)
    return ["--set", f"image.repository={repo}", "--set", f"image.tag={tag}", "--set", "image.pullPolicy=Never"]


def test_lint() -> None:
    out = helm("lint", str(CHART), "--strict")
    assert "0 chart(s) failed" in out.stdout


def _render(*sets: str) -> list[dict[str, Any]]:
    args = [a for kv in sets for a in ("--set", kv)]
    return [d for d in yaml.safe_load_all(helm("template", "modelhub", str(CHART), "-n", "mh", *args).stdout) if d]


def _names(docs: list[dict[str, Any]], kind: str) -> set[str]:
    return {d["metadata"]["name"] for d in docs if d["kind"] == kind}


def test_operator_rbac_is_least_privilege() -> None:
    docs = _render()
    cluster_rules = [r for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "modelhub-operator"
                     for r in d["rules"]]
    assert cluster_rules
    for rule in cluster_rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"], rule
        assert "secrets" not in rule["resources"], "no Secret is read cluster-wide"
        if rule["apiGroups"] == ["admissionregistration.k8s.io"] and rule["verbs"] != ["create"]:
            assert rule["resourceNames"] == ["modelhub.dev"]
    role = next(d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "modelhub-operator")
    assert role["metadata"]["namespace"] == "mh"
    reads = [r for r in role["rules"] if "get" in r["verbs"]]
    assert reads == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["modelhub-approval-key"],
                      "verbs": ["get"]},
                     {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                      "resourceNames": ["modelhub-operator"], "verbs": ["get", "update"]}]
    approver = next(d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "modelhub-approver")
    assert any("approve" in r["verbs"] and "modelversions" in r["resources"] for r in approver["rules"])
    assert _names(docs, "ClusterRole") >= {"modelhub-viewer", "modelhub-publisher", "modelhub-approver",
                                           "modelhub-revoker"}


@pytest.mark.parametrize(("sets", "present", "absent"), [
    ((), {("Service", "modelhub-webhook"), ("Service", "modelhub-metrics"), ("Job", "modelhub-uninstall")},
     {("ServiceMonitor", "modelhub")}),
    (("webhook.enabled=false",), {("Service", "modelhub-metrics")},
     {("Service", "modelhub-webhook"), ("Job", "modelhub-uninstall")}),
    (("metrics.port=0", "metrics.serviceMonitor.enabled=true"), {("Service", "modelhub-webhook")},
     {("Service", "modelhub-metrics"), ("ServiceMonitor", "modelhub")}),
    (("metrics.serviceMonitor.enabled=true",), {("ServiceMonitor", "modelhub")}, set()),
    (("rbac.userRoles=false",), {("ClusterRole", "modelhub-operator")}, {("ClusterRole", "modelhub-viewer")}),
])
def test_switches(sets: tuple[str, ...], present: set[tuple[str, str]], absent: set[tuple[str, str]]) -> None:
    docs = _render(*sets)
    have = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert present <= have and not (absent & have), have
    dep = next(d for d in docs if d["kind"] == "Deployment")
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELHUB_WEBHOOKS"] == ("0" if "webhook.enabled=false" in sets else "1")
    assert env["MODELHUB_METRICS_PORT"] == ("0" if "metrics.port=0" in sets else "8000")


def _operator_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    dep = next(d for d in docs if d["kind"] == "Deployment")
    return {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_bundle_values_reach_the_operator_as_its_settings() -> None:
    """bundles.fileRoots / allowCIDRs / maxBytes become exactly the variables the operator's bundle fetcher reads
    (adapters.bundles.ENV), and it parses them into the settings asked for; the defaults: no file root, no extra
    address, 4 MiB."""
    from modelhub.adapters.bundles import ENV, BundleSettings
    from modelhub.adapters.fetch import parse_cidrs

    names = (ENV["file_roots"], ENV["allow_cidrs"], ENV["max_bytes"])
    default = BundleSettings.from_env({k: v for k, v in _operator_env(_render()).items() if k in names})
    assert default.file_roots == () and default.allow_cidrs == () and default.max_bytes == 4 * 1024 * 1024
    env = _operator_env(_render("bundles.fileRoots={/srv/bundles,/var/lib/sig}",
                                "bundles.allowCIDRs={10.0.0.0/8,127.0.0.1}", "bundles.maxBytes=1048576"))
    assert set(names) <= set(env)
    settings = BundleSettings.from_env({k: v for k, v in env.items() if k in names})
    assert settings.file_roots == ("/srv/bundles", "/var/lib/sig")
    assert settings.allow_cidrs == parse_cidrs("10.0.0.0/8 127.0.0.1")
    assert settings.max_bytes == 1048576


def test_template_applies_on_the_server(cluster: str) -> None:
    ns = unique("chart-dry")
    kubectl("create", "namespace", ns)
    try:
        rendered = helm("template", "modelhub", str(CHART), "-n", ns, "--include-crds",
                        "--set", "metrics.serviceMonitor.enabled=false").stdout
        kinds = {d["kind"] for d in yaml.safe_load_all(rendered) if d}
        assert {"CustomResourceDefinition", "Deployment", "ClusterRole", "Role", "Service", "Secret"} <= kinds
        proc = kubectl("apply", "--dry-run=server", "-f", "-", input=rendered, check=False)
        assert proc.returncode == 0, proc.stderr
    finally:
        kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _real_node() -> str:
    nodes = json.loads(kubectl("get", "nodes", "-l", REAL, "-o", "json").stdout)["items"]
    ready = [n["metadata"]["name"] for n in nodes
             if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))]
    if not ready:
        msg = f"no Ready node labelled {REAL} (hack/cluster.sh up starts real-0 unless MODELHUB_REAL_NODE=0)"
        if os.environ.get("MODELHUB_REQUIRE_E2E") and os.environ.get("MODELHUB_REAL_NODE", "1") != "0":
            pytest.fail(msg)
        pytest.skip(msg)
    return ready[0]


@pytest.fixture(scope="module")
def installed(cluster: str) -> Iterator[tuple[str, str]]:
    node = _real_node()
    ns = unique("modelhub-chart")
    helm("install", "modelhub", str(CHART), "-n", ns, "--create-namespace", *image_values(),
         "--set", f"nodeSelector.modelhub\\.dev/node-class={REAL.split('=')[1]}", "--wait", "--timeout", "180s")
    try:
        yield ns, node
    finally:
        helm("uninstall", "modelhub", "-n", ns, "--wait", check=False)
        kubectl("delete", "validatingwebhookconfiguration,mutatingwebhookconfiguration", "modelhub.dev",
                "--ignore-not-found", check=False)
        kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _operator_pod(ns: str) -> dict[str, Any]:
    pods = json.loads(kubectl("get", "pods", "-n", ns, "-l", "app.kubernetes.io/component=operator",
                              "-o", "json").stdout)["items"]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]


def test_operator_runs_ready_on_the_real_node(installed: tuple[str, str]) -> None:
    ns, node = installed
    pod = _operator_pod(ns)
    assert pod["spec"]["nodeName"] == node
    assert pod["status"]["phase"] == "Running"
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"])
    sec = pod["spec"]["containers"][0]["securityContext"]
    assert sec["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["MODELHUB_WEBHOOK_HOST"] == f"modelhub-webhook.{ns}.svc"


def test_webhooks_are_served_through_the_service(installed: tuple[str, str]) -> None:
    ns, _ = installed

    def configured() -> dict[str, Any] | None:
        cfg = get("mutatingwebhookconfiguration", "modelhub.dev")
        hooks = (cfg or {}).get("webhooks") or []
        ok = hooks and all((h["clientConfig"].get("service") or {}).get("namespace") == ns for h in hooks)
        return cfg if ok else None

    cfg = wait_for(configured, timeout=60, what="the webhook configuration naming the chart's Service")
    assert all(h["clientConfig"].get("caBundle") for h in cfg["webhooks"])
    # The API server calls the operator pod: a new ModelVersion comes back with its creator sealed (an approve
    # request at creation is dropped: the author approves nothing).
    tenant = unique("chart-tenant")
    kubectl("create", "namespace", tenant)
    try:
        manifest = (ROOT / "config" / "samples" / "modelversion.yaml").read_text()
        doc = next(d for d in yaml.safe_load_all(manifest) if d)
        doc["metadata"]["annotations"] = {"modelhub.dev/approve": "true"}
        kubectl("apply", "-n", tenant, "-f", "-", input=yaml.safe_dump(doc))
        mv = get("modelversion", doc["metadata"]["name"], tenant) or {}
        annotations = mv["metadata"].get("annotations") or {}
        record = json.loads(annotations.get("modelhub.dev/created-by", "{}"))
        assert record.get("mac") and record.get("by"), annotations
        assert "modelhub.dev/approval" not in annotations and "modelhub.dev/approve" not in annotations
    finally:
        kubectl("delete", "namespace", tenant, "--wait=false", check=False)


def test_a_model_selecting_the_real_node_runs_its_loader_there(
    installed: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The operator in its pod rolls a verified version out; the Model's nodeSelector (node-class real) wins over
    the operator's CPU default, and the loader init container runs in a real container on the real node. Its
    artifact cannot be fetched (nothing listens at that port), so it fails, its reason is in the pod status as the
    termination message, and the server container never starts."""
    _, node = installed
    node_ip = next(a["address"] for a in get("node", node)["status"]["addresses"] if a["type"] == "InternalIP")
    ns = unique("chart-real")
    kubectl("create", "namespace", ns)
    try:
        key = new_key()
        signed = make_model(tmp_path_factory.mktemp("real"), "tiny", key)
        keyring(ns, "release-keys", {"release": key})
        apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "tiny-sig"},
               "data": {"model.sig": signed.bundle.decode()}}, ns)
        model = model_manifest("tiny", ["release-keys"], stable="1.0.0")
        model["spec"]["serving"]["nodeSelector"] = {"modelhub.dev/node-class": "real"}
        model["spec"]["serving"]["runtime"]["image"] = SERVER_IMAGE
        version = version_manifest("tiny-1-0-0", "tiny", "1.0.0", signed,
                                   signature={"configMapRef": {"name": "tiny-sig", "key": "model.sig"}})
        version["spec"]["artifact"]["uri"] = f"https://{node_ip}:1/tiny/"
        apply([model, version], ns)

        def loader_failed() -> dict[str, Any] | None:
            for pod in json.loads(kubectl("get", "pods", "-n", ns, "-l", "modelhub.dev/model=tiny",
                                          "-o", "json").stdout)["items"]:
                for st in pod["status"].get("initContainerStatuses") or []:
                    term = (st.get("state") or {}).get("terminated") or (st.get("lastState") or {}).get("terminated")
                    if st["name"] == "loader" and term and term.get("exitCode"):
                        return {"pod": pod, "terminated": term}
            return None

        found = wait_for(loader_failed, timeout=120, what="the loader init container to fail on the real node")
        pod = found["pod"]
        assert pod["spec"]["nodeName"] == node
        assert pod["spec"]["nodeSelector"] == {"modelhub.dev/node-class": "real"}
        message = found["terminated"].get("message", "")
        assert message.strip(), found["terminated"]
        # What the operator reads for the ModelVersion's condition: the last line, the loader's error.
        reason = Kube(pool_size=2).pod_problems(ns, "modelhub.dev/model=tiny")[1]
        # The loader's own line (which file it names first varies: it fetches in parallel, and it restarts).
        loader_line = re.compile(rf"^Unreachable: \S+: https://{re.escape(node_ip)}:1/tiny/\S+: .*refused")
        assert loader_line.match(message.strip().splitlines()[-1].strip()), message
        assert reason is not None and loader_line.match(reason), reason  # it names what it could not fetch
        server = pod["status"]["containerStatuses"][0]
        assert "running" not in (server.get("state") or {}) and not server.get("ready")
        # ... and the ModelVersion says so, with the loader's line, not only a crash loop hidden in pod status.
        mv = wait_condition("modelversion", "tiny-1-0-0", ns, "Available", "False", reason="ArtifactRejected",
                            timeout=60)
        assert f"{node_ip}:1" in condition(mv, "Available")["message"]
    finally:
        kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _pvc_model(ns: str, root: Any, claim: str, node: str) -> None:
    """A local PersistentVolume on the real node (its files are this host's: the node runs here) and its claim."""
    pv = f"{ns}-pv"
    apply({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
           "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadOnlyMany"],
                    "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "", "local": {"path": str(root)},
                    "claimRef": {"namespace": ns, "name": claim},
                    "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}})
    apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim},
           "spec": {"accessModes": ["ReadOnlyMany"], "storageClassName": "", "volumeName": pv,
                    "resources": {"requests": {"storage": "1Gi"}}}}, ns)


def test_the_loader_verifies_a_pvc_artifact_in_a_real_pod_and_refuses_a_tampered_one(
    installed: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A version whose files are on a PersistentVolume: the loader (a real container on the real node) checks every
    file against the signed manifest, then the model server starts and serves them (read through the pod IP).
    The same files with one byte changed: the loader refuses, no server starts, the ModelVersion says why."""
    _, node = installed
    ns = unique("chart-pvc")
    kubectl("create", "namespace", ns)
    root = tmp_path_factory.mktemp("pvc")
    root.chmod(0o755)
    try:
        key = new_key()
        files = {"weights.bin": b"\x01\x02" * 512, "config.json": b'{"layers": 2}\n'}
        signed = make_model(root, "m", key, files=files, write_sig=False)
        for p in [root / "m", *(root / "m").iterdir()]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        keyring(ns, "release-keys", {"release": key})
        apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m-sig"},
               "data": {"model.sig": signed.bundle.decode()}}, ns)
        _pvc_model(ns, root, "models", node)
        model = model_manifest("pvcm", ["release-keys"], stable="1.0.0")
        model["spec"]["serving"]["nodeSelector"] = {"modelhub.dev/node-class": "real"}
        model["spec"]["serving"]["runtime"] = {"image": SERVER_IMAGE, "port": 8080}
        version = version_manifest("pvcm-1-0-0", "pvcm", "1.0.0", signed,
                                   signature={"configMapRef": {"name": "m-sig", "key": "model.sig"}})
        version["spec"]["artifact"]["uri"] = "pvc://models/m"
        apply([model, version], ns)
        wait_condition("modelversion", "pvcm-1-0-0", ns, "Ready", timeout=180)
        pod = next(p for p in json.loads(kubectl("get", "pods", "-n", ns, "-l", "modelhub.dev/model=pvcm",
                                                 "-o", "json").stdout)["items"] if p["status"].get("podIP"))
        assert pod["spec"]["nodeName"] == node
        served = wait_for(lambda: _http_get(f"http://{pod['status']['podIP']}:8080/model/config.json"), 30,
                          what="the model server serving the verified files")
        assert served == files["config.json"]

        # Tamper one byte on the volume; a new pod (a restart of the rollout) loads it again and refuses.
        (root / "m" / "weights.bin").write_bytes(b"\x01\x03" + files["weights.bin"][2:])
        kubectl("delete", "pods", "-n", ns, "-l", "modelhub.dev/model=pvcm", "--wait=false")
        mv = wait_condition("modelversion", "pvcm-1-0-0", ns, "Available", "False", reason="ArtifactRejected",
                            timeout=120)
        assert "weights.bin" in condition(mv, "Available")["message"], condition(mv, "Available")
        for p in json.loads(kubectl("get", "pods", "-n", ns, "-l", "modelhub.dev/model=pvcm", "-o",
                                    "json").stdout)["items"]:
            if p["metadata"].get("deletionTimestamp"):
                continue
            server = (p["status"].get("containerStatuses") or [{}])[0]
            assert not server.get("ready") and "running" not in (server.get("state") or {}), server
    finally:
        kubectl("delete", "namespace", ns, "--wait=false", check=False)
        kubectl("delete", "pv", f"{ns}-pv", "--wait=false", check=False)


def _http_get(url: str) -> bytes | None:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=3) as resp:  # noqa: S310 - a pod IP on our bridge
            return resp.read()  # type: ignore[no-any-return]
    except OSError:
        return None

def _pods(ns: str, model: str) -> list[dict[str, Any]]:
    return [p for p in json.loads(kubectl("get", "pods", "-n", ns, "-l", f"modelhub.dev/model={model}",
                                          "-o", "json").stdout)["items"] if not p["metadata"].get("deletionTimestamp")]


def test_the_loader_fetches_from_an_https_store_trusting_the_namespace_ca_and_refuses_another_ca(
    installed: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """An https store on this host (reached from the pods at the real node's bridge address) whose certificate a
    private CA issued. The tenant puts that CA in a ConfigMap of its namespace and names it in
    spec.artifact.caConfigMapRef: the loader in a real pod trusts it, fetches and verifies every file, and the
    server serves them (read through the pod IP). A version naming another CA: the TLS handshake fails, the loader
    refuses, no server starts, and the ModelVersion carries the loader's one-line reason."""
    _, node = installed
    node_ip = next(a["address"] for a in get("node", node)["status"]["addresses"] if a["type"] == "InternalIP")
    ns = unique("chart-https")
    kubectl("create", "namespace", ns)
    root = tmp_path_factory.mktemp("https")
    try:
        key = new_key()
        files = {"weights.bin": bytes(range(256)) * 8, "config.json": b'{"store": "https"}\n'}
        signed = make_model(root, "m", key, files=files, write_sig=False)
        keyring(ns, "release-keys", {"release": key})
        with https_store.serve(root, node_ip) as store:
            apply([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m-sig"},
                    "data": {"model.sig": signed.bundle.decode()}},
                   {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "store-ca"},
                    "data": {"ca.crt": store.ca_pem.decode()}},
                   {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other-ca"},
                    "data": {"root.pem": https_store.other_ca_pem().decode()}}], ns)
            for name, ca in (("httpsm", {"name": "store-ca"}), ("wrongca", {"name": "other-ca", "key": "root.pem"})):
                model = model_manifest(name, ["release-keys"], stable="1.0.0")
                model["spec"]["serving"]["nodeSelector"] = {"modelhub.dev/node-class": "real"}
                model["spec"]["serving"]["runtime"] = {"image": SERVER_IMAGE, "port": 8080}
                version = version_manifest(f"{name}-1-0-0", name, "1.0.0", signed,
                                           signature={"configMapRef": {"name": "m-sig", "key": "model.sig"}})
                version["spec"]["artifact"]["uri"] = f"{store.url}/m/"
                version["spec"]["artifact"]["caConfigMapRef"] = ca
                apply([model, version], ns)

            wait_condition("modelversion", "httpsm-1-0-0", ns, "Ready", timeout=180)
            pod = next(p for p in _pods(ns, "httpsm") if p["status"].get("podIP"))
            assert pod["spec"]["nodeName"] == node
            served = wait_for(lambda: _http_get(f"http://{pod['status']['podIP']}:8080/model/config.json"), 30,
                              what="the model server serving the files fetched over https")
            assert served == files["config.json"]
            assert {"/m/weights.bin", "/m/config.json"} <= set(store.requests), store.requests

            mv = wait_condition("modelversion", "wrongca-1-0-0", ns, "Available", "False", reason="ArtifactRejected",
                                timeout=180)
            message = condition(mv, "Available")["message"]
            assert "CERTIFICATE_VERIFY_FAILED" in message and store.url in message, message
            assert "\n" not in message
            for p in _pods(ns, "wrongca"):
                server = (p["status"].get("containerStatuses") or [{}])[0]
                assert not server.get("ready") and "running" not in (server.get("state") or {}), server
    finally:
        kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_uninstall_removes_the_operator_and_its_webhooks(installed: tuple[str, str]) -> None:
    """Last in this module: `helm uninstall` leaves no webhook pointing at an operator that is gone."""
    ns, _ = installed
    helm("uninstall", "modelhub", "-n", ns, "--wait", "--timeout", "120s")
    assert get("validatingwebhookconfiguration", "modelhub.dev") is None
    assert get("mutatingwebhookconfiguration", "modelhub.dev") is None
    assert get("deployment", "modelhub", ns) is None
    # The approval key stays (helm.sh/resource-policy: keep): approvals made before stay valid after a reinstall.
    assert get("secret", "modelhub-approval-key", ns) is not None


def test_the_chart_ships_the_alerts_and_the_dashboard() -> None:
    """metrics.prometheusRule / metrics.grafanaDashboard: the PrometheusRule holds exactly the plain rules file, and
    the ConfigMap exactly the dashboard; the chart's copies are the files deploy/ ships (a test fails on drift)."""
    for chart_file, shipped in (("modelhub-rules.yaml", ROOT / "deploy" / "prometheus" / "modelhub-rules.yaml"),
                                ("modelhub-dashboard.json", ROOT / "deploy" / "grafana" / "modelhub-dashboard.json")):
        assert (CHART / "files" / chart_file).read_bytes() == shipped.read_bytes(), f"copy {shipped} to the chart"
    assert not [d for d in _render() if d["kind"] in ("PrometheusRule",) or d["metadata"]["name"].endswith("-dashboard")]
    docs = _render("metrics.prometheusRule.enabled=true", "metrics.grafanaDashboard.enabled=true")
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((ROOT / "deploy" / "prometheus" / "modelhub-rules.yaml").read_text())
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard"))
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["modelhub-dashboard.json"]) == json.loads(
        (ROOT / "deploy" / "grafana" / "modelhub-dashboard.json").read_text())
