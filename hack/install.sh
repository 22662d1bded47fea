#!/usr/bin/env bash
# `make install`: helm install (or upgrade) the chart with the locally built image into the cluster of KUBECONFIG,
# by default the local control plane. There the operator is pinned to the real node (the others are simulated).
#   MODELHUB_NAMESPACE (default modelhub-system), MODELHUB_IMAGE (default localhost/modelhub:dev),
#   MODELHUB_WEBHOOK_CLIENT_CA (the API server's webhook client CA: webhook.clientCA)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.env"
cache=${MODELHUB_CACHE:-$HOME/.cache/modelhub}
if [ -z "${KUBECONFIG:-}" ]; then eval "$("$here/cluster.sh" env)"; fi
kubectl=${KUBECTL:-$cache/bin/kubectl-$KUBERNETES_VERSION}
helm=$cache/bin/helm-$HELM_VERSION
[ -x "$helm" ] || "$here/build-tools.sh" helm >&2
image=${MODELHUB_IMAGE:-localhost/modelhub:dev}
ns=${MODELHUB_NAMESPACE:-modelhub-system}
args=(--set "image.repository=${image%:*}" --set "image.tag=${image##*:}")
case "$image" in localhost/*) args+=(--set image.pullPolicy=Never) ;; esac
# The local control plane's API server presents a client certificate to webhooks (hack/cluster.sh env): with its CA
# the operator's webhook serves only the API server.
if [ -n "${MODELHUB_WEBHOOK_CLIENT_CA:-}" ] && [ -f "$MODELHUB_WEBHOOK_CLIENT_CA" ]; then
  args+=(--set-file "webhook.clientCA=$MODELHUB_WEBHOOK_CLIENT_CA")
fi
if [ -n "$("$kubectl" get nodes -l modelhub.dev/node-class=real -o name 2>/dev/null)" ]; then
  args+=(--set "nodeSelector.modelhub\.dev/node-class=real")
fi
exec "$helm" upgrade --install modelhub "$here/../charts/modelhub" -n "$ns" --create-namespace "${args[@]}" \
  --wait --timeout 180s "$@"
