"""The shipped manifests install on a real API server. The Argo CD health checks: `kubectl patch configmap
argocd-cm --type merge --patch-file deploy/argocd/argocd-cm-patch.yaml` adds the three
`resource.customizations.health.modelhub.dev_<Kind>` keys, with the .lua files' text, beside Argo CD's own keys; the
Grafana dashboard ConfigMap applies."""

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


def test_dashboard_configmap_applies(cluster: str, namespace: str) -> None:
    path = ROOT / "deploy" / "grafana" / "modelhub-dashboard-configmap.yaml"
    kubectl("apply", "--server-side", "-n", namespace, "-f", str(path))
    cm = json.loads(kubectl("get", "configmap", "modelhub-dashboard", "-n", namespace, "-o", "json").stdout)
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["modelhub-dashboard.json"])["uid"] == "modelhub-operator"
