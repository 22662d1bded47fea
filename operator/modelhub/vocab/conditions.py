"""Condition types of Model, ModelVersion and Revocation status, and the condition status values."""

from __future__ import annotations

TRUE = "True"
FALSE = "False"
UNKNOWN = "Unknown"
STATUSES: tuple[str, ...] = (TRUE, FALSE, UNKNOWN)

# ModelVersion
SIGNATURE_VERIFIED = "SignatureVerified"
APPROVED = "Approved"
REVOKED = "Revoked"
AVAILABLE = "Available"
READY = "Ready"  # also on the Model
# Model
PROGRESSING = "Progressing"
TRAFFIC_ROUTED = "TrafficRouted"  # only while spec.promotion.trafficRouting asks for a router
# Revocation
ENFORCED = "Enforced"

VERSION_TYPES: tuple[str, ...] = (SIGNATURE_VERIFIED, APPROVED, REVOKED, AVAILABLE, READY)
MODEL_TYPES: tuple[str, ...] = (READY, PROGRESSING, TRAFFIC_ROUTED)
REVOCATION_TYPES: tuple[str, ...] = (ENFORCED,)

# Kubernetes Event types.
NORMAL = "Normal"
WARNING = "Warning"
