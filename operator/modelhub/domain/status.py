"""Status writes as pure values: the merge patch that turns one status into another."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON merge patch from `old` to `new` (None values in `new` mean absent), or None when they are equal.

    A merge patch keeps keys it does not mention: the dropped ones are named with null to remove them. Lists
    (such as conditions) are replaced whole.
    """
    want = {k: v for k, v in new.items() if v is not None}
    if want == dict(old):
        return None
    return {**{k: None for k in old if k not in want}, **want}
