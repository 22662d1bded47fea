"""The loader's bounds as the operator derives them: limits, flags, the model volume's sizeLimit, credentials."""

from __future__ import annotations

import pytest
from tests.unit.test_workloads import container, deploy, version_manifest, volume

from modelhub.domain import loadlimits
from modelhub.domain.loadlimits import LoaderLimits, effective_limits, model_volume_size_limit, parse_size
from modelhub.domain.workloads import WorkloadError

GiB = 1024**3
MiB = 1024**2


def test_parse_size() -> None:
    assert parse_size("1048576") == MiB
    assert parse_size("512Mi") == 512 * MiB
    assert parse_size("10G") == 10 * 1000**3
    assert parse_size(7) == 7
    for bad in ("", "1.5Gi", "-1", "12Q", "Mi"):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_limits_from_env() -> None:
    env = {"MODELHUB_LOADER_MAX_TOTAL_BYTES": "8Gi", "MODELHUB_LOADER_DEADLINE_SECONDS": "600",
           "MODELHUB_BUNDLE_MAX_BYTES": "1Mi", "MODELHUB_LOADER_MIN_RATE": "0"}
    limits = loadlimits.limits_from_env(env)
    assert (limits.max_total_bytes, limits.deadline_seconds, limits.max_bundle_bytes, limits.min_rate) == (
        8 * GiB, 600.0, MiB, 0.0)
    assert limits.max_file_bytes == 64 * GiB  # unset: the default
    with pytest.raises(ValueError, match="MODELHUB_LOADER_DEADLINE_SECONDS"):
        loadlimits.limits_from_env({"MODELHUB_LOADER_DEADLINE_SECONDS": "soon"})
    with pytest.raises(ValueError, match="deadline_seconds"):
        loadlimits.limits_from_env({"MODELHUB_LOADER_DEADLINE_SECONDS": "0"})


def test_effective_limits_prefer_the_signed_total_then_the_declared_size() -> None:
    ops = LoaderLimits(max_total_bytes=10 * GiB, max_file_bytes=4 * GiB)
    assert effective_limits({}, ops) == ops
    declared = effective_limits({"size": "1Gi"}, ops)
    assert (declared.max_total_bytes, declared.max_file_bytes) == (GiB, GiB)
    signed = effective_limits({"size": "1Gi"}, ops, signed_total=300)
    assert (signed.max_total_bytes, signed.max_file_bytes) == (300, 300)
    # the operator's ceiling wins over a tenant's declaration
    assert effective_limits({"size": "100Gi"}, ops).max_total_bytes == 10 * GiB
    assert effective_limits({"size": "100Gi"}, ops).max_file_bytes == 4 * GiB


def test_volume_size_limit_covers_the_total_and_headroom() -> None:
    assert model_volume_size_limit(LoaderLimits(max_total_bytes=GiB)) == "1088Mi"
    assert model_volume_size_limit(LoaderLimits(max_total_bytes=1)) == "65Mi"  # rounded up to whole MiB


def test_deployment_carries_the_limits_of_the_version() -> None:
    version = version_manifest()
    version["spec"]["artifact"]["size"] = "2Gi"
    pod = deploy(version=version, loader_limits=LoaderLimits(deadline_seconds=900, min_rate=1000))["spec"][
        "template"]["spec"]
    command = container(pod, "loader")["command"]
    flags = dict(zip(command[10:22:2], command[11:22:2], strict=True))
    assert flags == {
        "--max-total-bytes": str(2 * GiB), "--max-file-bytes": str(2 * GiB), "--deadline": "900",
        "--min-rate": "1000", "--rate-window": "30", "--max-bundle-bytes": str(4 * MiB),
    }
    assert volume(pod, "model")["emptyDir"] == {"sizeLimit": "2112Mi"}
    pod = deploy(version=version, signed_total=5 * MiB)["spec"]["template"]["spec"]
    assert volume(pod, "model")["emptyDir"] == {"sizeLimit": "69Mi"}


def test_bad_declared_size_is_a_workload_error() -> None:
    version = version_manifest()
    version["spec"]["artifact"]["size"] = "lots"
    with pytest.raises(WorkloadError, match="spec.artifact.size"):
        deploy(version=version)


def test_credentials_reach_the_loader_key_by_key() -> None:
    version = version_manifest(uri="s3://models/sentiment/1.0.0")
    version["spec"]["artifact"]["credentialsSecretRef"] = {"name": "s3-reader"}
    loader = container(deploy(version=version)["spec"]["template"]["spec"], "loader")
    assert "envFrom" not in loader
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in loader["env"]}
    assert env["AWS_ACCESS_KEY_ID"] == {"name": "s3-reader", "key": "AWS_ACCESS_KEY_ID"}
    assert env["AWS_SESSION_TOKEN"] == {"name": "s3-reader", "key": "AWS_SESSION_TOKEN", "optional": True}
    assert set(env) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                        "AWS_ENDPOINT_URL"}
    assert "env" not in container(deploy()["spec"]["template"]["spec"], "loader")


def _pod(state: dict, last: dict | None = None, name: str = "loader") -> dict:
    status = {"name": name, "state": state}
    if last is not None:
        status["lastState"] = last
    return {"metadata": {"name": "sentiment-1-0-0-abc"}, "status": {"initContainerStatuses": [status]}}


def test_loader_failure_from_the_termination_message() -> None:
    failed = loadlimits.loader_failure(_pod({"terminated": {
        "exitCode": 1, "reason": "Error",
        "message": "TooLarge: weights/a.bin: https://s/a.bin is more than the 1000 bytes allowed for this file"}}))
    assert failed == loadlimits.LoaderFailure(
        "TooLarge", "weights/a.bin: https://s/a.bin is more than the 1000 bytes allowed for this file",
        "sentiment-1-0-0-abc", 1)
    # restarted and waiting again: the last state tells
    waiting = loadlimits.loader_failure(_pod({"waiting": {"reason": "CrashLoopBackOff"}},
                                             {"terminated": {"exitCode": 1, "message": "TooSlow: x: 2 bytes/s"}}))
    assert waiting is not None and (waiting.reason, waiting.message) == ("TooSlow", "x: 2 bytes/s")


def test_loader_failure_without_our_message() -> None:
    oom = loadlimits.loader_failure(_pod({"terminated": {"exitCode": 137, "reason": "OOMKilled"}}))
    assert oom is not None and oom.reason == "OOMKilled" and "137" in oom.message
    junk = loadlimits.loader_failure(_pod({"terminated": {"exitCode": 2, "reason": "bad reason!",
                                                          "message": "Traceback (most recent call last):\n  "
                                                          "File x\nKeyError: " + "x" * 5000}}))
    assert junk is not None and junk.reason == "LoadFailed" and "\n" not in junk.message
    assert len(junk.message) <= loadlimits.MESSAGE_MAX
    tail = loadlimits.loader_failure(_pod({"terminated": {"exitCode": 1, "reason": "Error", "message":
                                                          "load: signature OK\nerror: Timeout: a.bin: deadline\n"}}))
    assert tail is not None and (tail.reason, tail.message) == ("Timeout", "a.bin: deadline")


def test_no_loader_failure() -> None:
    assert loadlimits.loader_failure({"status": {}}) is None
    assert loadlimits.loader_failure(_pod({"running": {}})) is None
    assert loadlimits.loader_failure(_pod({"terminated": {"exitCode": 0}})) is None
    assert loadlimits.loader_failure(_pod({"terminated": {"exitCode": 1}}, name="other")) is None
