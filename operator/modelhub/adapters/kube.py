"""The Kubernetes client the operator writes through: status patches, Deployments, Services, Events.

Everything here is I/O and nothing else; what to write is decided in `modelhub.domain`. Calls are synchronous
(the official client) and the handlers run them in worker threads.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import threading
import uuid
from typing import Any

import kubernetes
from kubernetes.client.rest import ApiException

from modelhub import GROUP, VERSION
from modelhub.domain import approvalkey

log = logging.getLogger(__name__)

PLURALS = {"Model": "models", "ModelVersion": "modelversions", "Revocation": "revocations"}
COMPONENT = "modelhub-operator"


class Kube:
    """A small facade over the official client, configured once (kubeconfig or in-cluster)."""

    def __init__(self, pool_size: int = 64) -> None:
        self._lock = threading.Lock()
        cfg = kubernetes.client.Configuration()
        if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
            kubernetes.config.load_incluster_config(client_configuration=cfg)
        else:
            kubernetes.config.load_kube_config(client_configuration=cfg)
        cfg.connection_pool_maxsize = pool_size
        self.api_client = kubernetes.client.ApiClient(cfg)
        self.custom = kubernetes.client.CustomObjectsApi(self.api_client)
        self.apps = kubernetes.client.AppsV1Api(self.api_client)
        self.core = kubernetes.client.CoreV1Api(self.api_client)
        self.events = kubernetes.client.EventsV1Api(self.api_client)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """One API request with an explicit content type; JSON in and out, ApiException on non-2xx."""
        _, url, headers, ser_body, _ = self.api_client.param_serialize(
            method, path, query_params=query or [], header_params={"Accept": "application/json",
                                                                   "Content-Type": content_type},
            body=body, auth_settings=["BearerToken"],
        )
        resp = self.api_client.call_api(method, url, header_params=headers, body=ser_body, _request_timeout=30)
        data = resp.read()
        if not 200 <= resp.status < 300:
            raise ApiException(status=resp.status, reason=resp.reason, body=data.decode(errors="replace"))
        return json.loads(data) if data else {}

    # --- custom resources -------------------------------------------------------------------------------
    def patch_status(self, kind: str, namespace: str | None, name: str, status: dict[str, Any]) -> None:
        """Merge-patch the status subresource (lists such as conditions are replaced whole)."""
        where = f"namespaces/{namespace}/" if namespace else ""
        path = f"/apis/{GROUP}/{VERSION}/{where}{PLURALS[kind]}/{name}/status"
        try:
            self.request("PATCH", path, body={"status": status}, content_type="application/merge-patch+json")
        except ApiException as exc:
            if exc.status == 404:  # gone meanwhile: nothing to report on
                return
            raise

    def list_custom(self, kind: str) -> list[dict[str, Any]]:
        out = self.request("GET", f"/apis/{GROUP}/{VERSION}/{PLURALS[kind]}")
        for item in out.get("items", []):
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", f"{GROUP}/{VERSION}")
        return list(out.get("items", []))

    # --- core objects -----------------------------------------------------------------------------------
    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            cm = self.core.read_namespaced_config_map(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return {"data": dict(cm.data or {}), "resourceVersion": cm.metadata.resource_version if cm.metadata else None}

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply with our field manager, forcing ownership of the fields we set (drift correction)."""
        kind = obj["kind"]
        ns = obj["metadata"]["namespace"]
        name = obj["metadata"]["name"]
        path = {
            "Deployment": f"/apis/apps/v1/namespaces/{ns}/deployments/{name}",
            "Service": f"/api/v1/namespaces/{ns}/services/{name}",
        }[kind]
        return self.request(
            "PATCH", path, body=obj, query=[("fieldManager", COMPONENT), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )

    def list_deployments(self, label_selector: str) -> list[dict[str, Any]]:
        out = self.request("GET", "/apis/apps/v1/deployments", query=[("labelSelector", label_selector)])
        items = list(out.get("items", []))
        for item in items:
            item.setdefault("kind", "Deployment")
            item.setdefault("apiVersion", "apps/v1")
        return items

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Replace a Deployment's spec, labels and annotations with ours (drift correction); create if absent."""
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        path = f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"
        try:
            live = self.request("GET", path)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return self.apply(obj)
        body = dict(obj)
        body["metadata"] = {**obj["metadata"], "resourceVersion": live["metadata"]["resourceVersion"]}
        return self.request("PUT", path, body=body)

    def unschedulable_message(self, namespace: str, selector: str) -> str | None:
        """The scheduler's message for the first pod of `selector` it could not place, if any."""
        pods = self.core.list_namespaced_pod(namespace, label_selector=selector)
        for pod in pods.items:
            for c in (pod.status.conditions if pod.status else None) or []:
                if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable":
                    return str(c.message)
        return None

    def ensure_secret_key(
        self, namespace: str, name: str, key: str, make: Any, min_bytes: int = approvalkey.MIN_BYTES
    ) -> bytes:
        """The value of a Secret key, creating the namespace and Secret (value from make()) when absent.

        A Secret that exists is adopted only if its key holds at least `min_bytes` bytes: otherwise
        :class:`~modelhub.domain.approvalkey.ApprovalKeyError` (the startup reports it and stops) - an empty or
        short key would make the seals it protects guessable."""
        where = f"Secret {namespace}/{name}"
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
            return approvalkey.key_from_secret_data(secret.data, key, where, min_bytes)
        except ApiException as exc:
            if exc.status != 404:
                raise
        try:
            self.core.create_namespace({"metadata": {"name": namespace}})  # type: ignore[arg-type]
        except ApiException as exc:
            if exc.status != 409:
                raise
        value = approvalkey.check_key(make(), f"the new key for {where}", min_bytes)
        try:
            self.core.create_namespaced_secret(namespace, {  # type: ignore[arg-type]
                "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "modelhub"}},
                "data": {key: base64.b64encode(value).decode()},
            })
        except ApiException as exc:
            if exc.status != 409:
                raise
            return self.ensure_secret_key(namespace, name, key, make)
        return value

    def delete_deployment(self, namespace: str, name: str, *, grace_seconds: int | None = 0) -> bool:
        """Delete a Deployment and (in the background) its pods; False when it was already gone."""
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if grace_seconds is not None:
            body["gracePeriodSeconds"] = grace_seconds
        try:
            self.request("DELETE", f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}", body=body)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def delete_service(self, namespace: str, name: str) -> bool:
        try:
            self.core.delete_namespaced_service(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # --- events -------------------------------------------------------------------------------------------
    def event(self, obj: dict[str, Any], *, type_: str, reason: str, message: str, action: str) -> None:
        """Record a Kubernetes Event (events.k8s.io/v1) about one of our objects. Never raises."""
        meta = obj.get("metadata", {})
        ns = meta.get("namespace") or "default"
        now = dt.datetime.now(dt.UTC)
        body = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": f"{meta.get('name', 'obj')}.{uuid.uuid4().hex[:16]}", "namespace": ns},
            "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "reportingController": f"{GROUP}/operator",
            "reportingInstance": os.environ.get("HOSTNAME", COMPONENT),
            "action": action,
            "reason": reason,
            "note": message[:1024],
            "type": type_,
            "regarding": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
        }
        try:
            self.request("POST", f"/apis/events.k8s.io/v1/namespaces/{ns}/events", body=body)
        except Exception as exc:  # noqa: BLE001 - an event is best effort
            log.warning("event %s on %s/%s not recorded: %s", reason, ns, meta.get("name"), exc)
