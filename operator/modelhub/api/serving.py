"""How a model version is served: the inference container, the accelerator it needs, replicas and placement.

A Model's ``spec.serving`` holds the defaults (``Serving``); a ModelVersion's ``spec.serving`` overrides them
(``ServingOverrides``, every field optional). ``modelhub.domain.placement.effective_serving`` merges the two.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from modelhub.api.common import (
    ENV_NAME_PATTERN,
    NO_SPACE_PATTERN,
    QUANTITY_PATTERN,
    SpecModel,
    cel,
)


def _quantity(value: Any) -> Any:
    # Users write `cpu: 2` as often as `cpu: "2"`; the API server accepts both (int-or-string).
    if isinstance(value, bool):
        raise ValueError("a quantity must be an integer or a string such as '500m' or '4Gi'")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        raise ValueError("a quantity must be an integer or a string such as '500m' or '4Gi', not a float")
    return value


#: A Kubernetes resource quantity (``500m``, ``2``, ``4Gi``); integers are accepted and kept as strings.
Quantity = Annotated[
    str,
    BeforeValidator(_quantity),
    Field(pattern=QUANTITY_PATTERN, max_length=64),
    WithJsonSchema({"x-kubernetes-int-or-string": True, "pattern": QUANTITY_PATTERN}),
]


class EnvVar(SpecModel):
    """An environment variable of the inference container."""

    name: str = Field(
        min_length=1, max_length=256, pattern=ENV_NAME_PATTERN, description="Name of the environment variable."
    )
    value: str | None = Field(default=None, max_length=32768, description="Value of the variable; omitted means empty.")


class ResourceRequirements(SpecModel):
    """Compute resources of the inference container, as in a Pod's container resources. GPUs are not set
    here: they come from the accelerator."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict,
        description="Minimum resources the scheduler reserves, by resource name (for example cpu: 500m, "
        "memory: 2Gi).",
    )
    limits: dict[str, Quantity] = Field(
        default_factory=dict,
        description="Maximum resources the container may use, by resource name (for example memory: 4Gi).",
    )


class Toleration(SpecModel):
    """Lets serving pods run on nodes with a matching taint (the core/v1 Toleration)."""

    key: str | None = Field(
        default=None, max_length=317, description="Taint key to match; empty with operator Exists matches all."
    )
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="Exists (any value) or Equal (value must match). Defaults to Equal."
    )
    value: str | None = Field(default=None, max_length=63, description="Taint value to match with Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = Field(
        default=None,
        description="For NoExecute: how long the pod stays bound after the taint appears; unset means forever.",
    )


_RUNTIME_DOC = {
    "image": "Container image of the inference server (for example ghcr.io/acme/vllm:0.6.3). The model "
    "files reach it through the modelhub loader init container, which fetches them and checks every "
    "digest against the signed manifest before this container starts.",
    "port": "TCP port the inference server listens on; the Model's Service routes to it.",
    "command": "Entrypoint of the container (overrides the image's ENTRYPOINT).",
    "args": "Arguments to the entrypoint (override the image's CMD).",
    "env": "Environment variables of the inference container.",
    "resources": "CPU and memory requests and limits of the inference container.",
}


class Runtime(SpecModel):
    """The inference server container that serves the model."""

    image: str = Field(min_length=1, max_length=1024, pattern=NO_SPACE_PATTERN, description=_RUNTIME_DOC["image"])
    port: int = Field(default=8080, ge=1, le=65535, description=_RUNTIME_DOC["port"])
    command: list[str] = Field(default_factory=list, max_length=256, description=_RUNTIME_DOC["command"])
    args: list[str] = Field(default_factory=list, max_length=256, description=_RUNTIME_DOC["args"])
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=256,
        description=_RUNTIME_DOC["env"],
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    resources: ResourceRequirements | None = Field(default=None, description=_RUNTIME_DOC["resources"])


class RuntimeOverrides(SpecModel):
    """Overrides of the Model's runtime for this version; unset fields keep the Model's value."""

    image: str | None = Field(
        default=None, min_length=1, max_length=1024, pattern=NO_SPACE_PATTERN, description=_RUNTIME_DOC["image"]
    )
    port: int | None = Field(default=None, ge=1, le=65535, description=_RUNTIME_DOC["port"])
    command: list[str] | None = Field(
        default=None, max_length=256, description=_RUNTIME_DOC["command"] + " Replaces the Model's list."
    )
    args: list[str] | None = Field(
        default=None, max_length=256, description=_RUNTIME_DOC["args"] + " Replaces the Model's list."
    )
    env: list[EnvVar] | None = Field(
        default=None,
        max_length=256,
        description=_RUNTIME_DOC["env"] + " Merged by name with the Model's: a variable set here wins.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    resources: ResourceRequirements | None = Field(
        default=None,
        description=_RUNTIME_DOC["resources"] + " Merged by resource name with the Model's.",
    )


class Accelerator(SpecModel):
    """The hardware each serving replica needs. cpu: no GPU. gpu: `count` NVIDIA GPUs per replica
    (requested as nvidia.com/gpu), optionally of one `product` (matched against the nvidia.com/gpu.product
    node label); pods tolerate the nvidia.com/gpu NoSchedule taint."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.kind != 'cpu' || !has(self.count)",
                    "count is only valid with kind gpu",
                    ".count",
                ),
                cel(
                    "self.kind != 'cpu' || !has(self.product)",
                    "product is only valid with kind gpu",
                    ".product",
                ),
                cel(
                    "self.kind != 'gpu' || (has(self.count) && self.count >= 1)",
                    "a gpu accelerator needs count: the number of GPUs per replica, at least 1",
                    ".count",
                ),
            ]
        }
    )

    kind: Literal["cpu", "gpu"] = Field(description="cpu (no accelerator) or gpu (NVIDIA GPUs).")
    count: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Number of GPUs per replica (kind gpu only; required there, at least 1).",
    )
    product: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        description="GPU model to run on, the value of the nvidia.com/gpu.product node label (for example "
        "NVIDIA-A100-SXM4-80GB). Kind gpu only; unset means any GPU.",
    )

    @model_validator(mode="after")
    def _check_kind(self) -> Accelerator:
        if self.kind == "cpu":
            if self.count is not None:
                raise ValueError("count is only valid with kind gpu")
            if self.product is not None:
                raise ValueError("product is only valid with kind gpu")
        elif self.count is None:
            raise ValueError("a gpu accelerator needs count: the number of GPUs per replica, at least 1")
        return self

    @property
    def gpus(self) -> int:
        """GPUs per replica (0 for cpu)."""
        return (self.count or 0) if self.kind == "gpu" else 0


_SERVING_DOC = {
    "accelerator": "The hardware each replica needs (cpu, or gpu with a count and an optional product). "
    "Defaults to cpu.",
    "replicas": "Number of serving pods of the stable version. 0 keeps the version rolled out but scaled "
    "down. A canary gets its share (spec.promotion.canary.weight) of these replicas.",
    "nodeSelector": "Node labels the serving pods must match, in addition to the GPU product label.",
    "tolerations": "Extra tolerations of the serving pods (the nvidia.com/gpu toleration is added for gpu).",
    "affinity": "Pod affinity and anti-affinity of the serving pods, as in a Pod spec (core/v1 Affinity).",
}


def _affinity_field(description: str) -> Any:
    return Field(default=None, description=description)


class Serving(SpecModel):
    """How the versions of this Model are served by default: the inference container, the accelerator, the
    number of replicas and where the pods may run. A ModelVersion can override any of these fields."""

    runtime: Runtime = Field(description="The inference server container.")
    accelerator: Accelerator | None = Field(default=None, description=_SERVING_DOC["accelerator"])
    replicas: int = Field(default=1, ge=0, le=1000, description=_SERVING_DOC["replicas"])
    node_selector: dict[str, str] = Field(default_factory=dict, description=_SERVING_DOC["nodeSelector"])
    tolerations: list[Toleration] = Field(default_factory=list, max_length=64, description=_SERVING_DOC["tolerations"])
    affinity: dict[str, Any] | None = _affinity_field(_SERVING_DOC["affinity"])

    def effective_accelerator(self) -> Accelerator:
        return self.accelerator or Accelerator(kind="cpu")


class ServingOverrides(SpecModel):
    """Overrides of the Model's spec.serving for this version only. Unset fields keep the Model's value;
    accelerator, tolerations and affinity replace the Model's as a whole, nodeSelector and env merge by key."""

    runtime: RuntimeOverrides | None = Field(default=None, description="Overrides of the inference container.")
    accelerator: Accelerator | None = Field(
        default=None, description=_SERVING_DOC["accelerator"] + " Replaces the Model's accelerator."
    )
    replicas: int | None = Field(default=None, ge=0, le=1000, description=_SERVING_DOC["replicas"])
    node_selector: dict[str, str] | None = Field(
        default=None, description=_SERVING_DOC["nodeSelector"] + " Merged with the Model's."
    )
    tolerations: list[Toleration] | None = Field(
        default=None, max_length=64, description=_SERVING_DOC["tolerations"] + " Replaces the Model's list."
    )
    affinity: dict[str, Any] | None = _affinity_field(_SERVING_DOC["affinity"] + " Replaces the Model's.")


__all__ = [
    "Accelerator",
    "EnvVar",
    "Quantity",
    "ResourceRequirements",
    "Runtime",
    "RuntimeOverrides",
    "Serving",
    "ServingOverrides",
    "Toleration",
]
