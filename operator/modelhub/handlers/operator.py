"""kopf registration: settings, watches that feed the cache, indexes and the work queue. Nothing is decided here."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import secrets
from typing import Any

import kopf

from modelhub import GROUP, VERSION
from modelhub.adapters import metrics, webhook
from modelhub.domain.workloads import LABEL_SERVES
from modelhub.handlers import (
    admission,  # noqa: F401 - registers the webhooks
    reconcile,
)
from modelhub.handlers.state import STATE

log = logging.getLogger(__name__)

FINALIZER = f"{GROUP}/finalizer"


def _webhook_server() -> kopf.WebhookServer:
    return webhook.server(STATE.settings.webhook_host, STATE.settings.webhook_port)


def _prime() -> None:
    """Fill the cache and the revocation index from the cluster once, before the first reconcile.

    After a crash, Revocations resume from this state: no enforcement runs on a half-filled index.
    """
    kube = STATE.kube
    for kind in ("Model", "ModelVersion", "Revocation"):
        for obj in kube.list_custom(kind):
            STATE.cache.put(kind, obj)
    for dep in kube.list_deployments(f"{LABEL_SERVES}=true"):
        STATE.cache.put("Deployment", dep)
    from modelhub.domain.revocation import VersionFacts

    for v in STATE.cache.all("ModelVersion"):
        STATE.index.upsert(VersionFacts.from_object(v))


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.enabled = False  # we record our own events.k8s.io Events
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    settings.execution.max_workers = 32
    if STATE.settings.webhooks:
        settings.admission.server = _webhook_server()
        settings.admission.managed = GROUP
    loop = asyncio.get_running_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=96, thread_name_prefix="kube"))
    STATE.approval_key = await asyncio.to_thread(
        STATE.kube.ensure_secret_key, STATE.settings.namespace, "modelhub-approval-key", "hmac",
        lambda: secrets.token_bytes(32),
    )
    await asyncio.to_thread(_prime)
    metrics.serve(STATE.settings.metrics_port)
    STATE.start(reconcile.dispatch)
    for r in STATE.cache.all("Revocation"):
        STATE.enqueue("Revocation", "", r["metadata"]["name"])
    for m in STATE.cache.all("Model"):
        STATE.enqueue("Model", m["metadata"]["namespace"], m["metadata"]["name"])
    log.info("modelhub operator started")


@kopf.on.cleanup()
async def shutdown(**_: Any) -> None:
    await STATE.stop()


def _record(kind: str, event_type: str | None, body: kopf.Body) -> dict[str, Any]:
    obj = dict(body)
    if event_type == "DELETED":
        STATE.cache.drop(kind, body.metadata.namespace, body.metadata.name)
    else:
        STATE.cache.put(kind, obj)
    return obj


@kopf.on.event(GROUP, VERSION, "revocations")
async def revocation_event(type: str | None, body: kopf.Body, **_: Any) -> None:  # noqa: A002 - kopf's kwarg name
    reconcile.on_revocation_event(type, _record("Revocation", type, body))


@kopf.on.event(GROUP, VERSION, "models")
async def model_event(type: str | None, body: kopf.Body, **_: Any) -> None:  # noqa: A002
    reconcile.on_model_event(type, _record("Model", type, body))


@kopf.on.event(GROUP, VERSION, "modelversions")
async def modelversion_event(type: str | None, body: kopf.Body, **_: Any) -> None:  # noqa: A002
    reconcile.on_version_event(type, _record("ModelVersion", type, body))


@kopf.on.event("apps", "v1", "deployments", labels={LABEL_SERVES: "true"})
async def deployment_event(type: str | None, body: kopf.Body, **_: Any) -> None:  # noqa: A002
    reconcile.on_deployment_event(type, _record("Deployment", type, body))


@kopf.on.event("", "v1", "configmaps")
async def configmap_event(type: str | None, body: kopf.Body, **_: Any) -> None:  # noqa: A002
    reconcile.on_configmap_event(type, dict(body))


@kopf.on.event("", "v1", "services", labels={"app.kubernetes.io/managed-by": "modelhub"})
async def service_event(type: str | None, body: kopf.Body, **_: Any) -> None:  # noqa: A002
    """A managed Service edited or deleted by hand: the Model's reconcile puts it back."""
    _record("Service", type, body)
    model = (body.metadata.labels or {}).get("modelhub.dev/model")
    if model and body.metadata.namespace:
        reconcile.STATE.enqueue("Model", body.metadata.namespace, model)
