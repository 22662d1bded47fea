"""Writing status: only when it changed, and the cache kept ahead of the watch."""

from __future__ import annotations

from typing import Any

from modelhub.domain.status import status_patch
from modelhub.handlers.context import Context, StatusWrite


async def write_status(ctx: Context, kind: str, obj: dict[str, Any], status: dict[str, Any]) -> bool:
    """Merge-patch `status` onto the object's status subresource if it differs; whether anything was written."""
    patch = status_patch(obj.get("status") or {}, status)
    if patch is None:
        return False
    m = obj.get("metadata") or {}
    key = (kind, m.get("namespace") or "", m["name"])
    # While the write is on its way, the router holds back this object's watch events (the write's echo may come
    # before its answer); the ones that were not the echo are routed when it ends.
    writing = ctx.status_writes.setdefault(key, StatusWrite())
    writing.count += 1
    written: Any = None
    try:
        written = await ctx.io(ctx.kube.patch_status, kind, m.get("namespace"), m["name"], patch)
        # Keep the cache ahead of the watch (with the written object's resourceVersion, so that an older watch
        # event arriving later does not put the old status back): the next reconcile does not redo the
        # transition.
        if isinstance(written, dict) and written.get("metadata"):
            ctx.cache.put(kind, written)
        else:
            ctx.cache.put(kind, {**obj, "status": {k: v for k, v in status.items() if v is not None}})
    finally:
        writing.count -= 1
        if writing.count <= 0:
            ctx.status_writes.pop(key, None)
            echo = str(((written or {}).get("metadata") or {}).get("resourceVersion")) if isinstance(
                written, dict) else None
            if writing.seen - {echo} and ctx.after_status_write is not None:
                ctx.after_status_write(*key)
    return True
