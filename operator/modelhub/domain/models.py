"""Pure summaries of a Model's versions for its status."""

from __future__ import annotations

from typing import Any

from modelhub.api.conditions import get_condition


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
