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
import ssl
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Any

import kubernetes
import orjson
import urllib3
from kubernetes.client.rest import ApiException
from urllib3.util.ssl_ import create_urllib3_context

from modelhub import GROUP, VERSION
from modelhub.adapters import metrics
from modelhub.domain import approvalkey
from modelhub.domain.workloads import loader_failure, unschedulable_reason
from modelhub.vocab import labels as L

log = logging.getLogger(__name__)

PLURALS = {"Model": "models", "ModelVersion": "modelversions", "Revocation": "revocations"}
COMPONENT = "modelhub-operator"


METADATA_ACCEPT = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
METADATA_LIST_ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


def loads(data: bytes | str) -> Any:
    """JSON from the API server: orjson (twice as fast as json, and its decoded objects share their keys, a
    quarter of a cached object), json for what orjson refuses (an escaped lone surrogate in a tenant's string)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def share_tls_context(pool: urllib3.PoolManager) -> urllib3.PoolManager:
    """The same pool, with one TLS context for all its connections. The client hands urllib3 its CA and client
    certificate files, and urllib3 then builds a context per connection (loading and checking the key each
    time): about 46 KB each, and the operator holds a connection per watch (one per namespace with a ConfigMap
    it reads) besides its request threads. A proxy's pool, or one that does not verify, is returned as it is."""
    if type(pool) is not urllib3.PoolManager:
        return pool
    kw = dict(pool.connection_pool_kw)
    if kw.get("cert_reqs") != ssl.CERT_REQUIRED or "ssl_context" in kw:
        return pool
    ctx = create_urllib3_context()
    cafile, cadata = kw.pop("ca_certs", None), kw.pop("ca_cert_data", None)
    if cafile or cadata:
        ctx.load_verify_locations(cafile=cafile, cadata=cadata.decode() if isinstance(cadata, bytes) else cadata)
    else:
        ctx.load_default_certs()
    cert, key = kw.pop("cert_file", None), kw.pop("key_file", None)
    if cert:
        ctx.load_cert_chain(cert, key)
    return urllib3.PoolManager(ssl_context=ctx, **kw)


@dataclass(frozen=True)
class WorkloadKind:
    api_version: str
    plural: str

    @property
    def prefix(self) -> str:
        return "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"

    @property
    def cluster_path(self) -> str:
        return f"{self.prefix}/{self.plural}"


# Every kind a workload serving an artifact can be (label modelhub.dev/serves-artifact, annotation digest).
WORKLOAD_KINDS: dict[str, WorkloadKind] = {
    "Deployment": WorkloadKind("apps/v1", "deployments"),
    "StatefulSet": WorkloadKind("apps/v1", "statefulsets"),
    "DaemonSet": WorkloadKind("apps/v1", "daemonsets"),
    "ReplicaSet": WorkloadKind("apps/v1", "replicasets"),
    "Job": WorkloadKind("batch/v1", "jobs"),
    "CronJob": WorkloadKind("batch/v1", "cronjobs"),
    "Pod": WorkloadKind("v1", "pods"),
    "InferenceService": WorkloadKind("serving.kserve.io/v1beta1", "inferenceservices"),  # only if installed
}
OPTIONAL_KINDS = {"InferenceService"}


_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


def request_kind(method: str, url: str) -> tuple[str, str]:
    """(verb, resource) of one API request, as the API server's audit names them: get/list/watch/create/update/
    patch/delete/deletecollection, and the resource's plural with its subresource (`modelversions/status`)."""
    parsed = urllib.parse.urlsplit(url)
    parts = [p for p in parsed.path.split("/") if p]
    query = urllib.parse.parse_qs(parsed.query)
    # /api/v1/... or /apis/<group>/<version>/...; then optional namespaces/<ns>/; then <plural>[/<name>[/<sub>]]
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:] if parts[:1] == ["apis"] else []
    if not rest:
        return "get", "discovery"
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]
    plural, named = rest[0], len(rest) >= 2
    resource = f"{plural}/{rest[2]}" if len(rest) >= 3 else plural
    m = method.upper()
    if m == "GET":
        verb = "watch" if query.get("watch", [""])[0] in ("true", "1") else "get" if named else "list"
    elif m == "DELETE":
        verb = "delete" if named else "deletecollection"
    else:
        verb = _VERBS.get(m, m.lower())
    return verb, resource


def _counted(call_api: Any) -> Any:
    """`ApiClient.call_api`, counting every request by verb and resource (modelhub_api_requests_total) and timing
    its answer (modelhub_api_request_duration_seconds)."""

    def call(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        kind = None
        try:
            kind = request_kind(method, url)
            metrics.record_api_request(*kind)
        except Exception:  # noqa: BLE001 - counting never fails a request
            log.debug("request %s %s not counted", method, url, exc_info=True)
        started = time.monotonic()
        try:
            return call_api(method, url, *args, **kwargs)
        finally:
            if kind is not None:
                metrics.record_api_latency(*kind, time.monotonic() - started)

    return call


class Kube:
    """A small facade over the official client, configured once (kubeconfig or in-cluster). Every request it
    sends (typed calls, raw requests, watches) is counted by verb and resource."""

    def __init__(self, pool_size: int = 64) -> None:
        cfg = kubernetes.client.Configuration()
        if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
            kubernetes.config.load_incluster_config(client_configuration=cfg)
        else:
            kubernetes.config.load_kube_config(client_configuration=cfg)
        cfg.connection_pool_maxsize = pool_size
        self.api_client = kubernetes.client.ApiClient(cfg)
        rest = self.api_client.rest_client
        rest.pool_manager = share_tls_context(rest.pool_manager)
        # Raw requests only: the client's typed APIs (CoreV1Api alone is 22 MB of code once imported) and their
        # model classes are neither imported nor used.
        self.api_client.call_api = _counted(self.api_client.call_api)  # type: ignore[method-assign]

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> dict[str, Any]:
        """One API request with an explicit content type; JSON in and out, ApiException on non-2xx."""
        _, url, headers, ser_body, _ = self.api_client.param_serialize(
            method, path, query_params=query or [], header_params={"Accept": accept,
                                                                   "Content-Type": content_type},
            body=body, auth_settings=["BearerToken"],
        )
        resp = self.api_client.call_api(method, url, header_params=headers, body=ser_body, _request_timeout=30)
        data = resp.read()
        if not 200 <= resp.status < 300:
            raise ApiException(status=resp.status, reason=resp.reason, body=data.decode(errors="replace"))
        return loads(data) if data else {}

    # --- custom resources -------------------------------------------------------------------------------
    def patch_status(self, kind: str, namespace: str | None, name: str,
                     status: dict[str, Any]) -> dict[str, Any] | None:
        """Merge-patch the status subresource (lists such as conditions are replaced whole); the object as the
        API server now has it (None when it is gone)."""
        where = f"namespaces/{namespace}/" if namespace else ""
        path = f"/apis/{GROUP}/{VERSION}/{where}{PLURALS[kind]}/{name}/status"
        try:
            out = self.request("PATCH", path, body={"status": status}, content_type="application/merge-patch+json")
        except ApiException as exc:
            if exc.status == 404:  # gone meanwhile: nothing to report on
                return None
            raise
        out.setdefault("kind", kind)
        out.setdefault("apiVersion", f"{GROUP}/{VERSION}")
        (out.get("metadata") or {}).pop("managedFields", None)  # the answer goes into the cache
        return out

    # --- core objects -----------------------------------------------------------------------------------
    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            cm = self.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/{name}")
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return {"data": dict(cm.get("data") or {}), "resourceVersion": (cm.get("metadata") or {}).get("resourceVersion")}

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Secret of a tenant's namespace as the API returns it (base64 ``data``), None when absent. Raises
        PermissionError when the operator may not read it (the chart grants it per namespace, by RoleBinding)."""
        try:
            out = self.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
        except ApiException as exc:
            if exc.status == 404:
                return None
            if exc.status == 403:
                raise PermissionError(f"the operator may not read Secret {namespace}/{name}") from None
            raise
        return {"data": dict(out.get("data") or {})}

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply with our field manager, forcing ownership of the fields we set (drift correction)."""
        kind = obj["kind"]
        ns = obj["metadata"]["namespace"]
        name = obj["metadata"]["name"]
        path = {
            "Deployment": f"/apis/apps/v1/namespaces/{ns}/deployments/{name}",
            "Service": f"/api/v1/namespaces/{ns}/services/{name}",
        }[kind]
        out = self.request(
            "PATCH", path, body=obj, query=[("fieldManager", COMPONENT), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
        (out.get("metadata") or {}).pop("managedFields", None)  # the answer goes into the cache
        return out

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

    def pod_problems(self, namespace: str, selector: str) -> tuple[str | None, str | None]:
        """Why the pods of `selector` do not serve: (the scheduler's message, the loader's refusal), one list
        (how often is the version reconcile's decision: versions.pods_question)."""
        out = self.request("GET", f"/api/v1/namespaces/{namespace}/pods", query=[("labelSelector", selector)])
        pods = list(out.get("items") or [])
        return unschedulable_reason(pods), loader_failure(pods)

    def ensure_secret_key(
        self, namespace: str, name: str, key: str, make: Any, min_bytes: int = approvalkey.MIN_BYTES
    ) -> bytes:
        """The value of a Secret key, creating the namespace and Secret (value from make()) when absent.

        A Secret that exists is adopted only if its key holds at least `min_bytes` bytes: otherwise
        :class:`~modelhub.domain.approvalkey.ApprovalKeyError` (the startup reports it and stops) - an empty or
        short key would make the seals it protects guessable."""
        where = f"Secret {namespace}/{name}"
        try:
            secret = self.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
            return approvalkey.key_from_secret_data(secret.get("data"), key, where, min_bytes)
        except ApiException as exc:
            if exc.status != 404:
                raise
        try:
            self.request("POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace",
                                                             "metadata": {"name": namespace}})
        except ApiException as exc:
            if exc.status != 409:
                raise
        value = approvalkey.check_key(make(), f"the new key for {where}", min_bytes)
        try:
            self.request("POST", f"/api/v1/namespaces/{namespace}/secrets", body={
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "labels": {L.MANAGED_BY: L.MANAGER}},
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

    def workload_path(self, kind: str, namespace: str, name: str | None = None) -> str:
        kind_ = WORKLOAD_KINDS[kind]
        base = f"{kind_.prefix}/namespaces/{namespace}/{kind_.plural}"
        return f"{base}/{name}" if name else base

    def delete_workload(self, kind: str, namespace: str, name: str, *, grace_seconds: int | None = 0) -> bool:
        """Delete a workload of any kind we tear down (its dependents go in the background); False when gone."""
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if grace_seconds is not None:
            body["gracePeriodSeconds"] = grace_seconds
        try:
            self.request("DELETE", self.workload_path(kind, namespace, name), body=body)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def get_metadata(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """An object's `metadata` (read as PartialObjectMetadata), or None when it does not exist."""
        if kind not in WORKLOAD_KINDS:
            return None
        try:
            out = self.request("GET", self.workload_path(kind, namespace, name), accept=METADATA_ACCEPT)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(out.get("metadata") or {})

    def has_api(self, group_version: str) -> bool:
        """Whether the API server serves a group/version (e.g. a CRD's, such as KServe's)."""
        try:
            self.request("GET", f"/apis/{group_version}")
        except ApiException as exc:
            if exc.status in (404, 503):
                return False
            raise
        return True

    # --- authorization ------------------------------------------------------------------------------------------
    def access_review(self, user: str, groups: list[str], uid: str, extra: dict[str, list[str]], *, namespace: str,
                      verb: str, group: str, resource: str, name: str = "") -> tuple[bool, str]:
        """Whether the API server's authorizers let `user` (with groups, uid, extra) do `verb` on `resource` of
        `group` in `namespace` (a SubjectAccessReview); (allowed, reason). An error or a timeout is (False, why)."""
        attrs = {"namespace": namespace, "verb": verb, "group": group, "resource": resource,
                 **({"name": name} if name else {})}
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                "spec": {"user": user, "groups": groups, "uid": uid, "extra": extra, "resourceAttributes": attrs}}
        try:
            _, url, headers, ser_body, _ = self.api_client.param_serialize(
                "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                header_params={"Accept": "application/json", "Content-Type": "application/json"},
                body=body, auth_settings=["BearerToken"])
            resp = self.api_client.call_api("POST", url, header_params=headers, body=ser_body,
                                            _request_timeout=(3, 5))
            data = resp.read()
            if not 200 <= resp.status < 300:
                return False, f"the authorization check failed: HTTP {resp.status} {str(resp.reason)[:100]}"
            status = loads(data).get("status") or {}
        except Exception as exc:  # noqa: BLE001 - any failure to ask is a refusal, never a crash of the webhook
            return False, f"the authorization check failed: {type(exc).__name__}"
        return bool(status.get("allowed")) and not status.get("denied"), str(status.get("reason") or "")[:200]

    # --- any namespaced object by apiVersion and plural (the traffic router's HTTPRoute and Services) ----------
    @staticmethod
    def object_path(api_version: str, plural: str, namespace: str, name: str | None = None) -> str:
        prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        base = f"{prefix}/namespaces/{namespace}/{plural}"
        return f"{base}/{name}" if name else base

    def apply_object(self, obj: dict[str, Any], plural: str) -> dict[str, Any]:
        """Server-side apply of any namespaced object with our field manager, forcing ownership of our fields."""
        path = self.object_path(obj["apiVersion"], plural, obj["metadata"]["namespace"], obj["metadata"]["name"])
        return self.request("PATCH", path, body=obj, query=[("fieldManager", COMPONENT), ("force", "true")],
                            content_type="application/apply-patch+yaml")

    def replace_object(self, obj: dict[str, Any], plural: str) -> dict[str, Any]:
        """Put the whole object back (drift correction of what someone else edited); create it if absent."""
        path = self.object_path(obj["apiVersion"], plural, obj["metadata"]["namespace"], obj["metadata"]["name"])
        try:
            live = self.request("GET", path)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return self.apply_object(obj, plural)
        body = {**obj, "metadata": {**obj["metadata"], "resourceVersion": live["metadata"]["resourceVersion"]}}
        return self.request("PUT", path, body=body)

    def delete_object(self, api_version: str, plural: str, namespace: str, name: str) -> bool:
        """Delete a namespaced object (dependents in the background); False when it (or its API) is gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        try:
            self.request("DELETE", self.object_path(api_version, plural, namespace, name), body=body)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def serves_resource(self, group_version: str, plural: str) -> bool:
        """Whether the API server serves a resource of a group/version (e.g. httproutes of
        gateway.networking.k8s.io/v1: its CRD is installed and established)."""
        try:
            out = self.request("GET", f"/apis/{group_version}")
        except ApiException as exc:
            if exc.status in (404, 503):
                return False
            raise
        return any(r.get("name") == plural for r in out.get("resources") or [] if isinstance(r, dict))

    # --- leader election ---------------------------------------------------------------------------------------
    def _lease_path(self, namespace: str, name: str | None = None) -> str:
        base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        return f"{base}/{name}" if name else base

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", self._lease_path(namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def write_lease(self, namespace: str, name: str, spec: dict[str, Any],
                    resource_version: str | None) -> dict[str, Any] | None:
        """Create (no resourceVersion) or update the Lease; None when someone else wrote it first (409)."""
        body: dict[str, Any] = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                "metadata": {"name": name, "namespace": namespace}, "spec": spec}
        try:
            if resource_version is None:
                return self.request("POST", self._lease_path(namespace), body=body)
            body["metadata"]["resourceVersion"] = resource_version
            return self.request("PUT", self._lease_path(namespace, name), body=body)
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise

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


# --- watches with their selectors sent to the API server ----------------------------------------------------
WatchCallback = Any  # (event_type: str, obj: dict) -> None, called from the watch thread


class Reflector:
    """List, then watch, one resource with a label (and optional field) selector the API server applies.

    kopf filters labels in the client, so every object of a kind in the cluster would be streamed and decoded;
    this sends the selector to the API server, keeps the objects as plain JSON (no model classes), resumes from the
    last resourceVersion (bookmarks on), and relists on 410 Gone, reporting objects that vanished meanwhile as
    DELETED. Events go to `on_event(type, obj)` from the reflector's own thread.
    """

    def __init__(self, kube: Kube, *, kind: str, api_version: str, path: str, on_event: WatchCallback,
                 label_selector: str | None = None, field_selector: str | None = None,
                 timeout_seconds: int = 300, metadata_only: bool = False) -> None:
        self._kube, self.kind, self.api_version, self.path = kube, kind, api_version, path
        self._on_event = on_event
        self._query = [(k, v) for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v]
        self._timeout = timeout_seconds
        self._metadata_only = metadata_only
        self._known: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{kind}", daemon=True)
        self._response: Any = None

    def start(self) -> Reflector:
        self._thread.start()
        return self

    def wait_synced(self, timeout: float | None = None) -> bool:
        """Whether the first list has been delivered."""
        return self._synced.wait(timeout)

    def stop(self) -> None:
        """Ask the watch to end. Never blocks: closing a stream another thread is reading can wait on that read,
        so the close happens in a thread of its own (the caller is the event loop)."""
        self._stop.set()
        resp = self._response
        if resp is not None:
            def close() -> None:
                try:
                    resp.close()
                except Exception:  # noqa: BLE001 - closing a dead stream
                    pass

            threading.Thread(target=close, name=f"close-watch-{self.kind}", daemon=True).start()

    def _emit(self, event_type: str, obj: dict[str, Any]) -> None:
        obj["kind"], obj["apiVersion"] = self.kind, self.api_version  # (PartialObjectMetadata says its own)
        m = obj.get("metadata") or {}
        m.pop("managedFields", None)  # nobody reads them; a large share of every cached object
        key = (m.get("namespace") or "", m.get("name") or "")
        if event_type == "DELETED":
            self._known.discard(key)
        else:
            self._known.add(key)
        try:
            self._on_event(event_type, obj)
        except Exception:  # noqa: BLE001 - a handler's failure never stops the watch
            log.exception("watch handler for %s %s/%s failed", self.kind, *key)

    def _list(self) -> str:
        out = self._kube.request("GET", self.path, query=self._query,
                                 accept=METADATA_LIST_ACCEPT if self._metadata_only else "application/json")
        seen = set()
        for item in out.get("items") or []:
            m = item.get("metadata") or {}
            key = (m.get("namespace") or "", m.get("name") or "")
            seen.add(key)
            self._emit("MODIFIED" if key in self._known else "ADDED", item)
        for ns, name in sorted(self._known - seen):
            self._emit("DELETED", {"metadata": {"namespace": ns or None, "name": name}})
        self._synced.set()
        return str((out.get("metadata") or {}).get("resourceVersion") or "")

    def _watch(self, rv: str) -> str | None:
        """Stream events from `rv`; the last resourceVersion seen, or None when the server said 410 Gone."""
        query = [*self._query, ("watch", "true"), ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", str(self._timeout)), ("resourceVersion", rv)]
        api = self._kube.api_client
        _, url, headers, _, _ = api.param_serialize("GET", self.path, query_params=query,
                                                    header_params={"Accept": METADATA_ACCEPT if self._metadata_only
                                                                   else "application/json"},
                                                    auth_settings=["BearerToken"])
        resp = api.call_api("GET", url, header_params=headers, _request_timeout=(10, self._timeout + 30))
        self._response = resp.response if hasattr(resp, "response") else resp
        try:
            if resp.status == 410:
                return None
            if not 200 <= resp.status < 300:
                raise ApiException(status=resp.status, reason=resp.reason)
            buf = b""
            for chunk in self._response.stream(65536, decode_content=True):
                if self._stop.is_set():
                    return rv
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if not line.strip():
                        continue
                    ev = loads(line)
                    obj = ev.get("object") or {}
                    if ev.get("type") == "ERROR":
                        if obj.get("code") == 410:
                            return None
                        raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                    rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                    if ev.get("type") != "BOOKMARK":
                        self._emit(str(ev.get("type")), obj)
            return rv
        finally:
            self._response.release_conn()
            self._response = None

    def _run(self) -> None:
        rv: str | None = None
        delay = 0.5
        while not self._stop.is_set():
            try:
                if rv is None:
                    rv = self._list()
                rv = self._watch(rv)
                delay = 0.5
            except Exception as exc:  # noqa: BLE001 - reconnect (API server restarts, timeouts)
                if self._stop.is_set():
                    return
                log.info("watch of %s %s interrupted (%s); reconnecting in %.1fs", self.kind, self._query, exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)
                if isinstance(exc, ApiException) and exc.status in (403, 404):
                    rv = None
