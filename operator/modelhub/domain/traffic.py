"""Weighted traffic through a Gateway API HTTPRoute: pure builders and decisions.

When a Model asks for a router (``spec.promotion.trafficRouting.httpRoute``) and the cluster serves the HTTPRoute
API, the canary weight is a share of *requests*, as with Argo Rollouts, Flagger and KServe: the operator writes
one Service per served version (selecting that version's pods only) and one HTTPRoute named after the Model whose
single rule's backendRefs carry the weights (stable ``100 - w``, canary ``w``). Weight only goes to backends with
ready pods (:func:`applied_weights`); a version handing over to its successor (a promotion or a rollback, make
before break) keeps the share its successor cannot take yet. Replicas follow the share of requests
(:func:`routed_split`).

Inputs are plain dicts shaped like the resources; outputs are manifests for server-side apply. No clock, no I/O.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelhub.domain.workloads import (
    PORT_NAME,
    SERVICE_PORT,
    WorkloadError,
    owner_reference,
    sanitize_label_value,
    selector_labels,
)
from modelhub.vocab import labels as L
from modelhub.vocab import traffic as T

NAME_MAX = 63
_DNS1035_LABEL_RE = re.compile(r"^[a-z](?:[-a-z0-9]*[a-z0-9])?$")
_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    return dict(obj.get("metadata") or {})


def router_spec(model: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Model's HTTPRoute router (``spec.promotion.trafficRouting.httpRoute``), or None when it asks for none
    (then the canary weight is a share of replicas)."""
    promotion = (model.get("spec") or {}).get("promotion") or {}
    routing = promotion.get("trafficRouting") or {}
    spec = routing.get("httpRoute") if isinstance(routing, dict) else None
    return dict(spec) if isinstance(spec, dict) and spec.get("parentRefs") else None


def routed_split(total: int, weight: int) -> tuple[int, int]:
    """``(stable, canary)`` replicas when a router splits requests by weight.

    The stable keeps all ``total`` replicas until it is replaced: it serves ``100 - weight`` % of requests and
    must take them all back at once when the canary is stopped, rolled back or revoked (the router moves weight in
    one write; pods take minutes). The canary gets enough for its share: ``max(1, ceil(total * weight / 100))``
    (a canary asked for always runs; weight 0 or total 0: none).

    Examples: (4, 10) -> (4, 1); (4, 50) -> (4, 2); (10, 25) -> (10, 3); (3, 100) -> (3, 3); (0, 50) -> (0, 0).
    """
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise ValueError(f"total replicas must be a whole number >= 0, not {total!r}")
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        raise ValueError(f"weight must be within 0..100, not {weight!r}")
    if weight == 0 or total == 0:
        return total, 0
    return total, max(1, math.ceil(total * weight / 100))


def version_service_name(model_name: str, version_name: str) -> str:
    """The per-version Service's name: the ModelVersion's (as its Deployment's) when that is a DNS-1035 label
    other than the Model's own name (which names the Model's Service); otherwise a DNS-1035 label made from it,
    ending in 8 hex characters of its sha256 so that distinct versions keep distinct names."""
    if len(version_name) <= NAME_MAX and _DNS1035_LABEL_RE.match(version_name) and version_name != model_name:
        return version_name
    text = _NOT_DNS.sub("-", version_name.lower()).strip("-")
    if not text or not text[0].isalpha():
        text = "v-" + text
    digest = hashlib.sha256(version_name.encode()).hexdigest()[:8]
    return f"{text[:NAME_MAX - 9].rstrip('-')}-{digest}"


def build_version_service(model: Mapping[str, Any], version_name: str, version: str, role: str) -> dict[str, Any]:
    """The v1 Service of one served version: owned by the Model, selecting the pods of that ModelVersion only
    (the Deployment's selector labels), port 80 to the pods' named port ``http``. The role is a label of the
    Service (never of the pods: a promotion must not restart them)."""
    meta = _meta(model)
    model_name = meta.get("name")
    if not model_name:
        raise WorkloadError("Model metadata.name is required")
    name = version_service_name(model_name, version_name)
    metadata: dict[str, Any] = {"name": name}
    if meta.get("namespace"):
        metadata["namespace"] = meta["namespace"]
    metadata.update({
        "labels": {
            L.NAME: sanitize_label_value(model_name),
            L.MANAGED_BY: L.MANAGER,
            L.MODEL: sanitize_label_value(model_name),
            L.INSTANCE: sanitize_label_value(version_name),
            L.VERSION: sanitize_label_value(version),
            L.ROLE: role,
        },
        "ownerReferences": [owner_reference(dict(model), "Model")],
    })
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "type": "ClusterIP",
            "selector": {**selector_labels(model_name, version_name), L.SERVES_ARTIFACT: L.SERVES_TRUE},
            "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


@dataclass(frozen=True)
class Backend:
    """One version the route may send requests to.

    ``role``: stable, canary, or previous (a Deployment no longer wanted that keeps serving until its successor is
    ready). ``desired``: the weight the promotion asks for (previous: 0). ``replicas``/``ready``: its Deployment's
    desired and ready replicas."""

    version_name: str
    version: str
    role: str
    desired: int
    replicas: int
    ready: int


def _largest_remainder(total: int, shares: Sequence[float]) -> list[int]:
    """Split the integer ``total`` in proportion to ``shares`` (Hamilton's method; ties to the earlier one)."""
    s = sum(shares)
    if total <= 0 or s <= 0:
        return [0] * len(shares)
    exact = [total * x / s for x in shares]
    out = [math.floor(x) for x in exact]
    order = sorted(range(len(shares)), key=lambda i: (-(exact[i] - out[i]), i))
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


def applied_weights(backends: Sequence[Backend]) -> list[int]:
    """The weights to write, in the order of ``backends``: only backends with ready pods get any.

    - While a previous version still serves (a hand-over), each wanted backend gets its desired weight scaled by
      the share of its replicas that are ready, and the previous versions take the rest, by ready replicas: the
      new stable takes requests as fast as it becomes ready, and nothing is sent where no pod answers.
    - Otherwise the wanted backends with ready pods share 100 in proportion to their desired weights: a canary
      without a ready pod gets 0 and the stable all; a canary at 100 whose pods are not ready yet leaves it all
      to the stable. When no backend has a ready pod, the desired weights stand (requests fail either way; the
      route already says what is meant).

    Weights sum to 100 whenever any backend is wanted; a previous version gets 0 once its successors are ready.
    """
    wanted = [i for i, b in enumerate(backends) if b.role != T.ROLE_PREVIOUS]
    previous = [i for i, b in enumerate(backends) if b.role == T.ROLE_PREVIOUS and b.ready > 0]
    out = [0] * len(backends)
    total = sum(backends[i].desired for i in wanted)
    if not wanted or total <= 0:
        return out
    if previous:
        for i in wanted:
            b = backends[i]
            frac = min(b.ready, b.replicas) / b.replicas if b.replicas > 0 else 0.0
            out[i] = math.floor(b.desired * frac)
        rest = total - sum(out)
        for i, w in zip(previous, _largest_remainder(rest, [backends[i].ready for i in previous]), strict=True):
            out[i] = w
        return out
    pool = [i for i in wanted if backends[i].ready > 0 and backends[i].desired > 0] or [
        i for i in wanted if backends[i].ready > 0]
    if not pool:
        for i in wanted:
            out[i] = backends[i].desired
        return out
    shares = [float(backends[i].desired) or 1.0 for i in pool]
    for i, w in zip(pool, _largest_remainder(total, shares), strict=True):
        out[i] = w
    return out


def _parent_ref(ref: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"group": T.GATEWAY_GROUP, "kind": T.GATEWAY_KIND, "name": ref["name"]}
    for key in ("namespace", "sectionName", "port"):
        if ref.get(key) not in (None, ""):
            out[key] = ref[key]
    return out


def build_httproute(
    model: Mapping[str, Any], router: Mapping[str, Any], backends: Sequence[tuple[str, int]]
) -> dict[str, Any]:
    """The gateway.networking.k8s.io/v1 HTTPRoute of ``model``: named after it, owned by it, attached to the
    router's parentRefs, one rule matching the router's path prefix whose backendRefs are ``(Service name,
    weight)`` in the order given (weight 0 included: a backend that is warming up or handing over stays listed, so
    the next weight change is one field). No backends: the rule has none, and the Gateway answers 500 — nothing
    is served, as without a router."""
    meta = _meta(model)
    name = meta.get("name")
    if not name:
        raise WorkloadError("Model metadata.name is required")
    metadata: dict[str, Any] = {"name": name}
    if meta.get("namespace"):
        metadata["namespace"] = meta["namespace"]
    metadata["labels"] = {
        L.NAME: sanitize_label_value(name), L.MANAGED_BY: L.MANAGER, L.MODEL: sanitize_label_value(name),
    }
    metadata["ownerReferences"] = [owner_reference(dict(model), "Model")]
    spec: dict[str, Any] = {"parentRefs": [_parent_ref(r) for r in router.get("parentRefs") or []]}
    if router.get("hostnames"):
        spec["hostnames"] = list(router["hostnames"])
    spec["rules"] = [{
        "matches": [{"path": {"type": T.PATH_PREFIX, "value": router.get("pathPrefix") or "/"}}],
        "backendRefs": [{"group": "", "kind": "Service", "name": svc, "port": SERVICE_PORT, "weight": w}
                        for svc, w in backends],
    }]
    return {"apiVersion": T.GATEWAY_API_VERSION, "kind": T.HTTPROUTE_KIND, "metadata": metadata, "spec": spec}


def route_weights(route: Mapping[str, Any] | None) -> dict[str, int]:
    """The backend weights a live HTTPRoute carries, by Service name (what a Gateway would apply)."""
    out: dict[str, int] = {}
    for rule in ((route or {}).get("spec") or {}).get("rules") or []:
        for ref in rule.get("backendRefs") or []:
            if isinstance(ref, dict) and ref.get("name"):
                out[str(ref["name"])] = int(ref.get("weight", 1))
    return out


__all__ = [
    "Backend",
    "applied_weights",
    "build_httproute",
    "build_version_service",
    "route_weights",
    "routed_split",
    "router_spec",
    "version_service_name",
]
