"""Writes the Argo CD health-check test objects (resource_customizations/modelhub.dev/<Kind>/testdata/*.yaml)
with the status the operator's own domain functions compute for each situation, so the Lua checks are tested
against exactly what the operator writes (conditions, reasons, messages), not a guess of it.

    python hack/argocd-health/testdata.py [--check]

--check writes nothing and exits 1 when a checked-in file differs (the unit tests run it).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import yaml

from modelhub.domain import revocation as rdomain
from modelhub.domain import versions as vdomain
from modelhub.domain.revocation import VersionFacts
from modelhub.domain.rollout import plan_rollout

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "resource_customizations" / "modelhub.dev"
T0 = "2026-03-02T10:00:00Z"
T1 = "2026-03-02T10:00:04Z"
DIGEST = "sha256:da984888f401d6f7320f99e3f235cd2548b6550a67cb6254e96e06968b7b0134"
FPR = "9b4f3c2a51d0e7f86a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071"


def _meta(name: str, generation: int, namespace: str | None = "ml-prod", uid: str = "0") -> dict[str, Any]:
    m: dict[str, Any] = {"name": name, "generation": generation, "creationTimestamp": T0,
                         "uid": f"6f1c2d3e-0000-4000-8000-00000000000{uid}"}
    if namespace:
        m["namespace"] = namespace
    return m


def modelversion(version: str = "1.4.2", generation: int = 1) -> dict[str, Any]:
    name = "sentiment-" + version.replace(".", "-")
    return {
        "apiVersion": "modelhub.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": _meta(name, generation, uid="1"),
        "spec": {
            "model": "sentiment",
            "version": version,
            "artifact": {"uri": f"pvc://model-store/sentiment/{version}", "digest": DIGEST},
        },
    }


def model(stable: str | None = "1.4.2", generation: int = 2, require_approval: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "card": {"owner": "nlp-team", "task": "text-classification", "license": "Apache-2.0"},
        "trust": {"keys": [{"configMapRef": {"name": "nlp-signing-keys"}}], "requireApproval": require_approval},
        "serving": {"replicas": 2},
        "promotion": {"onRevocation": "rollback"},
    }
    if stable:
        spec["promotion"]["stable"] = stable
    return {"apiVersion": "modelhub.dev/v1alpha1", "kind": "Model", "metadata": _meta("sentiment", generation, uid="2"),
            "spec": spec}


VERIFIED = vdomain.Verification(
    True, "Verified", f"signed by trusted key release-2026 (sha256 {FPR[:16]}…) over 12 files",
    digest=DIGEST, key_name="release-2026", key_fingerprint=FPR, files=12,
)
APPROVAL = {"approvedBy": "alice@example.com", "approvedAt": T0, "uid": "6f1c2d3e-0000-4000-8000-000000000001",
            "model": "sentiment", "version": "1.4.2", "digest": DIGEST}
REVOKED = vdomain.Revoked("cve-2026-0117", "training data leaked PII", T1, "digest")


def _mv_status(obj: dict[str, Any], **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "now": T1, "verification": VERIFIED, "require_approval": True, "approval": APPROVAL, "revoked": None,
        "workload": vdomain.WorkloadState(), "promoted": False,
    }
    args.update(kw)
    out = copy.deepcopy(obj)
    out["status"] = vdomain.version_status(obj, **args)
    return out


def _serving(ready: int, replicas: int = 2, **kw: Any) -> vdomain.WorkloadState:
    return vdomain.WorkloadState(deployment="sentiment-1-4-2", replicas=replicas, ready_replicas=ready,
                                 served_digest=DIGEST, **kw)


def modelversion_cases() -> dict[str, dict[str, Any]]:
    mv = modelversion()
    behind = _mv_status(mv, workload=_serving(2), promoted=True)
    behind["metadata"]["generation"] = 2  # spec edited (serving override), not yet seen
    return {
        "progressing_noStatus": mv,
        "progressing_observedGenerationBehind": behind,
        "progressing_bundleNotFound": _mv_status(mv, verification=vdomain.Verification(
            False, "BundleNotFound", "no signature bundle: pvc://model-store/sentiment/1.4.2/model.sig does not exist")),
        "degraded_badSignature": _mv_status(mv, verification=vdomain.Verification(
            False, "BadSignature", "the signature does not verify with trusted key release-2026 "
            f"(sha256 {FPR[:16]}…): the payload was altered or signed by another key")),
        "degraded_digestMismatch": _mv_status(mv, verification=vdomain.check_pinned_digest(
            "sha256:" + "0" * 64, DIGEST)),
        "progressing_awaitingApproval": _mv_status(mv, approval=None),
        "healthy_notPromoted": _mv_status(mv),
        "progressing_rollingOut": _mv_status(mv, workload=_serving(0), promoted=True),
        "degraded_unschedulable": _mv_status(mv, workload=_serving(
            0, unschedulable="0/6 nodes are available: 6 Insufficient nvidia.com/gpu"), promoted=True),
        "healthy_serving": _mv_status(mv, workload=_serving(2), promoted=True),
        "degraded_revoked": _mv_status(mv, revoked=REVOKED, promoted=True),
    }


def _versions_for(statuses: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for version, kw in statuses.items():
        mv = modelversion(version)
        out.append(_mv_status(mv, **kw))
    return out


def _model_status(m: dict[str, Any], versions: list[dict[str, Any]], previous: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    obj = copy.deepcopy(m)
    if previous:
        obj["status"] = previous
    plan = plan_rollout(obj, versions, T1)
    obj["status"] = {
        **(obj.get("status") or {}),
        "observedGeneration": obj["metadata"]["generation"],
        "conditions": plan.conditions,
        "stableVersion": plan.stable_version,
        "canaryVersion": plan.canary_version,
        "canaryWeight": plan.canary_weight,
        "history": plan.history,
    }
    obj["status"] = {k: v for k, v in obj["status"].items() if v is not None}
    return obj


def model_cases() -> dict[str, dict[str, Any]]:
    ok = {"workload": _serving(2), "promoted": True}
    serving = _model_status(model(), _versions_for({"1.4.2": ok}))
    behind = copy.deepcopy(serving)
    behind["metadata"]["generation"] = 3
    behind["spec"]["promotion"]["stable"] = "1.5.0"
    fell_back = _model_status(model("1.5.0"), _versions_for({"1.4.2": ok, "1.5.0": {"revoked": REVOKED}}),
                              previous={"stableVersion": "1.5.0", "history": [{"at": T0, "stable": "1.5.0",
                                                                              "canaryWeight": 0, "reason": "Promoted"}]})
    return {
        "progressing_noStatus": model(),
        "progressing_observedGenerationBehind": behind,
        "healthy_serving": serving,
        "healthy_noPromotion": _model_status(model(None), []),
        "progressing_notApproved": _model_status(model("1.4.2"), _versions_for({"1.4.2": {"approval": None}})),
        "progressing_notVerified": _model_status(model("1.4.2"), _versions_for({"1.4.2": {
            "verification": vdomain.Verification(False, "BundleNotFound", "no signature bundle")}})),
        "degraded_fellBack": fell_back,
        "degraded_noEligibleVersion": _model_status(model("1.5.0"), _versions_for({"1.5.0": {"revoked": REVOKED}})),
    }


def revocation(generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "modelhub.dev/v1alpha1",
        "kind": "Revocation",
        "metadata": _meta("cve-2026-0117", generation, namespace=None, uid="3"),
        "spec": {"reason": "training data leaked PII", "match": {"digests": [DIGEST]}},
    }


def revocation_cases() -> dict[str, dict[str, Any]]:
    now = dt.datetime(2026, 3, 2, 10, 0, 4, tzinfo=dt.UTC)
    facts = [VersionFacts(namespace=ns, name="sentiment-1-4-2", model="sentiment", version="1.4.2", digest=DIGEST)
             for ns in ("ml-prod", "ml-staging")]
    rev = revocation()
    tearing = copy.deepcopy(rev)
    tearing["status"] = rdomain.tearing_down_status({}, generation=1, targets=2, now=now)
    done = copy.deepcopy(rev)
    done["status"], _ = rdomain.enforcement_status(tearing["status"], generation=1, matched=facts, remaining=0,
                                                   created=T0, now=now)
    behind = copy.deepcopy(done)
    behind["metadata"]["generation"] = 2
    behind["spec"]["match"]["keyFingerprints"] = [FPR]
    return {
        "progressing_noStatus": rev,
        "progressing_tearingDown": tearing,
        "healthy_enforced": done,
        "progressing_observedGenerationBehind": behind,
    }


def render(obj: dict[str, Any]) -> str:
    return "# Generated by hack/argocd-health/testdata.py from the operator's domain functions; DO NOT EDIT.\n" + (
        yaml.safe_dump(obj, sort_keys=False, width=1000, allow_unicode=True))


def files() -> dict[Path, str]:
    out = {}
    for kind, cases in (("ModelVersion", modelversion_cases()), ("Model", model_cases()),
                        ("Revocation", revocation_cases())):
        for name, obj in cases.items():
            out[OUT / kind / "testdata" / f"{name}.yaml"] = render(obj)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    for path, text in files().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("out of date (run python hack/argocd-health/testdata.py):", *map(str, stale), sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
