"""Who approves in the e2e tests: not the kubeconfig's admin, who creates the versions (the author of a version
cannot approve it), but another user the admin impersonates. Its group system:masters lets the webhook's
SubjectAccessReview allow `approve`; tests/e2e/test_approvals.py checks approval against the chart's own roles."""

from __future__ import annotations

APPROVER = "e2e-approver@example.com"
AS_APPROVER = (f"--as={APPROVER}", "--as-group=system:masters")
