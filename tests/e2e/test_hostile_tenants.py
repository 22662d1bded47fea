"""One hostile tenant stalls nobody: 32 ModelVersions whose bundles come from hostile stores (a flood of junk, a
trickle of a byte every half second, a server that never answers) keep the operator's bundle fetches busy, and
meanwhile another namespace's Revocation is enforced, its new versions are verified, and the admission webhooks
answer.

This module runs its own operator, trusting the test CA of the hostile https store on 127.0.0.1, with a bundle
deadline of 120 s, so that every hostile fetch outlives the test's waits. Without fetches off the queue
workers the 32 would hold all 16 workers for those 120 s, and the Revocation would wait for them.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import start_operator, stop_operator
from tests.e2e.kubehelp import apply, condition, get, get_list, kubectl, unique, wait_condition, wait_for
from tests.e2e.signed import keyring, make_model, model_manifest, new_key, version_manifest
from tests.unit.hostile_servers import hostile_server
from tests.unit.store_servers import TlsFiles, make_tls_files

HOSTILE = 32
MODES = ("flood", "trickle", "silent")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("hostile-tls"))


@pytest.fixture(scope="module")
def hostile_operator(crds: None, tls: TlsFiles,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[bytes]]:
    tmp = tmp_path_factory.mktemp("hostile")
    cas = tmp / "cas.pem"  # the system CAs and the test CA
    system = Path(os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")
    cas.write_bytes((system.read_bytes() if system.exists() else b"") + tls.ca.read_bytes())
    proc = start_operator(tmp / "operator.log", SSL_CERT_FILE=str(cas), MODELHUB_BUNDLE_DEADLINE_SECONDS="120")
    yield proc
    stop_operator(proc)


def serving(namespace: str, name: str) -> bool:
    d = get("deployment", name, namespace)
    return bool(d and int((d.get("status") or {}).get("readyReplicas") or 0) >= 1)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_hostile_stores_stall_no_other_namespace(hostile_operator: subprocess.Popen[bytes], tls: TlsFiles,
                                                 tmp_path: Path) -> None:
    key = new_key()
    victim, attacker = unique("victim"), unique("attacker")
    for ns in (victim, attacker):
        kubectl("create", "namespace", ns)
        keyring(ns, "keys", {"release.pub": key})
    try:
        # The victim serves two models.
        a = make_model(tmp_path / "v", "a", key)
        b = make_model(tmp_path / "v", "b", key)
        apply([model_manifest("a", ["keys"], stable="1.0.0"), version_manifest("a-1-0-0", "a", "1.0.0", a),
               model_manifest("b", ["keys"], stable="1.0.0"), version_manifest("b-1-0-0", "b", "1.0.0", b)], victim)
        wait_for(lambda: serving(victim, "a-1-0-0") and serving(victim, "b-1-0-0"), 90, what="victim serving")

        # Without hostility: a Revocation of a's artifact.
        rev_a = unique("rvk-a")
        t0 = time.monotonic()
        apply({"apiVersion": "modelhub.dev/v1alpha1", "kind": "Revocation", "metadata": {"name": rev_a},
               "spec": {"reason": "e2e: baseline", "match": {"digests": [a.digest]}}})
        wait_for(lambda: get("deployment", "a-1-0-0", victim) is None, 30, interval=0.2, what="a torn down")
        quiet = time.monotonic() - t0

        with hostile_server(tmp_path / "www", tls=tls) as store:
            store.trickle_every = 0.5
            signed = make_model(tmp_path / "h", "h", key)
            docs = [model_manifest("h", ["keys"])]
            for i in range(HOSTILE):
                path = f"/{i}/model.sig"
                store.modes[path] = MODES[i % len(MODES)]
                docs.append(version_manifest(f"h-{i}", "h", f"1.0.{i}", signed,
                                             signature={"uri": f"{store.url}{path}"}))
            apply(docs, attacker)
            # Every fetch slot the attacker may have is busy with its stores before the victim acts.
            wait_for(lambda: len(set(store.requests)) >= 4, 60, interval=0.2, what="hostile fetches running")

            # The victim's Revocation, its new version, and the webhooks, all while the hostile fetches hang.
            rev_b = unique("rvk-b")
            t0 = time.monotonic()
            apply({"apiVersion": "modelhub.dev/v1alpha1", "kind": "Revocation", "metadata": {"name": rev_b},
                   "spec": {"reason": "e2e: under attack", "match": {"digests": [b.digest]}}})
            wait_for(lambda: get("deployment", "b-1-0-0", victim) is None, 60, interval=0.2, what="b torn down")
            attacked = time.monotonic() - t0
            assert wait_condition("revocation", rev_b, None, "Enforced", "True", timeout=60)

            c = make_model(tmp_path / "v", "c", key)
            apply(version_manifest("b-1-1-0", "b", "1.1.0", c), victim)
            wait_condition("modelversion", "b-1-1-0", victim, "SignatureVerified", "True", "Verified", timeout=60)

            # The validating webhook answers: b's revoked artifact under a new name is refused at admission
            # (a webhook that timed out would let it in, failurePolicy or not, the request would not say why).
            refused = apply(version_manifest("b-again", "b", "1.0.1", b), victim, check=False)
            assert refused.returncode != 0 and rev_b in refused.stderr, refused.stderr

            # Still hostile: the stores have connections hanging, nothing of the attacker is verified.
            still = [v for v in get_list("modelversions", attacker)
                     if (condition(v, "SignatureVerified") or {}).get("status") == "True"]
            assert still == []
            assert hostile_operator.poll() is None
            rss = peak_rss_mb(hostile_operator.pid)
            print(f"revocation torn down in {quiet:.2f} s quiet, {attacked:.2f} s under attack; peak RSS {rss:.0f} MB")
            # Bounded memory: eleven floods of junk cost at most the bundle cap each, not what they send.
            assert rss < 400, rss
            assert sum(store.sent.values()) > 0
    finally:
        for ns in (victim, attacker):
            kubectl("delete", "namespace", ns, "--wait=false", check=False)
        for name in [r["metadata"]["name"] for r in get_list("revocations")
                     if r["metadata"]["name"].startswith(("rvk-a-", "rvk-b-"))]:
            kubectl("delete", "revocation", name, "--wait=false", check=False)
