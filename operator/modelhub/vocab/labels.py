"""Labels the operator sets or selects on (label values are at most 63 characters)."""

from __future__ import annotations

MODEL = "modelhub.dev/model"
VERSION = "modelhub.dev/version"
ROLE = "modelhub.dev/role"
SERVES_ARTIFACT = "modelhub.dev/serves-artifact"  # value "true": the workload declares ANN digest (annotations)
NODE_CLASS = "modelhub.dev/node-class"
MANAGED_BY = "app.kubernetes.io/managed-by"
NAME = "app.kubernetes.io/name"
INSTANCE = "app.kubernetes.io/instance"
APP_VERSION = "app.kubernetes.io/version"
PART_OF = "app.kubernetes.io/part-of"

# Values
MANAGER = "modelhub"  # of MANAGED_BY
SERVES_TRUE = "true"  # of SERVES_ARTIFACT
ROLE_STABLE = "stable"
ROLE_CANARY = "canary"
ROLES = (ROLE_STABLE, ROLE_CANARY)

# The selectors the operator's watches send to the API server.
SERVES_SELECTOR = f"{SERVES_ARTIFACT}={SERVES_TRUE}"
MANAGED_SELECTOR = f"{MANAGED_BY}={MANAGER}"
