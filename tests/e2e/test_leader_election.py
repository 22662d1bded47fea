"""Two replicas of the operator on the real control plane: leader election on a Lease, the standby takes over
within 15 s of the leader's SIGKILL, and nothing is done twice. (Its own module: no other operator runs.)"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import start_operator, stop_operator
from tests.e2e.kubehelp import apply, get, get_list, kubectl, unique, wait_condition, wait_for
from tests.e2e.signed import keyring, make_model, model_manifest, new_key, version_manifest
from tests.e2e.test_revocation import revocations, revoke  # noqa: F401 - the fixture


@pytest.fixture
def ns() -> Iterator[str]:
    name = unique("ha")
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def lease_holder() -> str | None:
    lease = get("lease", "modelhub-operator", "modelhub-system")
    return ((lease or {}).get("spec") or {}).get("holderIdentity")


def test_two_replicas_one_acts_and_the_standby_takes_over_after_sigkill(
        crds: None, ns: str, tmp_path: Path, revocations: list[str]) -> None:  # noqa: F811
    if os.environ.get("MODELHUB_OPERATOR") == "external":
        pytest.skip("starts its own operators")
    logs = tmp_path / "logs"
    a = start_operator(logs / "a.log", MODELHUB_IDENTITY="replica-a", MODELHUB_WEBHOOKS="0")
    b = None
    try:
        wait_for(lambda: lease_holder() == "replica-a", 30, what="replica-a leading")
        b = start_operator(logs / "b.log", MODELHUB_IDENTITY="replica-b", MODELHUB_WEBHOOKS="0")
        key = new_key()
        signed = make_model(tmp_path, "ha", key)
        keyring(ns, "keys", {"release.pub": key})
        apply(model_manifest("ha", ["keys"], stable="1.0.0", replicas=2), ns)
        apply(version_manifest("ha-1-0-0", "ha", "1.0.0", signed), ns)
        wait_condition("modelversion", "ha-1-0-0", ns, "Ready", timeout=60)
        dep = get("deployment", "ha-1-0-0", ns)
        assert lease_holder() == "replica-a"
        assert "leading as replica-b" not in (logs / "b.log").read_text()
        killed = time.monotonic()
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        wait_for(lambda: lease_holder() == "replica-b", 20, interval=0.2, what="replica-b taking over")
        took = time.monotonic() - killed
        assert took <= 15, took
        # The new leader acts: a revocation is enforced once; the Deployment was not rewritten by the takeover.
        assert get("deployment", "ha-1-0-0", ns)["metadata"]["generation"] == dep["metadata"]["generation"]
        name = revoke(revocations, {"digests": [signed.digest]})
        wait_condition("revocation", name, None, "Enforced", timeout=30)
        wait_for(lambda: get("deployment", "ha-1-0-0", ns) is None, 30, what="torn down by the new leader")
        time.sleep(2)
        torn = [e for e in get_list("events.events.k8s.io", "default")
                if e.get("reason") == "TornDown" and e["regarding"]["name"] == name]
        assert len(torn) == 1, torn
        # Every Event about the version was recorded once (the new leader did not redo the old one's work).
        notes = [(e["reason"], e.get("note")) for e in get_list("events.events.k8s.io", ns)
                 if e["regarding"]["kind"] == "ModelVersion"]
        assert notes and len(notes) == len(set(notes)), notes
        assert ("Revoked", next(n for r, n in notes if r == "Revoked" and n.startswith("Revoked=True"))) in notes
    finally:
        if b is not None:
            stop_operator(b)
        stop_operator(a)




def test_webhooks_can_fail_closed_for_create_and_update_but_never_see_a_delete(crds: None, tmp_path: Path) -> None:
    """The chart's webhook.failurePolicy=Fail (MODELHUB_WEBHOOK_FAILURE_POLICY): the configurations the operator
    writes say Fail, and intercept CREATE and UPDATE only: no webhook of ours can block a DELETE or scale-down."""
    if os.environ.get("MODELHUB_OPERATOR") == "external":
        pytest.skip("starts its own operator")
    op = start_operator(tmp_path / "fail.log", MODELHUB_WEBHOOK_FAILURE_POLICY="Fail", MODELHUB_LEADER_ELECTION="0")
    try:
        def configs() -> list[dict] | None:
            out = []
            for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
                cfg = get(kind, "modelhub.dev")
                hooks = (cfg or {}).get("webhooks") or []  # (kopf may create it before it fills it in)
                if not hooks or any(w.get("failurePolicy") != "Fail" for w in hooks):
                    return None
                out.append(cfg)
            return out

        for cfg in wait_for(configs, 30, what="webhook configurations with failurePolicy Fail"):
            for w in cfg["webhooks"]:
                ops = {op for rule in w["rules"] for op in rule["operations"]}
                assert ops <= {"CREATE", "UPDATE"}, (w["name"], ops)
    finally:
        stop_operator(op)
        # No operator answers now: leave no fail-closed webhook behind for the modules that follow.
        kubectl("delete", "validatingwebhookconfiguration,mutatingwebhookconfiguration", "modelhub.dev",
                "--ignore-not-found")
