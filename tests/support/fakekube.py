"""An in-memory stand-in for the kube adapter (the `KubePort` the reconcilers use), for handler unit tests.

It keeps objects as the API server would (generation bumped on spec changes, resourceVersion on every write,
status through its own call), queues the watch events each write causes for the test to deliver in any order,
and plays the Deployment controller and kubelet on request (`settle_deployment`).
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any

Key = tuple[str, str, str]  # (kind, namespace, name)


class NotFound(Exception):
    """A 404 from the API server, as the real client raises it (status, body)."""

    status = 404

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.body = message


@dataclass
class WatchEvent:
    type: str
    kind: str
    obj: dict[str, Any]


@dataclass
class FakeKube:
    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)
    pending: list[WatchEvent] = field(default_factory=list)
    recorded_events: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (verb, kind)
    unschedulable: dict[str, str] = field(default_factory=dict)  # namespace -> message for its pending pods
    rejected: dict[str, str] = field(default_factory=dict)  # namespace -> the loader's refusal in its pods
    # (user, verb, namespace) the fake authorizer allows: an in-memory stand-in for RBAC's SubjectAccessReview.
    allowed: set[tuple[str, str, str]] = field(default_factory=set)
    served: set[str] = field(default_factory=set)  # "group/version/plural" of CRDs installed (e.g. HTTPRoutes)
    _rv: itertools.count = field(default_factory=lambda: itertools.count(1))

    # --- the test's side --------------------------------------------------------------------------------
    def put(self, obj: dict[str, Any], *, event: bool = True) -> dict[str, Any]:
        """Create or update an object the way a user's kubectl apply would (spec changes bump generation)."""
        obj = copy.deepcopy(obj)
        m = obj.setdefault("metadata", {})
        key = (obj["kind"], m.get("namespace") or "", m["name"])
        old = self.objects.get(key)
        m.setdefault("uid", f"uid-{m['name']}-{next(self._rv)}")
        m.setdefault("creationTimestamp", "2026-12-01T00:00:00Z")
        if old is not None:
            m["uid"] = old["metadata"]["uid"]
            m["creationTimestamp"] = old["metadata"]["creationTimestamp"]
            gen = int(old["metadata"].get("generation") or 1)
            m["generation"] = gen + 1 if old.get("spec") != obj.get("spec") else gen
            obj.setdefault("status", old.get("status") or {})
        else:
            m["generation"] = 1
        m["resourceVersion"] = str(next(self._rv))
        self.objects[key] = obj
        if event:
            self.pending.append(WatchEvent("MODIFIED" if old else "ADDED", obj["kind"], copy.deepcopy(obj)))
        return obj

    def remove(self, kind: str, namespace: str, name: str) -> None:
        obj = self.objects.pop((kind, namespace, name), None)
        if obj is not None:
            self.pending.append(WatchEvent("DELETED", kind, copy.deepcopy(obj)))

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))

    def of_kind(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [o for (k, ns, _), o in sorted(self.objects.items()) if k == kind and namespace in (None, ns)]

    def settle_deployment(self, namespace: str, name: str, step: int | None = None) -> bool:
        """The Deployment controller and kubelets: bring readyReplicas one `step` (default: all the way) toward
        spec.replicas (in an unschedulable or rejecting namespace: its pods counted, none ready). Whether anything
        changed."""
        dep = self.objects.get(("Deployment", namespace, name))
        if dep is None:
            return False
        want = int(dep["spec"].get("replicas") or 0)
        ready = int((dep.get("status") or {}).get("readyReplicas") or 0)
        if namespace in self.unschedulable or namespace in self.rejected:
            # Its pods are created and stay unready (Pending, or the loader refuses): the controller counts them.
            if (dep.get("status") or {}).get("replicas") == want:
                return False
            ready = 0
        elif ready == want:
            return False
        else:
            ready = want if step is None else (min(want, ready + step) if ready < want else max(want, ready - step))
        dep["status"] = {"replicas": want, "readyReplicas": ready, "observedGeneration": dep["metadata"]["generation"]}
        dep["metadata"]["resourceVersion"] = str(next(self._rv))
        self.pending.append(WatchEvent("MODIFIED", "Deployment", copy.deepcopy(dep)))
        return True

    # --- KubePort ----------------------------------------------------------------------------------------
    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.requests.append(("get", "ConfigMap"))
        cm = self.objects.get(("ConfigMap", namespace, name))
        return None if cm is None else {"data": dict(cm.get("data") or {}),
                                        "resourceVersion": cm["metadata"]["resourceVersion"]}

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.requests.append(("get", "Secret"))
        secret = self.objects.get(("Secret", namespace, name))
        if secret is not None and secret.get("forbidden"):
            raise PermissionError(f"the operator may not read Secret {namespace}/{name}")
        return None if secret is None else {"data": dict(secret.get("data") or {})}

    def patch_status(self, kind: str, namespace: str | None, name: str,
                     status: dict[str, Any]) -> dict[str, Any] | None:
        self.requests.append(("patch-status", kind))
        obj = self.objects.get((kind, namespace or "", name))
        if obj is None:
            return None
        merged = dict(obj.get("status") or {})
        for k, v in status.items():
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = copy.deepcopy(v)
        obj["status"] = merged
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        self.pending.append(WatchEvent("MODIFIED", kind, copy.deepcopy(obj)))
        return copy.deepcopy(obj)

    def _write(self, desired: dict[str, Any], verb: str) -> dict[str, Any]:
        self.requests.append((verb, desired["kind"]))
        m = desired["metadata"]
        old = self.objects.get((desired["kind"], m["namespace"], m["name"]))
        obj = copy.deepcopy(desired)
        if old is not None and verb == "apply":  # server-side apply keeps fields set by others
            merged = copy.deepcopy(old)
            merged["spec"] = {**old.get("spec", {}), **obj.get("spec", {})}
            for part in ("labels", "annotations"):
                merged["metadata"][part] = {**old["metadata"].get(part, {}), **m.get(part, {})}
            merged["metadata"]["ownerReferences"] = m.get("ownerReferences", [])
            obj = merged
        if old is not None:
            obj["status"] = old.get("status") or {}
        return self.put(obj)

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(self._write(obj, "apply"))

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(self._write(obj, "replace"))

    def apply_object(self, obj: dict[str, Any], plural: str) -> dict[str, Any]:
        self._check_served(obj["apiVersion"], plural)
        return copy.deepcopy(self._write(obj, "apply"))

    def replace_object(self, obj: dict[str, Any], plural: str) -> dict[str, Any]:
        self._check_served(obj["apiVersion"], plural)
        return copy.deepcopy(self._write(obj, "replace"))

    def delete_object(self, api_version: str, plural: str, namespace: str, name: str) -> bool:
        kind = {"services": "Service", "httproutes": "HTTPRoute"}[plural]
        self.requests.append(("delete", kind))
        if (kind, namespace, name) not in self.objects:
            return False
        self.remove(kind, namespace, name)
        return True

    def serves_resource(self, group_version: str, plural: str) -> bool:
        self.requests.append(("get", f"APIResourceList {group_version}"))
        return f"{group_version}/{plural}" in self.served

    def _check_served(self, api_version: str, plural: str) -> None:
        if api_version != "v1" and f"{api_version}/{plural}" not in self.served:
            raise NotFound(f"the server could not find the requested resource ({plural}.{api_version})")

    def delete_deployment(self, namespace: str, name: str, *, grace_seconds: int | None = 0) -> bool:
        self.requests.append(("delete", "Deployment"))
        if ("Deployment", namespace, name) not in self.objects:
            return False
        self.remove("Deployment", namespace, name)
        return True

    def delete_workload(self, kind: str, namespace: str, name: str, *, grace_seconds: int | None = 0) -> bool:
        self.requests.append(("delete", kind))
        if (kind, namespace, name) not in self.objects:
            return False
        self.remove(kind, namespace, name)
        return True

    def get_metadata(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.requests.append(("get", kind))
        obj = self.objects.get((kind, namespace, name))
        return None if obj is None else copy.deepcopy(obj["metadata"])

    def pod_problems(self, namespace: str, selector: str) -> tuple[str | None, str | None]:
        self.requests.append(("list", "Pod"))
        return self.unschedulable.get(namespace), self.rejected.get(namespace)

    def event(self, obj: dict[str, Any], *, type_: str, reason: str, message: str, action: str) -> None:
        self.requests.append(("create", "Event"))
        m = obj.get("metadata") or {}
        self.recorded_events.append({"kind": obj.get("kind"), "name": m.get("name"), "type": type_,
                                     "reason": reason, "message": message, "action": action})

    def access_review(self, user: str, groups: list[str], uid: str, extra: dict[str, list[str]], *, namespace: str,
                      verb: str, group: str, resource: str, name: str = "") -> tuple[bool, str]:
        self.requests.append(("create", "SubjectAccessReview"))
        return (user, verb, namespace) in self.allowed, ""
