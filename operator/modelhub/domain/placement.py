"""Where and how an inference pod runs: the effective serving settings of a version, and its pod placement.

Pure functions over plain dicts shaped like the ``serving`` block of a Model / ModelVersion (camelCase keys).
Nothing here mutates its inputs; every result is a fresh structure (deep-copied where it holds user data).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from modelhub.vocab import labels as L

#: The extended resource the NVIDIA device plugin advertises.
GPU_RESOURCE = "nvidia.com/gpu"
#: The node label (set by GPU feature discovery) naming the GPU model, e.g. ``NVIDIA-A100-SXM4-80GB``.
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
#: The label an operator-configured CPU node selector usually sets (``modelhub.dev/node-class: cpu``).
NODE_CLASS_LABEL = L.NODE_CLASS
#: GPU nodes carry the taint ``nvidia.com/gpu:NoSchedule``; GPU pods tolerate it.
GPU_TOLERATION: dict[str, str] = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}

DEFAULT_PORT = 8080
DEFAULT_REPLICAS = 1
ACCELERATOR_KINDS = ("cpu", "gpu")


class PlacementError(ValueError):
    """The serving settings contradict themselves (e.g. a GPU accelerator with no GPUs). ``message`` is the
    human explanation, suitable for a condition message."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


# --- effective serving ------------------------------------------------------------------------------------
def _merge_env(
    base: list[dict[str, Any]] | None, override: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """Env lists merged by ``name``: an override entry replaces the base entry of the same name in place; new
    names are appended in the override's order."""
    out: list[dict[str, Any]] = [copy.deepcopy(e) for e in base or ()]
    index = {e.get("name"): i for i, e in enumerate(out)}
    for entry in override or ():
        name = entry.get("name")
        if name in index:
            out[index[name]] = copy.deepcopy(entry)
        else:
            index[name] = len(out)
            out.append(copy.deepcopy(entry))
    return out


def _merge_resources(base: dict[str, Any] | None, override: dict[str, Any] | None) -> dict[str, Any]:
    """``resources`` merged per key: ``requests`` and ``limits`` are merged resource by resource (override wins)."""
    out: dict[str, Any] = copy.deepcopy(base or {})
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **copy.deepcopy(value)}
        else:
            out[key] = copy.deepcopy(value)
    return out


def _merge_runtime(base: dict[str, Any] | None, override: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = copy.deepcopy(base or {})
    for key, value in (override or {}).items():
        if key == "env":
            out["env"] = _merge_env(out.get("env"), value)
        elif key == "resources":
            out["resources"] = _merge_resources(out.get("resources"), value)
        else:  # image, port, args, command and anything else: replaced whole
            out[key] = copy.deepcopy(value)
    return out


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _dedupe(items: list[Any]) -> list[Any]:
    """The items in first-seen order without (deep-equal) duplicates."""
    seen: set[str] = set()
    out = []
    for item in items:
        key = _canonical(item)
        if key not in seen:
            seen.add(key)
            out.append(copy.deepcopy(item))
    return out


def effective_serving(
    model_serving: dict[str, Any] | None, version_serving: dict[str, Any] | None
) -> dict[str, Any]:
    """The serving settings of a version: the Model's defaults overridden field by field by the version's.

    ``runtime`` is merged key by key (``env`` by name, ``resources`` per resource; ``image``, ``port``,
    ``args`` and ``command`` are replaced); ``accelerator`` and ``affinity`` are replaced whole; ``replicas``
    is overridden; ``nodeSelector`` is merged (the version wins per key); ``tolerations`` are concatenated
    without duplicates. Unknown keys are replaced whole; a ``null`` in the version overrides nothing.
    Defaults are filled in: ``runtime.port`` 8080, ``replicas`` 1. Neither input is modified.
    """
    base = model_serving or {}
    over = {k: v for k, v in (version_serving or {}).items() if v is not None}  # null = not overridden
    out: dict[str, Any] = {}
    for key in list(base) + [k for k in over if k not in base]:
        in_base, in_over = key in base, key in over
        if not in_over:
            out[key] = copy.deepcopy(base[key])
        elif not in_base:
            out[key] = copy.deepcopy(over[key])
        elif key == "runtime":
            out[key] = _merge_runtime(base[key], over[key])
        elif key == "nodeSelector":
            out[key] = {**copy.deepcopy(base[key] or {}), **copy.deepcopy(over[key] or {})}
        elif key == "tolerations":
            out[key] = _dedupe(list(base[key] or ()) + list(over[key] or ()))
        else:  # accelerator, affinity, replicas and anything else: replaced
            out[key] = copy.deepcopy(over[key])
    if "tolerations" in out:
        out["tolerations"] = _dedupe(list(out["tolerations"] or ()))
    runtime = out.setdefault("runtime", {})
    if runtime.get("port") is None:
        runtime["port"] = DEFAULT_PORT
    if out.get("replicas") is None:
        out["replicas"] = DEFAULT_REPLICAS
    return out


# --- placement --------------------------------------------------------------------------------------------
def _gpu_count(accelerator: dict[str, Any]) -> int:
    count = accelerator.get("count")
    if count is None:
        return 1
    if isinstance(count, bool) or not isinstance(count, int):
        raise PlacementError(f"accelerator.count must be a whole number of GPUs, not {count!r}")
    if count < 1:
        raise PlacementError(
            f"accelerator kind gpu needs count >= 1 (got {count}); use kind cpu to run without a GPU"
        )
    return count


def _asks_for_gpu(resources: dict[str, Any] | None) -> bool:
    for section in ("requests", "limits"):
        value = ((resources or {}).get(section) or {}).get(GPU_RESOURCE)
        if value not in (None, 0, "0"):
            return True
    return False


def pod_placement(
    serving: dict[str, Any], *, cpu_node_selector: dict[str, str] | None = None
) -> dict[str, Any]:
    """Node selector, tolerations, affinity and extra resource limits for a pod with these serving settings.

    Returns ``{"nodeSelector": {...}, "tolerations": [...], "affinity": {...} | None, "limits": {...}}``.

    - ``accelerator.kind: gpu`` (``count`` defaults to 1): limit ``nvidia.com/gpu: "<count>"``, the node selector
      ``nvidia.com/gpu.product: <product>`` when a product is named (it wins over a user key of the same name),
      and the ``nvidia.com/gpu:NoSchedule`` toleration. The CPU node selector is not applied.
    - ``cpu`` or no accelerator: no GPU; the user's ``nodeSelector`` when it is non-empty (an edge or node-class
      selector is honoured as is), otherwise ``cpu_node_selector`` (the operator's setting), otherwise none.

    The user's ``nodeSelector``, ``tolerations`` and ``affinity`` are kept and merged with the above.
    Raises :class:`PlacementError` on contradictions: an unknown kind, a GPU count below 1 or not a whole
    number, a CPU accelerator naming a GPU product, or a CPU accelerator whose runtime resources ask for
    ``nvidia.com/gpu``.
    """
    accelerator = serving.get("accelerator") or {}
    kind = accelerator.get("kind") or "cpu"
    user_selector: dict[str, str] = dict(serving.get("nodeSelector") or {})
    tolerations: list[dict[str, Any]] = list(serving.get("tolerations") or ())
    affinity = copy.deepcopy(serving.get("affinity")) or None
    limits: dict[str, str] = {}
    resources = (serving.get("runtime") or {}).get("resources")

    if kind == "gpu":
        count = _gpu_count(accelerator)
        limits[GPU_RESOURCE] = str(count)
        node_selector = user_selector
        product = accelerator.get("product")
        if product:
            node_selector[GPU_PRODUCT_LABEL] = str(product)
        tolerations.append(dict(GPU_TOLERATION))
    elif kind == "cpu":
        if accelerator.get("product"):
            raise PlacementError(
                f"accelerator kind cpu names GPU product {accelerator['product']!r}; "
                "set kind gpu to run on that GPU, or remove the product"
            )
        if _asks_for_gpu(resources):
            raise PlacementError(
                f"accelerator kind is cpu but runtime.resources asks for {GPU_RESOURCE}; "
                "set accelerator kind gpu with a count instead"
            )
        node_selector = user_selector if user_selector else dict(cpu_node_selector or {})
    else:
        raise PlacementError(
            f"unknown accelerator kind {kind!r}: must be one of {', '.join(ACCELERATOR_KINDS)}"
        )

    return {
        "nodeSelector": dict(sorted(node_selector.items())),
        "tolerations": _dedupe(tolerations),
        "affinity": affinity,
        "limits": limits,
    }


__all__ = [
    "ACCELERATOR_KINDS",
    "DEFAULT_PORT",
    "DEFAULT_REPLICAS",
    "GPU_PRODUCT_LABEL",
    "GPU_RESOURCE",
    "GPU_TOLERATION",
    "NODE_CLASS_LABEL",
    "PlacementError",
    "effective_serving",
    "pod_placement",
]
