"""Approvals as separation of duties, on the real local control plane (issue 14, items 2 and 9).

- The RBAC matrix: ServiceAccounts bound to each of the chart's user roles (rendered with `helm template`), asked
  with `kubectl auth can-i --as system:serviceaccount:...`: a viewer cannot revoke, a publisher cannot approve,
  only the approver can approve.
- Approval through the webhook (`kubectl annotate` as those ServiceAccounts): the approver's request is sealed; the
  publisher's is refused by the API server's SubjectAccessReview; the creator's own is refused even when they hold
  the approver role; an approval in the `kubectl apply` that creates the version is dropped.
- The webhook accepts only the API server: the operator runs with MODELHUB_WEBHOOK_CLIENT_CA (the CA of the client
  certificate the local API server presents to webhooks, made by hack/cluster.sh), and a hand-made AdmissionReview
  POSTed without that certificate, or with another one, gets no answer at all (TLS refuses it).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.kubehelp import ROOT, apply, condition, get, kubectl, unique, wait_condition, wait_for
from tests.e2e.signed import make_model, version_manifest
from tests.e2e.test_rollout import WAIT, Env, make_env, never
from tests.support.operator import Operator, start_operator

ROLES = ("viewer", "publisher", "approver", "revoker")
APPROVE, RECORD, CREATOR = "modelhub.dev/approve", "modelhub.dev/approval", "modelhub.dev/created-by"


def _state_dir() -> Path:
    return Path(os.environ.get("KUBECONFIG") or "/nonexistent").parent


def _client_ca() -> Path:
    return Path(os.environ.get("MODELHUB_WEBHOOK_CLIENT_CA") or _state_dir() / "webhook-client-ca.crt")


@pytest.fixture(scope="module")
def client_ca(cluster: str) -> Path:
    ca = _client_ca()
    if not ca.is_file():
        msg = f"no webhook client CA at {ca}: the cluster was not made by hack/cluster.sh (TLS client authentication)"
        if os.environ.get("MODELHUB_REQUIRE_E2E"):
            pytest.fail(msg)
        pytest.skip(msg)
    return ca


class OperatorProcess:
    """The operator of this module: serving webhooks only to clients chained to the API server's client CA."""

    def __init__(self, log_path: Path, ca: Path) -> None:
        self.log_path, self.ca = log_path, ca
        self.op: Operator | None = None

    def start(self) -> Operator:
        self.op = start_operator(self.log_path, MODELHUB_WEBHOOK_CLIENT_CA=str(self.ca))
        # Serving once the webhook configuration names this process' port and its caBundle.
        wait_for(lambda: self.op is not None and f":{self.op.webhook_port}/" in json.dumps(_mutating_config()),
                 WAIT, what="the webhook configuration of this operator")
        return self.op

    def stop(self) -> None:
        if self.op is not None:
            self.op.stop()
            self.op = None


def _mutating_config() -> dict[str, Any]:
    out = kubectl("get", "mutatingwebhookconfiguration", "modelhub.dev", "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {}


@pytest.fixture(scope="module")
def operator_tls(crds: None, client_ca: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    log_dir = Path(os.environ.get("MODELHUB_LOG_DIR") or tmp_path_factory.mktemp("operator"))
    proc = OperatorProcess(log_dir / "operator-test_approvals.log", client_ca)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        print(f"\noperator log: {proc.log_path}")


# --- the chart's roles, bound to ServiceAccounts -------------------------------------------------------------
def _chart_roles(prefix: str) -> list[dict[str, Any]]:
    """The chart's user ClusterRoles (helm template), renamed `<prefix>-<name>` so that they never collide with a
    release of the chart; their rules and aggregation labels are the chart's own."""
    out = subprocess.run(["helm", "template", "e2e", str(ROOT / "charts" / "modelhub"),
                          "--show-only", "templates/user-roles.yaml"], capture_output=True, text=True, check=True,
                         timeout=60)
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert {d["metadata"]["name"] for d in docs} == {f"modelhub-{r}" for r in ROLES}
    for d in docs:
        d["metadata"]["name"] = f"{prefix}-{d['metadata']['name']}"
    return docs


class Team:
    """ServiceAccounts in one namespace, each bound to chart roles (Revocations are cluster-scoped: the revoker's
    binding is a ClusterRoleBinding)."""

    def __init__(self, ns: str, prefix: str) -> None:
        self.ns, self.prefix = ns, prefix

    def user(self, sa: str) -> str:
        return f"system:serviceaccount:{self.ns}:{sa}"

    def add(self, sa: str, *roles: str, builtin: str | None = None) -> str:
        kubectl("create", "serviceaccount", sa, "-n", self.ns)
        for role in roles:
            ref = f"{self.prefix}-modelhub-{role}"
            if role == "revoker":
                kubectl("create", "clusterrolebinding", f"{self.prefix}-{sa}-{role}", f"--clusterrole={ref}",
                        f"--serviceaccount={self.ns}:{sa}")
            else:
                kubectl("create", "rolebinding", f"{sa}-{role}", f"--clusterrole={ref}",
                        f"--serviceaccount={self.ns}:{sa}", "-n", self.ns)
        if builtin:
            kubectl("create", "rolebinding", f"{sa}-{builtin}", f"--clusterrole={builtin}",
                    f"--serviceaccount={self.ns}:{sa}", "-n", self.ns)
        # The authorizer learns of new bindings through its informers: wait until every role is in effect.
        checks = [("get", "revocations.modelhub.dev" if r == "revoker" else MV) for r in roles] + (
            [("get", MV)] if builtin else [])
        wait_for(lambda: all(self.can(self.user(sa), *c) for c in checks), WAIT, what=f"the roles of {sa}")
        return self.user(sa)

    def can(self, user: str, verb: str, resource: str) -> bool:
        proc = kubectl("auth", "can-i", verb, resource, "-n", self.ns, f"--as={user}", check=False)
        assert proc.stdout.strip() in ("yes", "no"), proc.stderr
        return proc.stdout.strip() == "yes"


@pytest.fixture
def team(crds: None, namespace: str) -> Iterator[Team]:
    prefix = unique("e2e")
    roles = _chart_roles(prefix)
    apply(roles)
    t = Team(namespace, prefix)
    try:
        yield t
    finally:
        for r in roles:
            kubectl("delete", "clusterrole", r["metadata"]["name"], "--ignore-not-found", "--wait=false", check=False)
        names = kubectl("get", "clusterrolebindings", "-o", "name").stdout.split()
        for n in names:
            if n.split("/", 1)[1].startswith(f"{prefix}-"):
                kubectl("delete", n, "--ignore-not-found", "--wait=false", check=False)


MV = "modelversions.modelhub.dev"


def test_rbac_matrix_of_the_chart_roles(team: Team) -> None:
    viewer = team.add("viewer", "viewer")
    publisher = team.add("publisher", "publisher")
    approver = team.add("approver", "viewer", "approver")
    revoker = team.add("revoker", "viewer", "revoker")
    editor = team.add("editor", builtin="edit")  # the built-in edit role, with modelhub-publisher aggregated
    # (user, verb, resource) -> may they?
    matrix = {
        viewer: {("get", MV): True, ("create", MV): False, ("approve", MV): False,
                 ("create", "revocations.modelhub.dev"): False},
        publisher: {("create", MV): True, ("patch", MV): True, ("approve", MV): False,
                    ("create", "revocations.modelhub.dev"): False},
        approver: {("approve", MV): True, ("patch", MV): True, ("create", MV): False,
                   ("create", "revocations.modelhub.dev"): False},
        revoker: {("create", "revocations.modelhub.dev"): True, ("approve", MV): False, ("create", MV): False},
        editor: {("approve", MV): False},
    }
    seen = {user: {vr: team.can(user, *vr) for vr in rights} for user, rights in matrix.items()}
    assert seen == matrix
    # Only the approver may approve.
    assert [u for u in seen if seen[u].get(("approve", MV))] == [approver]


# --- approval through the webhook ----------------------------------------------------------------------------
@pytest.fixture
def env(operator_tls: OperatorProcess, namespace: str, tmp_path: Path) -> Env:
    return make_env(namespace, tmp_path)


def annotate_as(user: str, ns: str, name: str) -> subprocess.CompletedProcess[str]:
    return kubectl("annotate", "--overwrite", MV, name, "-n", ns, f"{APPROVE}=true", f"--as={user}")


def annotations(ns: str, name: str) -> dict[str, str]:
    return dict(((get(MV, name, ns) or {}).get("metadata") or {}).get("annotations") or {})


def create_as(env: Env, user: str, model: str, version: str, extra_annotations: dict[str, str] | None = None
              ) -> tuple[str, subprocess.CompletedProcess[str]]:
    name = f"{model}-{version.replace('.', '-')}"
    manifest = version_manifest(name, model, version, make_model(env.root, name, env.key))
    if extra_annotations:
        manifest["metadata"]["annotations"] = extra_annotations
    proc = kubectl("apply", "-n", env.ns, "-f", "-", f"--as={user}", input=yaml.safe_dump(manifest))
    return name, proc


def test_only_an_authorized_user_who_did_not_create_a_version_approves_it(env: Env, team: Team) -> None:
    publisher = team.add("publisher", "publisher")
    publisher2 = team.add("publisher2", "publisher")
    approver = team.add("approver", "viewer", "approver")
    both = team.add("both", "publisher", "approver")
    env.model("gated", stable="1.0.0", require_approval=True)

    v1, _ = create_as(env, publisher, "gated", "1.0.0")
    creator = json.loads(annotations(env.ns, v1)[CREATOR])
    assert creator["by"] == publisher and creator["mac"]
    wait_condition(MV, v1, env.ns, "Approved", "False", reason="AwaitingApproval", timeout=WAIT)

    # The creator: refused (and told why), whatever RBAC says.
    out = annotate_as(publisher, env.ns, v1)
    assert "the author of a version cannot approve it" in out.stderr, out.stderr
    # Another publisher: the SubjectAccessReview says no.
    out = annotate_as(publisher2, env.ns, v1)
    assert f"{publisher2} may not approve modelversions.modelhub.dev in namespace {env.ns}" in out.stderr, out.stderr
    got = annotations(env.ns, v1)
    assert RECORD not in got and APPROVE not in got
    # The approver: sealed, and the version is approved as them.
    out = annotate_as(approver, env.ns, v1)
    assert "Warning" not in out.stderr, out.stderr
    record = json.loads(annotations(env.ns, v1)[RECORD])
    mv = get(MV, v1, env.ns) or {}
    assert (record["by"], record["uid"], record["model"], record["version"], record["digest"]) == (
        approver, mv["metadata"]["uid"], "gated", "1.0.0", mv["spec"]["artifact"]["digest"])
    mv = wait_condition(MV, v1, env.ns, "Approved", "True", reason="Approved", timeout=WAIT)
    assert mv["status"]["approval"]["approvedBy"] == approver

    # Someone with both roles cannot approve what they created ...
    v2, _ = create_as(env, both, "gated", "1.1.0")
    out = annotate_as(both, env.ns, v2)
    assert "the author of a version cannot approve it" in out.stderr, out.stderr
    assert RECORD not in annotations(env.ns, v2)
    # ... nor create and approve in one apply; the creator record they typed is replaced by the real one.
    forged_creator = json.dumps({"by": "somebody-else", "at": "2026-01-01T00:00:00Z", "mac": "0" * 64})
    v3, proc = create_as(env, both, "gated", "1.2.0", {APPROVE: "true", CREATOR: forged_creator})
    assert "approval is not given at creation" in proc.stderr, proc.stderr
    got = annotations(env.ns, v3)
    assert RECORD not in got and APPROVE not in got and json.loads(got[CREATOR])["by"] == both
    # The creator record cannot be removed or rewritten afterwards (so the author cannot become someone else).
    kubectl("annotate", "--overwrite", MV, v2, "-n", env.ns, f"{CREATOR}={forged_creator}", f"--as={both}")
    kubectl("annotate", MV, v2, "-n", env.ns, f"{CREATOR}-", f"--as={both}")
    assert json.loads(annotations(env.ns, v2)[CREATOR])["by"] == both

    # The plugin says why it did not approve.
    plugin = _plugin("approve", v2, "-n", env.ns, f"--as={both}")
    assert plugin.returncode != 0 and "the author of a version cannot approve it" in plugin.stderr, plugin.stderr
    plugin = _plugin("approve", v2, "-n", env.ns, f"--as={approver}")
    assert plugin.returncode == 0 and f"approved by {approver}" in plugin.stdout, plugin.stderr
    for v in (v2, v3):
        assert condition(get(MV, v, env.ns), "Approved") is not None
    wait_condition(MV, v2, env.ns, "Approved", "True", reason="Approved", timeout=WAIT)
    never(lambda: (condition(get(MV, v3, env.ns), "Approved") or {}).get("status") == "True", 3,
          "a version approved in the apply that created it")


def _plugin(*args: str) -> subprocess.CompletedProcess[str]:
    from tests.e2e.test_rollout import kubectl_modelhub
    return kubectl_modelhub(*args, check=False)


# --- only the API server reaches the webhook -----------------------------------------------------------------
def _webhook_url() -> str:
    hooks = _mutating_config().get("webhooks") or []
    url = next(h["clientConfig"]["url"] for h in hooks if "approval" in h["clientConfig"].get("url", ""))
    return str(url)


def _review(ns: str) -> dict[str, Any]:
    obj = {"apiVersion": "modelhub.dev/v1alpha1", "kind": "ModelVersion",
           "metadata": {"name": "forged", "namespace": ns, "annotations": {APPROVE: "true"}},
           "spec": {"model": "m", "version": "1.0.0", "artifact": {"uri": "file:///x", "digest": "sha256:" + "a" * 64}}}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "0f0f0f0f-0000-4000-8000-000000000000", "operation": "CREATE", "namespace": ns, "name": "forged",
        "kind": {"group": "modelhub.dev", "version": "v1alpha1", "kind": "ModelVersion"},
        "resource": {"group": "modelhub.dev", "version": "v1alpha1", "resource": "modelversions"},
        "userInfo": {"username": "ceo@example.com", "groups": ["system:masters"]},
        "object": obj, "oldObject": None, "dryRun": False}}


def _post(url: str, review: dict[str, Any], cert: tuple[str, str] | None) -> dict[str, Any] | None:
    """POST an AdmissionReview over TLS (trusting any server: we are the attacker), with or without a client
    certificate; the response, or None when the server refuses the handshake (with TLS 1.3 the client learns it
    only when the server closes the connection instead of answering)."""
    u = urllib.parse.urlsplit(url)
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(*cert)
    body = json.dumps(review).encode()
    request = (f"POST {u.path} HTTP/1.1\r\nHost: {u.hostname}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
    data = b""
    try:
        with socket.create_connection((u.hostname or "127.0.0.1", u.port or 443), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname=u.hostname) as tls:
            tls.sendall(request)
            while chunk := tls.recv(65536):
                data += chunk
    except (ssl.SSLError, ConnectionError):
        return None
    if not data:
        return None
    head, _, payload = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    return dict(json.loads(payload))


def test_a_hand_made_admission_review_gets_no_answer_without_the_api_servers_certificate(
    operator_tls: OperatorProcess, namespace: str, tmp_path: Path,
) -> None:
    url = _webhook_url()
    review = _review(namespace)
    # Without a client certificate, and with one the API server's client CA did not sign: TLS refuses.
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "1", "-subj", "/CN=kube-apiserver-webhook-client", "-keyout", str(other / "k.pem"),
                    "-out", str(other / "c.pem")], check=True, capture_output=True)
    for cert in (None, (str(other / "c.pem"), str(other / "k.pem"))):
        assert _post(url, review, cert) is None, cert
    # The same request with the API server's own client certificate is answered (the endpoint is the right one).
    state = _client_ca().parent
    answer = _post(url, review, (str(state / "webhook-client.crt"), str(state / "webhook-client.key")))
    assert answer is not None and answer["response"]["allowed"] is True and answer["response"].get("patch")
    # And through the API server, a ModelVersion gets its creator sealed: the API server is served.
    env = make_env(namespace, tmp_path)
    env.model("m", require_approval=True)
    name = env.version("m", "1.0.0")
    assert CREATOR in annotations(namespace, name)


# --- a record copied onto a re-created object ----------------------------------------------------------------
def test_a_record_copied_onto_a_recreated_object_approves_nothing(env: Env, team: Team,
                                                                   operator_tls: OperatorProcess) -> None:
    publisher = team.add("publisher", "publisher")
    approver = team.add("approver", "viewer", "approver")
    env.model("gated", stable="1.0.0", require_approval=True)
    name, _ = create_as(env, publisher, "gated", "1.0.0")
    annotate_as(approver, env.ns, name)
    wait_condition(MV, name, env.ns, "Approved", "True", reason="Approved", timeout=WAIT)
    mv = get(MV, name, env.ns) or {}
    copied = {k: v for k, v in mv["metadata"]["annotations"].items() if k in (RECORD, CREATOR)}

    # While the operator (and so its webhook) is down, delete the version and re-create it with the record.
    operator_tls.stop()
    try:
        kubectl("delete", MV, name, "-n", env.ns, "--wait=true", "--timeout=60s")
        manifest = {"apiVersion": mv["apiVersion"], "kind": mv["kind"], "spec": mv["spec"],
                    "metadata": {"name": name, "namespace": env.ns, "annotations": copied}}
        apply(manifest, env.ns)
        assert annotations(env.ns, name)[RECORD] == copied[RECORD]
    finally:
        operator_tls.start()
    wait_condition(MV, name, env.ns, "SignatureVerified", "True", timeout=WAIT)
    mv = wait_condition(MV, name, env.ns, "Approved", "False", reason="AwaitingApproval", timeout=WAIT)
    assert "approval" not in mv.get("status", {})


# --- the chart's settings for it ------------------------------------------------------------------------------
def _render(*sets: str) -> list[dict[str, Any]]:
    out = subprocess.run(["helm", "template", "e2e", str(ROOT / "charts" / "modelhub"), "-n", "hub",
                          *(a for s in sets for a in ("--set", s))], capture_output=True, text=True, check=True,
                         timeout=60)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_chart_client_ca_and_network_policy(cluster: str) -> None:
    """webhook.clientCA reaches the operator as MODELHUB_WEBHOOK_CLIENT_CA (a mounted ConfigMap);
    webhook.networkPolicy admits only its peers to the webhook port; the operator may ask SubjectAccessReviews."""
    pem = _client_ca().read_text() if _client_ca().is_file() else "-----BEGIN CERTIFICATE-----\nx\n"
    docs = _render(f"webhook.clientCA={pem}", "webhook.networkPolicy.enabled=true",
                   "webhook.networkPolicy.from[0].ipBlock.cidr=10.0.0.0/28")
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    cm = by_kind[("ConfigMap", "e2e-modelhub-webhook-client-ca")]
    assert cm["data"]["ca.crt"] == pem
    pod = by_kind[("Deployment", "e2e-modelhub")]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "webhook-client-ca")
    assert env["MODELHUB_WEBHOOK_CLIENT_CA"] == f"{mount['mountPath']}/ca.crt"
    assert {"name": "webhook-client-ca", "configMap": {"name": cm["metadata"]["name"]}} in pod["volumes"]
    policy = by_kind[("NetworkPolicy", "e2e-modelhub-webhook")]["spec"]
    assert policy["ingress"][0] == {"ports": [{"port": 9443, "protocol": "TCP"}],
                                    "from": [{"ipBlock": {"cidr": "10.0.0.0/28"}}]}
    rules = by_kind[("ClusterRole", "e2e-modelhub-operator")]["rules"]
    assert {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]} in rules
    # By default: neither (the README says what that means).
    kinds = {(d["kind"], d["metadata"]["name"]) for d in _render()}
    assert ("ConfigMap", "e2e-modelhub-webhook-client-ca") not in kinds
    assert ("NetworkPolicy", "e2e-modelhub-webhook") not in kinds
