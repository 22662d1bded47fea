"""Admission webhooks (kopf entry module): sealed approvals (RBAC-authorized, never by the version's creator), and
no resurrection of revoked versions. Only the API server can call them when MODELHUB_WEBHOOK_CLIENT_CA is set
(TLS client authentication, see handlers/webhook.py).

They intercept CREATE and UPDATE of ModelVersions and Models only — never DELETE, never a Deployment, so no
webhook of ours can block a delete or a scale-down. They fail open (failurePolicy Ignore) so a stopped operator
never wedges GitOps; the reconcilers refuse revoked versions too, and approvals are sealed, so nothing relies on
the webhook being up. Decisions are in modelhub.domain (approval, admission); the reconciler comes in `memo`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import kopf

from modelhub import GROUP, VERSION
from modelhub.adapters import metrics
from modelhub.domain import admission as decide
from modelhub.domain import approval as approval_domain
from modelhub.handlers.reconciler import Reconciler

# failurePolicy of the webhook configurations kopf writes: Ignore (default: a stopped operator never wedges GitOps;
# the reconcilers refuse the same things) or Fail (MODELHUB_WEBHOOK_FAILURE_POLICY=Fail: CREATE and UPDATE of
# modelhub resources are refused while no replica answers; DELETE is never intercepted, so nothing blocks a delete).
IGNORE_FAILURES = os.environ.get("MODELHUB_WEBHOOK_FAILURE_POLICY", "Ignore").strip().lower() != "fail"


def _recorded(webhook: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Count each request of a webhook by result: allowed, denied (an admission refusal), error."""
    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(fn)
        def inner(**kwargs: Any) -> None:
            try:
                fn(**kwargs)
            except kopf.AdmissionError:
                metrics.record_webhook(webhook, "denied")
                raise
            except Exception:
                metrics.record_webhook(webhook, "error")
                raise
            metrics.record_webhook(webhook, "allowed")
        return inner
    return wrap


def _reconciler(memo: kopf.Memo) -> Reconciler | None:
    r = memo.get("reconciler")
    return r if isinstance(r, Reconciler) else None


@kopf.on.mutate(GROUP, VERSION, "modelversions", operations=["CREATE", "UPDATE"], id="approval",
                ignore_failures=IGNORE_FAILURES)
@_recorded("approval")
def seal_approval(*, body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, warnings: list[str],
                  **kwargs: Any) -> None:
    """Seal the creator at CREATE; turn an approval request at UPDATE into a sealed record when the requester is
    not the creator and RBAC lets them `approve` (a SubjectAccessReview); else drop it with a Warning."""
    r = _reconciler(memo)
    if r is None:
        raise kopf.AdmissionError("the modelhub operator is starting; try again in a moment", code=503)
    ctx = r.ctx
    review = approval_domain.Review.of(kwargs.get("operation"), dict(body), kwargs.get("old"),
                                       kwargs.get("userinfo"), ctx.now_iso())
    authorization = None
    if review.asks_approval and approval_domain.refusal_before_authorization(ctx.approval_key, review) is None:
        who = review.requester
        allowed, reason = ctx.kube.access_review(
            who.username, list(who.groups), who.uid, {k: list(v) for k, v in who.extra.items()},
            namespace=review.subject.namespace, verb=approval_domain.APPROVE_VERB, group=GROUP,
            resource=approval_domain.APPROVE_RESOURCE, name=review.subject.name)
        authorization = approval_domain.Authorization(allowed, reason)
    admission = approval_domain.admit(ctx.approval_key, review, authorization)
    for k, v in admission.changes.items():
        patch.metadata.setdefault("annotations", {})[k] = v
    warnings.extend(admission.warnings)


@kopf.on.validate(GROUP, VERSION, "modelversions", operations=["CREATE", "UPDATE"], id="no-resurrection",
                  ignore_failures=IGNORE_FAILURES)
@_recorded("no-resurrection")
def refuse_revoked_version(*, body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    r = _reconciler(memo)
    if r is None:
        return  # fail open while starting: the reconcilers refuse revoked versions too
    ctx = r.ctx
    refusal = decide.version_refusal(dict(body), kwargs.get("old"), kwargs.get("operation"), ctx.live_revocations())
    if refusal:
        r.refused(refusal.revocation, refusal.digest)
        raise kopf.AdmissionError(refusal.message, code=403)


@kopf.on.validate(GROUP, VERSION, "models", operations=["CREATE", "UPDATE"], id="no-revoked-promotion",
                  ignore_failures=IGNORE_FAILURES)
@_recorded("no-revoked-promotion")
def refuse_revoked_promotion(*, body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    r = _reconciler(memo)
    if r is None:
        return
    ctx = r.ctx
    versions = ctx.cache.by("ModelVersion", "model", (body.metadata.namespace or "", body.metadata.name or ""))
    why = decide.refuse_promotion(dict(body), kwargs.get("old"), versions, ctx.live_revocations())
    if why:
        raise kopf.AdmissionError(why, code=403)
