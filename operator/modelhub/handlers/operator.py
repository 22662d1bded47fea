"""kopf registration: settings, watches that feed the cache and the work queue. Nothing is decided here."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from modelhub import GROUP
from modelhub.handlers import reconcile
from modelhub.handlers.state import STATE

log = logging.getLogger(__name__)

FINALIZER = f"{GROUP}/finalizer"


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
    STATE.start(reconcile.dispatch)
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


@kopf.on.event(GROUP, "v1alpha1", "models")
def model_event(type: str | None, body: kopf.Body, **_: Any) -> None:  # noqa: A002 - kopf's kwarg name
    obj = _record("Model", type, body)
    reconcile.on_model_event(type, obj)


@kopf.on.event(GROUP, "v1alpha1", "modelversions")
def modelversion_event(type: str | None, body: kopf.Body, **_: Any) -> None:  # noqa: A002
    obj = _record("ModelVersion", type, body)
    reconcile.on_version_event(type, obj)


