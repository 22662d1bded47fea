"""Bounds of the loader (the init container that fetches a model): bytes, time, rate, and the volume size.

Pure. The operator derives a :class:`LoaderLimits` for each ModelVersion from its operator-wide defaults and
the version's optional ``spec.artifact.size`` (and, when it knows it, the total size the signed manifest
implies), passes it to the loader as flags (:func:`loader_args`), and sizes the model ``emptyDir`` from it
(:func:`model_volume_size_limit`). The loader applies the same limits, tightened by the sizes the signed
manifest states, and fails closed with a one-line reason when any is exceeded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "DEFAULTS",
    "ENV",
    "LoaderFailure",
    "LoaderLimits",
    "effective_limits",
    "file_cap",
    "limits_from_env",
    "loader_failure",
    "loader_args",
    "model_volume_size_limit",
    "parse_size",
]

GiB = 1024**3
MiB = 1024**2
KiB = 1024
VOLUME_HEADROOM = 64 * MiB  # marker, lock file, directory entries, filesystem rounding

# The operator's settings (environment variables) and the loader's own defaults for the same limits.
ENV = {
    "max_total_bytes": "MODELHUB_LOADER_MAX_TOTAL_BYTES",
    "max_file_bytes": "MODELHUB_LOADER_MAX_FILE_BYTES",
    "deadline_seconds": "MODELHUB_LOADER_DEADLINE_SECONDS",
    "min_rate": "MODELHUB_LOADER_MIN_RATE",
    "rate_window": "MODELHUB_LOADER_RATE_WINDOW_SECONDS",
    "max_bundle_bytes": "MODELHUB_BUNDLE_MAX_BYTES",
}


@dataclass(frozen=True)
class LoaderLimits:
    """``max_total_bytes``: all files together; ``max_file_bytes``: any one file whose size the signed
    manifest does not state; ``deadline_seconds``: the whole load; ``min_rate``: bytes per second each transfer
    must keep up over every ``rate_window`` seconds (0: no minimum); ``max_bundle_bytes``: the signature
    bundle."""

    max_total_bytes: int = 64 * GiB
    max_file_bytes: int = 64 * GiB
    deadline_seconds: float = 3600.0
    min_rate: float = 64 * KiB
    rate_window: float = 30.0
    max_bundle_bytes: int = 4 * MiB

    def __post_init__(self) -> None:
        for name in ("max_total_bytes", "max_file_bytes", "max_bundle_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of bytes >= 1, not {value!r}")
        if not self.deadline_seconds > 0 or not math.isfinite(self.deadline_seconds):
            raise ValueError(f"deadline_seconds must be > 0, not {self.deadline_seconds!r}")
        if not self.min_rate >= 0 or not math.isfinite(self.min_rate):
            raise ValueError(f"min_rate must be >= 0, not {self.min_rate!r}")
        if not self.rate_window > 0 or not math.isfinite(self.rate_window):
            raise ValueError(f"rate_window must be > 0, not {self.rate_window!r}")


DEFAULTS = LoaderLimits()

_UNITS = {
    "": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4,
    "ki": KiB, "mi": MiB, "gi": GiB, "ti": 1024**4,
}  # fmt: skip


def parse_size(text: str | int, what: str = "size") -> int:
    """A byte count: ``1073741824``, ``512Mi``, ``64Gi``, ``10G`` (Kubernetes quantity suffixes)."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    raw = str(text).strip()
    number = raw.rstrip("KMGTkmgtiI")
    unit = raw[len(number):].lower()
    if unit not in _UNITS or not number.isdigit():
        raise ValueError(f"{what}: {text!r} is not a byte count (e.g. 1048576, 512Mi, 64Gi)")
    return int(number) * _UNITS[unit]


def limits_from_env(environ: Mapping[str, str], base: LoaderLimits = DEFAULTS) -> LoaderLimits:
    """The operator-wide limits: `base` with every variable of :data:`ENV` that is set; ValueError names a
    malformed one."""
    changes: dict[str, Any] = {}
    for field_name, var in ENV.items():
        value = environ.get(var, "").strip()
        if not value:
            continue
        if field_name in ("max_total_bytes", "max_file_bytes", "max_bundle_bytes"):
            changes[field_name] = parse_size(value, var)
        else:
            try:
                changes[field_name] = float(value)
            except ValueError:
                raise ValueError(f"{var}: {value!r} is not a number") from None
    return replace(base, **changes)


def _artifact_size(artifact: Mapping[str, Any]) -> int | None:
    size = artifact.get("size")
    if size is None:
        return None
    value = parse_size(size, "spec.artifact.size")
    if value < 1:
        raise ValueError("spec.artifact.size must be at least 1 byte")
    return value


def effective_limits(
    artifact: Mapping[str, Any], defaults: LoaderLimits = DEFAULTS, *, signed_total: int | None = None
) -> LoaderLimits:
    """The limits of one ModelVersion's load: the total is the signed manifest's total when known, else
    ``spec.artifact.size``, each capped by the operator-wide total; one file is at most the total."""
    total = defaults.max_total_bytes
    declared = signed_total if signed_total is not None else _artifact_size(artifact)
    if declared is not None:
        total = max(1, min(total, declared))
    return replace(defaults, max_total_bytes=total, max_file_bytes=min(defaults.max_file_bytes, total))


def file_cap(limits: LoaderLimits, signed_size: int | None) -> int:
    """The most bytes one file may have: its signed size when the manifest states it, else the per-file limit."""
    return signed_size if signed_size is not None else limits.max_file_bytes


def loader_args(limits: LoaderLimits) -> list[str]:
    """The ``modelhub load`` flags that carry `limits`."""
    return [
        "--max-total-bytes", str(limits.max_total_bytes),
        "--max-file-bytes", str(limits.max_file_bytes),
        "--deadline", _num(limits.deadline_seconds),
        "--min-rate", _num(limits.min_rate),
        "--rate-window", _num(limits.rate_window),
        "--max-bundle-bytes", str(limits.max_bundle_bytes),
    ]  # fmt: skip


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def model_volume_size_limit(limits: LoaderLimits) -> str:
    """The ``sizeLimit`` of the model emptyDir: the total the loader may write plus a fixed headroom (marker,
    lock, filesystem rounding), in whole MiB. The loader stages inside the volume and renames, and discards any
    earlier copy before fetching, so the total is never held twice."""
    return f"{math.ceil((limits.max_total_bytes + VOLUME_HEADROOM) / MiB)}Mi"


# ------------------------------------------------------------------------------------ loader failures

LOADER_CONTAINER = "loader"
_REASON_RE = re.compile(r"^[A-Z][A-Za-z0-9]{0,63}$")
MESSAGE_MAX = 1024


@dataclass(frozen=True)
class LoaderFailure:
    """Why a pod's loader init container failed: its one-line ``Reason: message`` termination message."""

    reason: str
    message: str
    pod: str
    exit_code: int | None


def loader_failure(pod: Mapping[str, Any], container: str = LOADER_CONTAINER) -> LoaderFailure | None:
    """The loader's last failure in `pod` (as the API returns it), from its termination message (current state
    first, else the last state of a restarted container); None when it has not failed. The message is the
    loader's own (``Reason: message``); anything else there (a log tail, an OOM kill) becomes ``LoadFailed`` or
    the kubelet's reason, on one line and at most :data:`MESSAGE_MAX` characters."""
    statuses = ((pod.get("status") or {}).get("initContainerStatuses")) or []
    status = next((s for s in statuses if isinstance(s, Mapping) and s.get("name") == container), None)
    if status is None:
        return None
    name = str((pod.get("metadata") or {}).get("name") or "")
    for state_key in ("state", "lastState"):
        terminated = ((status.get(state_key) or {}).get("terminated")) or None
        if not isinstance(terminated, Mapping):
            continue
        code = terminated.get("exitCode")
        if code == 0:
            return None
        raw = str(terminated.get("message") or "")
        lines = [line for line in raw.splitlines() if line.startswith("error: ")]
        if lines:  # a log tail (terminationMessagePolicy FallbackToLogsOnError): the loader's last error line
            raw = lines[-1][len("error: "):]
        text = " ".join(raw.split())
        head, sep, rest = text.partition(": ")
        if sep and _REASON_RE.match(head):
            reason, message = head, rest
        else:
            reason = str(terminated.get("reason") or "LoadFailed")
            reason = reason if _REASON_RE.match(reason) else "LoadFailed"
            message = text or f"the loader exited with code {code}"
        if len(message) > MESSAGE_MAX:
            message = message[: MESSAGE_MAX - 3] + "..."
        return LoaderFailure(reason, message, name, code if isinstance(code, int) else None)
    return None
