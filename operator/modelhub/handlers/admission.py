"""Admission webhooks, served by the operator: sealed approvals, and no resurrection of revoked versions.

They intercept CREATE and UPDATE of ModelVersions and Models only — never DELETE, never a Deployment, so no
webhook of ours can block a delete or a scale-down. They fail open (failurePolicy Ignore) so a stopped operator
never wedges GitOps; the reconcilers refuse revoked versions too, and approvals are sealed, so nothing relies on
the webhook being up.
"""

from __future__ import annotations

from typing import Any

import kopf

from modelhub import GROUP, VERSION
from modelhub.domain import approval as approval_domain
from modelhub.domain import revocation as rdomain
from modelhub.handlers.reconcile import covering, live_revocations, now_iso
from modelhub.handlers.state import STATE


@kopf.on.mutate(GROUP, VERSION, "modelversions", operations=["CREATE", "UPDATE"], id="approval",
                ignore_failures=True)
def seal_approval(*, body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
    old, userinfo = kwargs.get("old"), kwargs.get("userinfo") or {}
    new_ann = dict(body.metadata.annotations or {})
    old_ann = dict(((old or {}).get("metadata") or {}).get("annotations") or {})
    digest = ((body.get("spec") or {}).get("artifact") or {}).get("digest", "")
    changes = approval_domain.admit_annotations(
        STATE.approval_key, body.metadata.namespace or "", body.metadata.name or "", new_ann, old_ann, digest,
        str((userinfo or {}).get("username", "")), list((userinfo or {}).get("groups") or []), now_iso(),
    )
    for k, v in changes.items():
        patch.metadata.setdefault("annotations", {})[k] = v


@kopf.on.validate(GROUP, VERSION, "modelversions", operations=["CREATE", "UPDATE"], id="no-resurrection",
                  ignore_failures=True)
def refuse_revoked_version(*, body: kopf.Body, **kwargs: Any) -> None:
    old, operation = kwargs.get("old"), kwargs.get("operation")
    obj = dict(body)
    if operation == "UPDATE" and (old or {}).get("spec") == obj.get("spec"):
        return  # metadata-only changes of an existing version (labels, finalizers) are not a resurrection
    found = covering(obj)
    if found:
        rev, why = found
        raise kopf.AdmissionError(
            f"ModelVersion {body.metadata.name} is revoked by Revocation {rev['metadata']['name']} ({why}): "
            f"{(rev.get('spec') or {}).get('reason', '')}. Delete the Revocation to lift it.",
            code=403,
        )


@kopf.on.validate(GROUP, VERSION, "models", operations=["CREATE", "UPDATE"], id="no-revoked-promotion",
                  ignore_failures=True)
def refuse_revoked_promotion(*, body: kopf.Body, **kwargs: Any) -> None:
    old = kwargs.get("old")
    ns, model = body.metadata.namespace or "", body.metadata.name or ""
    new_p = (body.get("spec") or {}).get("promotion") or {}
    old_p = (((old or {}).get("spec") or {}).get("promotion")) or {}
    wanted = {str(v) for v in (new_p.get("stable"), (new_p.get("canary") or {}).get("version")) if v}
    before = {str(v) for v in (old_p.get("stable"), (old_p.get("canary") or {}).get("version")) if v}
    for version in sorted(wanted - before):
        # A promotion is refused if any ModelVersion of that version is covered, or a model rule covers it.
        candidates = [
            v for v in STATE.cache.all("ModelVersion")
            if v["metadata"].get("namespace") == ns and (v.get("spec") or {}).get("model") == model
            and (v.get("spec") or {}).get("version") == version
        ]
        facts = [rdomain.VersionFacts.from_object(v) for v in candidates] or [
            rdomain.VersionFacts(namespace=ns, name="", model=model, version=version, digest="")
        ]
        for f in facts:
            hit = rdomain.first_covering(live_revocations(), f)
            if hit:
                rev, why = hit
                raise kopf.AdmissionError(
                    f"cannot promote {model} {version}: revoked by Revocation {rev['metadata']['name']} ({why}): "
                    f"{(rev.get('spec') or {}).get('reason', '')}",
                    code=403,
                )
