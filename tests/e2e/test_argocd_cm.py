"""The documented install of the Argo CD health checks works on a real API server: `kubectl patch configmap
argocd-cm --type merge --patch-file deploy/argocd/argocd-cm-patch.yaml` adds the three
`resource.customizations.health.modelhub.dev_<Kind>` keys, with the .lua files' text, beside Argo CD's own keys."""

from __future__ import annotations

import json

from tests.e2e.kubehelp import ROOT, kubectl


def test_patching_argocd_cm(cluster: str, namespace: str) -> None:
    kubectl("create", "configmap", "argocd-cm", "-n", namespace, "--from-literal=url=https://argocd.example.com")
    kubectl("patch", "configmap", "argocd-cm", "-n", namespace, "--type", "merge", "--patch-file",
            str(ROOT / "deploy" / "argocd" / "argocd-cm-patch.yaml"))
    data = json.loads(kubectl("get", "configmap", "argocd-cm", "-n", namespace, "-o", "json").stdout)["data"]
    assert data["url"] == "https://argocd.example.com"
    for kind in ("Model", "ModelVersion", "Revocation"):
        lua = (ROOT / "resource_customizations" / "modelhub.dev" / kind / "health.lua").read_text()
        assert data[f"resource.customizations.health.modelhub.dev_{kind}"] == lua
