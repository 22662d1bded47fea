"""The approval webhook's handler and server settings: the SubjectAccessReview it asks (only when nothing else
refuses), what it writes, and that it serves only clients chained to the API server's client CA when told so."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import kopf
import pytest
from tests.support.harness import Harness

from modelhub.adapters.certs import self_signed
from modelhub.domain import approval as ap
from modelhub.handlers import admission, webhook

DIGEST = "sha256:" + "ab" * 32


def version(uid: str = "", annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "modelhub.dev/v1alpha1", "kind": "ModelVersion",
            "metadata": {"namespace": "ns", "name": "clf-1", "uid": uid, "annotations": annotations or {}},
            "spec": {"model": "clf", "version": "1.0.0", "artifact": {"uri": "file:///m", "digest": DIGEST}}}


def call(h: Harness, operation: str, body: dict[str, Any], old: dict[str, Any] | None, user: str
         ) -> tuple[dict[str, Any], list[str]]:
    patch, warnings = kopf.Patch(), []
    admission.seal_approval(body=kopf.Body(body), patch=patch, memo=kopf.Memo(reconciler=h.reconciler),
                            warnings=warnings, operation=operation, old=old,
                            userinfo={"username": user, "groups": ["team"], "uid": "u", "extra": {"k": ["v"]}})
    return dict((patch.get("metadata") or {}).get("annotations") or {}), warnings


def sars(h: Harness) -> int:
    return h.kube.requests.count(("create", "SubjectAccessReview"))


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    yield harness
    harness.close()


def test_create_then_approve_by_an_authorized_other_user(h: Harness) -> None:
    created, warnings = call(h, "CREATE", version(annotations={ap.REQUEST_ANNOTATION: "true"}), None, "bob")
    assert ap.RECORD_ANNOTATION not in created and created[ap.REQUEST_ANNOTATION] is None
    assert "not given at creation" in warnings[0] and sars(h) == 0
    stored = version("uid-1", {ap.CREATOR_ANNOTATION: created[ap.CREATOR_ANNOTATION]})

    asked = version("uid-1", {**stored["metadata"]["annotations"], ap.REQUEST_ANNOTATION: "true"})
    changes, warnings = call(h, "UPDATE", asked, stored, "alice")  # RBAC: no
    assert ap.RECORD_ANNOTATION not in changes and "alice may not approve" in warnings[0] and sars(h) == 1

    h.kube.allowed.add(("alice", ap.APPROVE_VERB, "ns"))
    changes, warnings = call(h, "UPDATE", asked, stored, "alice")
    assert warnings == [] and sars(h) == 2
    approved = version("uid-1", {**stored["metadata"]["annotations"], **{
        k: v for k, v in changes.items() if v is not None}})
    a = ap.unseal_object(h.ctx.approval_key, approved)
    assert a is not None and (a.by, a.groups, a.uid) == ("alice", ("team",), "uid-1")


def test_the_creator_is_refused_without_asking_the_api_server(h: Harness) -> None:
    created, _ = call(h, "CREATE", version(), None, "bob")
    stored = version("uid-1", {ap.CREATOR_ANNOTATION: created[ap.CREATOR_ANNOTATION]})
    h.kube.allowed.add(("bob", ap.APPROVE_VERB, "ns"))
    asked = version("uid-1", {**stored["metadata"]["annotations"], ap.REQUEST_ANNOTATION: "true"})
    changes, warnings = call(h, "UPDATE", asked, stored, "bob")
    assert ap.RECORD_ANNOTATION not in changes and "cannot approve" in warnings[0] and sars(h) == 0


def test_client_verification(tmp_path: Path) -> None:
    assert webhook.client_verification("") == {}
    with pytest.raises(webhook.WebhookConfigError, match="MODELHUB_WEBHOOK_CLIENT_CA"):
        webhook.client_verification(str(tmp_path / "missing.crt"))
    (tmp_path / "junk.crt").write_text("not a certificate")
    with pytest.raises(webhook.WebhookConfigError):
        webhook.client_verification(str(tmp_path / "junk.crt"))
    cert, _ = self_signed(tmp_path / "ca", ["client-ca"])
    assert webhook.client_verification(str(cert)) == {"verify_mode": ssl.CERT_REQUIRED, "verify_cafile": str(cert)}
    srv = webhook.server("127.0.0.1", 9443, cert_dir=str(tmp_path / "srv"), client_ca=str(cert))
    assert (srv.verify_mode, srv.verify_cafile) == (ssl.CERT_REQUIRED, str(cert))
