"""Pure builders of the Kubernetes objects that serve a model: one Deployment per served ModelVersion, one
Service per Model, and the replica split between a stable and a canary version.

Inputs are plain dicts shaped like the custom resources (camelCase keys); outputs are full manifests as plain
dicts, ready for server-side apply. Same input, identical output (no clock, no randomness, stable ordering).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import re
from typing import Any

from modelhub.domain.loadlimits import DEFAULTS as LOADER_DEFAULTS
from modelhub.domain.loadlimits import LoaderLimits, effective_limits, loader_args, model_volume_size_limit
from modelhub.domain.placement import GPU_RESOURCE, effective_serving, pod_placement
from modelhub.domain.storeca import store_ca_ref
from modelhub.vocab import annotations as A
from modelhub.vocab import labels as L

API_VERSION = "modelhub.dev/v1alpha1"

# --- labels and annotations -------------------------------------------------------------------------------
# (Spelled once in modelhub.vocab; the short names here are kept for the builders and their tests.)
LABEL_MODEL = L.MODEL
LABEL_VERSION = L.VERSION
LABEL_SERVES = L.SERVES_ARTIFACT
LABEL_MANAGED = L.MANAGED_BY
LABEL_ROLE = L.ROLE
LABEL_NAME = L.NAME
LABEL_INSTANCE = L.INSTANCE
LABEL_APP_VERSION = L.APP_VERSION
ANN_DIGEST = A.ARTIFACT_DIGEST
ANN_VERSION_NAME = A.MODEL_VERSION

MANAGED_BY = L.MANAGER
SERVES_TRUE = L.SERVES_TRUE
ROLE_STABLE = L.ROLE_STABLE
ROLE_CANARY = L.ROLE_CANARY
ROLES = L.ROLES

# --- pod layout -------------------------------------------------------------------------------------------
LOADER_CONTAINER = "loader"
#: Where the loader writes its failure reason (Kubernetes' default path, stated so the loader and the spec agree).
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
SERVER_CONTAINER = "server"
PORT_NAME = "http"
MODELS_DIR = "/models"
MODEL_DIR = "/models/model"
KEYS_DIR = "/keys"
CAS_DIR = "/cas"
SIGNATURE_DIR = "/signature"
STORE_CA_DIR = "/store-ca"
STORE_CA_FILE = "ca.crt"
PVC_ROOT = "/mnt/pvc"
VOLUME_MODEL = "model"
VOLUME_KEYS = "keys"
VOLUME_CAS = "cas"
VOLUME_SIGNATURE = "signature"
VOLUME_REGISTRY = "registry-auth"
#: Where an oci:// artifact's dockerconfigjson Secret is mounted (as config.json: the loader reads
#: $DOCKER_CONFIG/config.json, as docker, oras and crane do).
REGISTRY_AUTH_DIR = "/var/run/modelhub/registry"
DOCKER_CONFIG_ENV = "DOCKER_CONFIG"
DOCKERCONFIGJSON_KEY = ".dockerconfigjson"
VOLUME_STORE_CA = "store-ca"
SERVICE_PORT = 80

LABEL_VALUE_MAX = 63
_LABEL_VALUE_RE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_LABEL_BAD_CHARS = re.compile(r"[^-A-Za-z0-9_.]")
_DNS1035_LABEL_RE = re.compile(r"^[a-z](?:[-a-z0-9]*[a-z0-9])?$")


class WorkloadError(ValueError):
    """The resources cannot be turned into a valid workload (missing image, no trusted keys, bad name...).
    ``message`` is the human explanation, suitable for a condition message."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


def sanitize_label_value(value: str) -> str:
    """``value`` as a valid Kubernetes label value (at most 63 characters of ``[-A-Za-z0-9_.]``, beginning and
    ending with an alphanumeric character). Valid values are returned unchanged; otherwise each invalid
    character becomes ``_`` (so ``1.0.0+build.5`` → ``1.0.0_build.5``; SemVer never contains ``_``, so this is
    one-to-one for versions), non-alphanumeric ends are trimmed, and a value still longer than 63 characters
    keeps its first 54 characters followed by ``-`` and 8 hex characters of the original's sha256."""
    if len(value) <= LABEL_VALUE_MAX and _LABEL_VALUE_RE.match(value):
        return value
    text = _LABEL_BAD_CHARS.sub("_", value).strip("-_.")
    if len(text) > LABEL_VALUE_MAX:
        digest = hashlib.sha256(value.encode()).hexdigest()[:8]
        text = text[:54].rstrip("-_.") + "-" + digest
    return text


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("spec") or {}


def _required(value: Any, what: str) -> Any:
    if value in (None, ""):
        raise WorkloadError(f"{what} is required")
    return value


def selector_labels(model_name: str, version_name: str) -> dict[str, str]:
    """The Deployment's ``spec.selector.matchLabels`` (immutable once created, so kept minimal)."""
    return {
        LABEL_MODEL: sanitize_label_value(model_name),
        LABEL_INSTANCE: sanitize_label_value(version_name),
    }


def pod_labels(model_name: str, version_name: str, version: str) -> dict[str, str]:
    """Labels of a serving pod. No role label: a stable/canary change must not restart pods."""
    return {
        LABEL_MODEL: sanitize_label_value(model_name),
        LABEL_VERSION: sanitize_label_value(version),
        LABEL_INSTANCE: sanitize_label_value(version_name),
        LABEL_SERVES: SERVES_TRUE,
    }


def service_selector(model_name: str) -> dict[str, str]:
    """What the Model's Service selects: every serving pod of the model, stable and canary alike."""
    return {LABEL_MODEL: sanitize_label_value(model_name), LABEL_SERVES: SERVES_TRUE}


def deployment_labels(model_name: str, version_name: str, version: str, role: str) -> dict[str, str]:
    """The labels on a Deployment's own metadata (includes the role)."""
    return {
        LABEL_NAME: sanitize_label_value(model_name),
        LABEL_INSTANCE: sanitize_label_value(version_name),
        LABEL_APP_VERSION: sanitize_label_value(version),
        LABEL_MANAGED: MANAGED_BY,
        LABEL_MODEL: sanitize_label_value(model_name),
        LABEL_VERSION: sanitize_label_value(version),
        LABEL_ROLE: role,
        # The selector label that revocation uses to find every workload declaring the artifact it serves.
        LABEL_SERVES: "true",
    }


def owner_reference(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    """A controller owner reference to a modelhub resource (``kind`` Model or ModelVersion)."""
    meta = _meta(obj)
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "name": _required(meta.get("name"), f"{kind} metadata.name"),
        "uid": _required(meta.get("uid"), f"{kind} metadata.uid"),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _pvc_claim(uri: str | None) -> str | None:
    """The claim of a ``pvc://<claim>/<path>`` URI, else None."""
    if not uri or not uri.startswith("pvc://"):
        return None
    claim = uri[len("pvc://") :].split("/", 1)[0]
    return claim or None


def keys_volume(model: dict[str, Any]) -> dict[str, Any]:
    """The ``keys`` volume: a projected volume of the Model's trusted-key ConfigMaps. An entry naming a ``key``
    projects only that item, at path ``<configmap>--<key>``; an entry without one projects the whole ConfigMap.
    The ConfigMaps are not optional: a missing one keeps the pod from starting (fail closed)."""
    volume = _projected((_spec(model).get("trust") or {}).get("keys") or [], "spec.trust.keys", VOLUME_KEYS)
    if volume is None:
        raise WorkloadError(
            f"Model {_meta(model).get('name')} has no trusted keys (spec.trust.keys): nothing could verify it"
        )
    return volume


def _projected(entries: list[dict[str, Any]], what: str, volume: str) -> dict[str, Any] | None:
    sources: list[dict[str, Any]] = []
    seen: set[tuple[str, str | None]] = set()
    for entry in entries:
        name = _required(entry.get("name"), f"{what}[].name")
        key = entry.get("key") or None
        if (name, key) in seen:
            continue
        seen.add((name, key))
        source: dict[str, Any] = {"name": name}
        if key:
            source["items"] = [{"key": key, "path": f"{name}--{key}"}]
        sources.append({"configMap": source})
    return {"name": volume, "projected": {"sources": sources}} if sources else None


def cas_volume(model: dict[str, Any]) -> dict[str, Any] | None:
    """The ``cas`` volume: a projected volume of the Model's trusted CA ConfigMaps
    (``spec.trust.certificateAuthorities``), laid out like ``keys``; None when the Model trusts no CA."""
    entries = (_spec(model).get("trust") or {}).get("certificateAuthorities") or []
    return _projected(entries, "spec.trust.certificateAuthorities", VOLUME_CAS)


def trust_volumes(model: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``keys`` and ``cas`` volumes the loader verifies with: whichever of them the Model has (at least one,
    or nothing could verify a version: WorkloadError)."""
    keys = _projected((_spec(model).get("trust") or {}).get("keys") or [], "spec.trust.keys", VOLUME_KEYS)
    volumes = [v for v in (keys, cas_volume(model)) if v is not None]
    if not volumes:
        raise WorkloadError(
            f"Model {_meta(model).get('name')} has no trusted keys nor certificate authorities (spec.trust.keys, "
            "spec.trust.certificateAuthorities): nothing could verify it"
        )
    return volumes


# The S3 credentials a ModelVersion names (spec.artifact.credentialsSecretRef): only these keys of the Secret
# reach the loader, as the standard AWS variables (never envFrom: a tenant's Secret must not set PYTHONPATH).
CREDENTIAL_KEYS = (
    ("AWS_ACCESS_KEY_ID", False),
    ("AWS_SECRET_ACCESS_KEY", False),
    ("AWS_SESSION_TOKEN", True),
    ("AWS_REGION", True),
    ("AWS_ENDPOINT_URL", True),
)


def is_oci(uri: str | None) -> bool:
    return isinstance(uri, str) and uri[:6].lower() == "oci://"


def loader_uri(version: dict[str, Any]) -> str:
    """The URI the loader pulls: ``status.resolvedUri`` (an oci:// tag pinned by digest) when set, else
    ``spec.artifact.uri``; an oci:// URI must be pinned by digest (WorkloadError until its tag is resolved)."""
    spec_uri = _required((_spec(version).get("artifact") or {}).get("uri"), "spec.artifact.uri")
    if not is_oci(spec_uri):
        return str(spec_uri)
    uri = (version.get("status") or {}).get("resolvedUri") or spec_uri
    if "@sha256:" not in str(uri):
        raise WorkloadError(
            f"spec.artifact.uri {spec_uri} names a tag that is not resolved to a digest yet (status.resolvedUri)"
        )
    return str(uri)


def registry_auth_volume(artifact: dict[str, Any]) -> dict[str, Any] | None:
    """For an oci:// artifact with ``spec.artifact.credentialsSecretRef``: the volume of that
    kubernetes.io/dockerconfigjson Secret, its ``.dockerconfigjson`` key as ``config.json`` (None otherwise)."""
    ref = artifact.get("credentialsSecretRef") or {}
    if not ref or not is_oci(artifact.get("uri")):
        return None
    name = _required(ref.get("name"), "spec.artifact.credentialsSecretRef.name")
    return {
        "name": VOLUME_REGISTRY,
        "secret": {"secretName": name, "items": [{"key": DOCKERCONFIGJSON_KEY, "path": "config.json"}]},
    }


def credentials_env(artifact: dict[str, Any]) -> list[dict[str, Any]]:
    """The loader's env entries for ``spec.artifact.credentialsSecretRef`` (none without one). For an oci://
    artifact: ``DOCKER_CONFIG`` pointing at the mounted Secret (:func:`registry_auth_volume`)."""
    ref = artifact.get("credentialsSecretRef") or {}
    if not ref:
        return []
    if is_oci(artifact.get("uri")):
        return [{"name": DOCKER_CONFIG_ENV, "value": REGISTRY_AUTH_DIR}]
    name = _required(ref.get("name"), "spec.artifact.credentialsSecretRef.name")
    out: list[dict[str, Any]] = []
    for key, optional in CREDENTIAL_KEYS:
        selector: dict[str, Any] = {"name": name, "key": key}
        if optional:
            selector["optional"] = True
        out.append({"name": key, "valueFrom": {"secretKeyRef": selector}})
    return out


def _loader(
    version: dict[str, Any], loader_image: str, limits: LoaderLimits, trust: list[dict[str, Any]] | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The loader init container and the volumes it needs besides ``model`` and the trust volumes (`trust`, as
    :func:`trust_volumes` gives them; default: ``keys`` only)."""
    artifact = _spec(version).get("artifact") or {}
    uri = loader_uri(version)
    digest = _required(artifact.get("digest"), "spec.artifact.digest")
    command = [
        "modelhub", "load",
        "--uri", uri,
        "--digest", digest,
        "--dest", MODELS_DIR,
    ]  # fmt: skip
    mounts: list[dict[str, Any]] = [{"name": VOLUME_MODEL, "mountPath": MODELS_DIR}]
    names = [v["name"] for v in trust] if trust is not None else [VOLUME_KEYS]
    for vol, flag, path in ((VOLUME_KEYS, "--keys-dir", KEYS_DIR), (VOLUME_CAS, "--cas-dir", CAS_DIR)):
        if vol in names:
            command += [flag, path]
            mounts.append({"name": vol, "mountPath": path, "readOnly": True})
    command += loader_args(limits)
    volumes: list[dict[str, Any]] = []
    claims = {_pvc_claim(uri)}

    signature = artifact.get("signature") or {}
    cm_ref = signature.get("configMapRef") or {}
    if cm_ref:
        cm_name = _required(cm_ref.get("name"), "spec.artifact.signature.configMapRef.name")
        cm_key = _required(cm_ref.get("key"), "spec.artifact.signature.configMapRef.key")
        command += ["--signature-file", f"{SIGNATURE_DIR}/{cm_key}"]
        volumes.append(
            {
                "name": VOLUME_SIGNATURE,
                "configMap": {"name": cm_name, "items": [{"key": cm_key, "path": cm_key}]},
            }
        )
        mounts.append({"name": VOLUME_SIGNATURE, "mountPath": SIGNATURE_DIR, "readOnly": True})
    elif signature.get("uri"):
        command += ["--signature-uri", signature["uri"]]
        claims.add(_pvc_claim(signature["uri"]))

    registry = registry_auth_volume(artifact)
    if registry is not None:
        volumes.append(registry)
        mounts.append({"name": VOLUME_REGISTRY, "mountPath": REGISTRY_AUTH_DIR, "readOnly": True})

    ca = store_ca_ref(artifact)
    if ca is not None:
        # The store's CA (spec.artifact.caConfigMapRef): the loader trusts it instead of the system roots. Not
        # optional: a missing ConfigMap or key keeps the pod from starting (fail closed, never the wrong roots).
        command += ["--store-ca-file", f"{STORE_CA_DIR}/{STORE_CA_FILE}"]
        volumes.append(
            {"name": VOLUME_STORE_CA, "configMap": {"name": ca.name, "items": [{"key": ca.key, "path": STORE_CA_FILE}]}}
        )
        mounts.append({"name": VOLUME_STORE_CA, "mountPath": STORE_CA_DIR, "readOnly": True})

    for i, claim in enumerate(sorted(c for c in claims if c)):
        vol = f"pvc-{i}"
        volumes.append({"name": vol, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}})
        mounts.append({"name": vol, "mountPath": f"{PVC_ROOT}/{claim}", "readOnly": True})

    container = {
        "name": LOADER_CONTAINER,
        "image": _required(loader_image, "the loader image"),
        "command": command,
        "volumeMounts": mounts,
        # The loader's one-line reason for refusing an artifact reaches the pod status (and from there the
        # ModelVersion's condition): what it writes to /dev/termination-log, else the end of its log on failure.
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    env = credentials_env(artifact)
    if env:
        container["env"] = env
    return container, volumes


def model_volume(limits: LoaderLimits, *, oci: bool = False) -> dict[str, Any]:
    """The ``model`` emptyDir, sized for what the loader may write (:func:`model_volume_size_limit`). An oci://
    loader holds an archive layer's blob and its unpacked files at once: twice the total."""
    if oci:
        limits = dataclasses.replace(limits, max_total_bytes=2 * limits.max_total_bytes)
    return {"name": VOLUME_MODEL, "emptyDir": {"sizeLimit": model_volume_size_limit(limits)}}


def _server(serving: dict[str, Any], placement: dict[str, Any]) -> dict[str, Any]:
    runtime = serving.get("runtime") or {}
    image = _required(runtime.get("image"), "serving.runtime.image (in the Model or the ModelVersion)")
    port = runtime.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise WorkloadError(f"serving.runtime.port must be a port number 1..65535, not {port!r}")

    env = [copy.deepcopy(e) for e in runtime.get("env") or ()]
    if not any(e.get("name") == "MODEL_DIR" for e in env):
        env.append({"name": "MODEL_DIR", "value": MODEL_DIR})

    resources = copy.deepcopy(runtime.get("resources") or {})
    gpu_limits = placement.get("limits") or {}
    if gpu_limits:
        resources["limits"] = {**(resources.get("limits") or {}), **gpu_limits}
        requests = resources.get("requests") or {}
        if GPU_RESOURCE in requests and GPU_RESOURCE in gpu_limits:
            # extended resources must request exactly their limit
            resources["requests"] = {**requests, GPU_RESOURCE: gpu_limits[GPU_RESOURCE]}
    resources = {k: v for k, v in resources.items() if v}

    container: dict[str, Any] = {"name": SERVER_CONTAINER, "image": image}
    if runtime.get("command"):
        container["command"] = list(runtime["command"])
    if runtime.get("args"):
        container["args"] = list(runtime["args"])
    container["env"] = env
    container["ports"] = [{"name": PORT_NAME, "containerPort": port}]
    if resources:
        container["resources"] = resources
    container["readinessProbe"] = {
        "tcpSocket": {"port": PORT_NAME},
        "initialDelaySeconds": 0,
        "periodSeconds": 5,
    }
    container["volumeMounts"] = [{"name": VOLUME_MODEL, "mountPath": MODELS_DIR, "readOnly": True}]
    return container


def build_deployment(
    model: dict[str, Any],
    version: dict[str, Any],
    *,
    replicas: int,
    role: str,
    loader_image: str,
    cpu_node_selector: dict[str, str] | None,
    loader_limits: LoaderLimits = LOADER_DEFAULTS,
    signed_total: int | None = None,
) -> dict[str, Any]:
    """The apps/v1 Deployment serving ``version`` of ``model``, named after the ModelVersion and owned by it.

    The pods run the ``loader`` init container (``modelhub load``: fetch the artifact, verify every file against
    the signed manifest with the Model's trusted keys mounted at /keys, write to /models; fail closed) and the
    ``server`` container (the effective runtime of Model defaults + version overrides, reading /models
    read-only). Placement (node selector, tolerations, affinity, GPU limits) comes from
    :func:`~modelhub.domain.placement.pod_placement`. The role label is on the Deployment only, never on the pod
    template. Without a signature location in the version, the loader is given none and applies its own
    default. Raises :class:`WorkloadError` or :class:`~modelhub.domain.placement.PlacementError` (both
    ValueError) when no valid Deployment can be built.

    The loader's bounds are ``loader_limits`` (the operator-wide settings) tightened by the version's
    ``spec.artifact.size`` or, better, `signed_total` (the total the verified manifest states, when it states
    sizes); they go to the loader as flags, and the model emptyDir's ``sizeLimit`` is derived from them.
    """
    if role not in ROLES:
        raise WorkloadError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise WorkloadError(f"replicas must be a whole number >= 0, not {replicas!r}")
    model_name = _required(_meta(model).get("name"), "Model metadata.name")
    version_name = _required(_meta(version).get("name"), "ModelVersion metadata.name")
    vspec = _spec(version)
    semver_text = _required(vspec.get("version"), "ModelVersion spec.version")
    if vspec.get("model") not in (None, model_name):
        raise WorkloadError(
            f"ModelVersion {version_name} belongs to model {vspec.get('model')}, not {model_name}"
        )
    namespace = _meta(version).get("namespace") or _meta(model).get("namespace")
    digest = (vspec.get("artifact") or {}).get("digest")

    serving = effective_serving(_spec(model).get("serving"), vspec.get("serving"))
    placement = pod_placement(serving, cpu_node_selector=cpu_node_selector)
    try:
        limits = effective_limits(vspec.get("artifact") or {}, loader_limits, signed_total=signed_total)
    except ValueError as exc:
        raise WorkloadError(str(exc)) from None
    trust = trust_volumes(model)
    loader, extra_volumes = _loader(version, loader_image, limits, trust)
    server = _server(serving, placement)
    artifact_uri = (_spec(version).get("artifact") or {}).get("uri")
    volumes = [model_volume(limits, oci=is_oci(artifact_uri)), *trust, *extra_volumes]

    pod_spec: dict[str, Any] = {
        "initContainers": [loader],
        "containers": [server],
        "volumes": volumes,
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
    }
    if placement["nodeSelector"]:
        pod_spec["nodeSelector"] = placement["nodeSelector"]
    if placement["tolerations"]:
        pod_spec["tolerations"] = placement["tolerations"]
    if placement["affinity"]:
        pod_spec["affinity"] = placement["affinity"]

    metadata: dict[str, Any] = {
        "name": version_name,
        "namespace": namespace,
        "labels": deployment_labels(model_name, version_name, semver_text, role),
        "annotations": {ANN_DIGEST: digest, ANN_VERSION_NAME: version_name},
        "ownerReferences": [owner_reference(version, "ModelVersion")],
    }
    if namespace is None:
        del metadata["namespace"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_labels(model_name, version_name)},
            "template": {
                "metadata": {
                    "labels": pod_labels(model_name, version_name, semver_text),
                    "annotations": {ANN_DIGEST: digest},
                },
                "spec": pod_spec,
            },
        },
    }


def build_service(model: dict[str, Any], *, port: int = SERVICE_PORT) -> dict[str, Any]:
    """The v1 Service of ``model``, named after it and owned by it, selecting every serving pod of the model
    (stable and canary alike, so the canary's share of traffic is its share of replicas). ``port`` is the
    Service's port (80 by convention); it targets the pods' named port ``http``, so versions may listen on
    different container ports. Raises :class:`WorkloadError` when the Model's name is not a valid Service name
    (a DNS-1035 label)."""
    meta = _meta(model)
    name = _required(meta.get("name"), "Model metadata.name")
    if len(name) > 63 or not _DNS1035_LABEL_RE.match(name):
        raise WorkloadError(
            f"Model name {name!r} cannot name its Service: it must be a DNS-1035 label (at most 63 lowercase "
            "letters, digits and '-', starting with a letter)"
        )
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise WorkloadError(f"Service port must be a port number 1..65535, not {port!r}")
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": meta.get("namespace"),
        "labels": {
            LABEL_NAME: sanitize_label_value(name),
            LABEL_MANAGED: MANAGED_BY,
            LABEL_MODEL: sanitize_label_value(name),
        },
        "ownerReferences": [owner_reference(model, "Model")],
    }
    if metadata["namespace"] is None:
        del metadata["namespace"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "type": "ClusterIP",
            "selector": service_selector(name),
            "ports": [{"name": PORT_NAME, "port": port, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def split_replicas(total: int, weight: int) -> tuple[int, int]:
    """Split ``total`` replicas into ``(stable, canary)`` for a canary ``weight`` in percent (0..100).

    - ``weight == 0`` or ``total == 0`` → ``(total, 0)``; ``weight == 100`` → ``(0, total)``.
    - otherwise canary = round-half-up(total * weight / 100), then clamped so that *both* sides keep at least
      one pod: a canary that was asked for always runs, and a partial canary never takes the stable's last
      pod. For ``total >= 2`` this means ``1 <= canary <= total - 1`` and stable + canary == total.
    - the one exception: ``total == 1`` with ``0 < weight < 100`` gives ``(1, 1)`` — one pod more than asked,
      rather than starving the canary or dropping the stable.

    Examples: (5, 20) → (4, 1); (10, 25) → (7, 3); (10, 5) → (9, 1); (5, 99) → (1, 4); (1, 50) → (1, 1).
    Raises ValueError for a negative total or a weight outside 0..100.
    """
    for name, value in (("total", total), ("weight", weight)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an int, not {value!r}")
    if total < 0:
        raise ValueError(f"total must be >= 0, not {total}")
    if not 0 <= weight <= 100:
        raise ValueError(f"weight must be within 0..100, not {weight}")
    if total == 0 or weight == 0:
        return total, 0
    if weight == 100:
        return 0, total
    if total == 1:
        return 1, 1
    canary = (total * weight * 2 + 100) // 200  # round half up, in integers
    canary = min(max(canary, 1), total - 1)
    return total - canary, canary

#: At most this much of a loader's termination message is kept (the kubelet caps it at 4 KiB anyway).
LOADER_REASON_MAX = 1024


def loader_failure(pods: list[dict[str, Any]]) -> str | None:
    """The loader's one-line reason for refusing its artifact, from the pods of a workload; None if none failed.

    Reads the ``loader`` init container's termination (current state, else the last one: in a crash loop the
    current state is ``waiting``) with a non-zero exit code, and returns the last non-empty line of its message
    (the loader's own line when it writes /dev/termination-log; with ``FallbackToLogsOnError`` the end of its log,
    whose last line is the error), bounded to :data:`LOADER_REASON_MAX` characters. Without a message: the exit
    code and the runtime's reason. Pods are read in name order, so the answer does not depend on list order.
    """
    for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name") or "")):
        statuses = (pod.get("status") or {}).get("initContainerStatuses") or []
        for st in statuses:
            if not isinstance(st, dict) or st.get("name") != LOADER_CONTAINER:
                continue
            for where in ("state", "lastState"):
                term = (st.get(where) or {}).get("terminated") or {}
                code = term.get("exitCode")
                if not isinstance(code, int) or code == 0:
                    continue
                lines = [ln.strip() for ln in str(term.get("message") or "").splitlines() if ln.strip()]
                if lines:
                    reason = lines[-1]
                else:
                    reason = f"the loader exited with code {code}" + (f" ({term['reason']})" if term.get("reason") else "")
                return reason if len(reason) <= LOADER_REASON_MAX else reason[: LOADER_REASON_MAX - 3] + "..."
    return None

def unschedulable_reason(pods: list[dict[str, Any]]) -> str | None:
    """The scheduler's message for the first pod (by name) it could not place, if any."""
    for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name") or "")):
        for c in (pod.get("status") or {}).get("conditions") or []:
            if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable":
                return str(c.get("message") or "0 nodes are available")[:LOADER_REASON_MAX]
    return None


__all__ = [
    "unschedulable_reason",
    "ANN_DIGEST",
    "ANN_VERSION_NAME",
    "API_VERSION",
    "LABEL_APP_VERSION",
    "LABEL_INSTANCE",
    "LABEL_MANAGED",
    "LABEL_MODEL",
    "LABEL_NAME",
    "LABEL_ROLE",
    "LABEL_SERVES",
    "LABEL_VERSION",
    "LOADER_CONTAINER",
    "LOADER_REASON_MAX",
    "MANAGED_BY",
    "ROLES",
    "ROLE_CANARY",
    "ROLE_STABLE",
    "WorkloadError",
    "build_deployment",
    "build_service",
    "credentials_env",
    "loader_uri",
    "registry_auth_volume",
    "model_volume",
    "deployment_labels",
    "cas_volume",
    "keys_volume",
    "trust_volumes",
    "loader_failure",
    "owner_reference",
    "pod_labels",
    "sanitize_label_value",
    "selector_labels",
    "service_selector",
    "split_replicas",
]
