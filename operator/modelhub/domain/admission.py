"""Admission decisions, pure: whether a ModelVersion or a promotion is refused because a Revocation covers it.

Returns the refusal message (the webhook answers 403 with it) or None.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelhub.domain import revocation as rdomain


def _promoted(spec: Mapping[str, Any] | None) -> set[str]:
    p = (spec or {}).get("promotion") or {}
    return {str(v) for v in (p.get("stable"), (p.get("canary") or {}).get("version")) if v}


@dataclass(frozen=True)
class Refusal:
    message: str
    revocation: str  # the covering Revocation's name
    digest: str  # the refused version's artifact digest (a late link when matched by dataset or model rule)


def version_refusal(obj: Mapping[str, Any], old: Mapping[str, Any] | None, operation: str | None,
                    revocations: list[dict[str, Any]]) -> Refusal | None:
    if operation == "UPDATE" and (old or {}).get("spec") == obj.get("spec"):
        return None  # metadata-only changes of an existing version (labels, finalizers) are not a resurrection
    facts = rdomain.VersionFacts.from_object(obj)
    found = rdomain.first_covering(revocations, facts)
    if not found:
        return None
    rev, why = found
    name = (obj.get("metadata") or {}).get("name")
    rev_name = str((rev.get("metadata") or {}).get("name") or "")
    return Refusal(f"ModelVersion {name} is revoked by Revocation {rev_name} ({why}): "
                   f"{(rev.get('spec') or {}).get('reason', '')}. Delete the Revocation to lift it.",
                   rev_name, facts.digest)


def refuse_version(obj: Mapping[str, Any], old: Mapping[str, Any] | None, operation: str | None,
                   revocations: list[dict[str, Any]]) -> str | None:
    refusal = version_refusal(obj, old, operation, revocations)
    return refusal.message if refusal else None


def refuse_promotion(model: Mapping[str, Any], old: Mapping[str, Any] | None, versions: list[dict[str, Any]],
                     revocations: list[dict[str, Any]]) -> str | None:
    """A newly promoted version is refused if any ModelVersion of that version is covered, or a model rule
    covers it (even before such a ModelVersion exists)."""
    meta = model.get("metadata") or {}
    ns, name = meta.get("namespace") or "", meta.get("name") or ""
    for version in sorted(_promoted(model.get("spec")) - _promoted((old or {}).get("spec"))):
        candidates = [v for v in versions if (v.get("spec") or {}).get("version") == version]
        facts = [rdomain.VersionFacts.from_object(v) for v in candidates] or [
            rdomain.VersionFacts(namespace=ns, name="", model=name, version=version, digest="")
        ]
        for f in facts:
            hit = rdomain.first_covering(revocations, f)
            if hit:
                rev, why = hit
                return (f"cannot promote {name} {version}: revoked by Revocation "
                        f"{(rev.get('metadata') or {}).get('name')} ({why}): {(rev.get('spec') or {}).get('reason', '')}")
    return None
