"""Pure decisions about a Model's status, from the Model and the ModelVersions that name it."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from modelhub.api.conditions import get_condition, set_condition


def validation_message(exc: ValidationError) -> str:
    """One line naming each bad field, in the spec.x.y form a kubectl user knows."""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts)


def version_counts(versions: list[dict[str, Any]]) -> dict[str, int]:
    def true(v: dict[str, Any], t: str) -> bool:
        c = get_condition(v.get("status", {}).get("conditions") or [], t)
        return bool(c and c.get("status") == "True")

    return {
        "total": len(versions),
        "verified": sum(true(v, "SignatureVerified") for v in versions),
        "approved": sum(true(v, "Approved") for v in versions),
        "revoked": sum(true(v, "Revoked") for v in versions),
    }


def model_status(
    model: dict[str, Any], versions: list[dict[str, Any]], now: str, spec_error: str | None
) -> dict[str, Any]:
    """The Model's status: counts of its versions and a Ready condition (False with the reason on bad spec)."""
    old = model.get("status") or {}
    generation = model.get("metadata", {}).get("generation", 0)
    conditions = list(old.get("conditions") or [])
    if spec_error:
        conditions = set_condition(conditions, "Ready", "False", "InvalidSpec", spec_error, generation, now)
    else:
        n = len(versions)
        conditions = set_condition(
            conditions, "Ready", "True", "Reconciled", f"{n} version{'s' if n != 1 else ''} known", generation, now
        )
    return {**old, "observedGeneration": generation, "conditions": conditions, "versions": version_counts(versions)}
