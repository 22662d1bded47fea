"""Reconcilers: gather the inputs of one object, ask the domain what it should look like, write the difference."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from pydantic import ValidationError

from modelhub.api import types as api
from modelhub.domain import models as model_domain
from modelhub.handlers.runtime import Key
from modelhub.handlers.state import STATE

log = logging.getLogger(__name__)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def versions_of(namespace: str, model: str) -> list[dict[str, Any]]:
    return [
        v
        for v in STATE.cache.all("ModelVersion")
        if v["metadata"].get("namespace") == namespace and (v.get("spec") or {}).get("model") == model
    ]


# --- event routing ---------------------------------------------------------------------------------------
def on_model_event(event_type: str | None, obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    if event_type != "DELETED":
        STATE.enqueue("Model", meta["namespace"], meta["name"])


def on_version_event(event_type: str | None, obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    model = (obj.get("spec") or {}).get("model")
    if event_type != "DELETED":
        STATE.enqueue("ModelVersion", meta["namespace"], meta["name"])
    if model:
        STATE.enqueue("Model", meta["namespace"], model)


# --- reconcilers -----------------------------------------------------------------------------------------
async def dispatch(key: Key) -> float | None:
    kind, namespace, name = key
    if kind == "Model":
        return await reconcile_model(namespace, name)
    return None


async def patch_status_if_changed(kind: str, obj: dict[str, Any], status: dict[str, Any]) -> None:
    if status == (obj.get("status") or {}):
        return
    meta = obj["metadata"]
    await asyncio.to_thread(STATE.kube.patch_status, kind, meta.get("namespace"), meta["name"], status)


async def reconcile_model(namespace: str, name: str) -> float | None:
    model = STATE.cache.get("Model", namespace, name)
    if model is None:
        return None
    spec_error = None
    try:
        api.ModelSpec.model_validate(model.get("spec") or {})
    except ValidationError as exc:
        spec_error = model_domain.validation_message(exc)
    status = model_domain.model_status(model, versions_of(namespace, name), now_iso(), spec_error)
    await patch_status_if_changed("Model", model, status)
    return None
