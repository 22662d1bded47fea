"""Names of the traffic split: the modes in status.traffic, the Gateway API kind the operator writes."""

from __future__ import annotations

# status.traffic.mode
MODE_HTTPROUTE = "HTTPRoute"  # requests split by the HTTPRoute's backend weights
MODE_REPLICAS = "Replicas"  # the canary weight is a share of replicas behind the Model's one Service

# status.traffic.backends[].role, besides labels.ROLE_STABLE / ROLE_CANARY: a version handing over to its successor
ROLE_PREVIOUS = "previous"

# Gateway API (gateway.networking.k8s.io), standard channel
GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_VERSION = "v1"
GATEWAY_API_VERSION = f"{GATEWAY_GROUP}/{GATEWAY_VERSION}"
HTTPROUTE_KIND = "HTTPRoute"
HTTPROUTE_PLURAL = "httproutes"
GATEWAY_KIND = "Gateway"
PATH_PREFIX = "PathPrefix"
