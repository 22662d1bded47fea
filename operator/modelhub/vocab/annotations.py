"""Annotations the operator reads or writes."""

from __future__ import annotations

ARTIFACT_DIGEST = "modelhub.dev/artifact-digest"  # on a workload (and pod template): the artifact it serves
MODEL_VERSION = "modelhub.dev/model-version"  # on a managed Deployment: its ModelVersion's name
APPROVE = "modelhub.dev/approve"  # set by a user ("true"): a request for approval
APPROVAL = "modelhub.dev/approval"  # set by the webhook: the sealed approval record
CREATED_BY = "modelhub.dev/created-by"  # set by the webhook at CREATE: the sealed record of who created a version
