"""Pure summaries of a Model's versions for its status."""

from __future__ import annotations

from typing import Any

from modelhub.api.conditions import get_condition
from modelhub.vocab import conditions as C


def version_counts(versions: list[dict[str, Any]]) -> dict[str, int]:
    def true(v: dict[str, Any], t: str) -> bool:
        c = get_condition(v.get("status", {}).get("conditions") or [], t)
        return bool(c and c.get("status") == C.TRUE)

    return {
        "total": len(versions),
        "verified": sum(true(v, C.SIGNATURE_VERIFIED) for v in versions),
        "approved": sum(true(v, C.APPROVED) for v in versions),
        "revoked": sum(true(v, C.REVOKED) for v in versions),
    }
