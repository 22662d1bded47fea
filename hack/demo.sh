#!/usr/bin/env bash
# `make demo`: the main job the way users run it, narrated. The local control plane with the real node `real-0`
# (real containers) beside the kwok-simulated GPU/CPU nodes; the chart installed with the image `make image` built;
# then sign -> verify -> approve -> roll out on real-0 (the loader verifies every file in a real pod, fetching
# from an https store with the namespace's own CA; a served file is read through the pod) -> tamper -> refused
# (ArtifactRejected) -> revoke -> teardown -> fallback.
#   MODELHUB_DEMO_MODE=process   the operator as a process beside the cluster, kwok pods only (no real node needed)
#   MODELHUB_CLUSTER_NAME        which local control plane (default modelhub)
#   MODELHUB_IMAGE_TAG           tag of the images make image built (default dev)
# Leaves the cluster and the chart running (make cluster-down stops them); the https store stops with the script.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ "${MODELHUB_DEMO_MODE:-chart}" = process ]; then exec hack/demo-process.sh; fi
[ "${MODELHUB_DEMO_MODE:-chart}" = chart ] || { echo "MODELHUB_DEMO_MODE is chart (default) or process" >&2; exit 2; }
. hack/versions.env
cache=${MODELHUB_CACHE:-$HOME/.cache/modelhub}
t0=$(date +%s)
ns=demo
tag=${MODELHUB_IMAGE_TAG:-dev}
export MODELHUB_IMAGE=localhost/modelhub:$tag MODELHUB_IMAGE_TAG=$tag
opns=modelhub-system
work=$(mktemp -d)
step() { printf '\n\033[1m== [%3ss] %s\033[0m\n' "$(( $(date +%s) - t0 ))" "$*"; }
say() { printf '   %s\n' "$*"; }
waitfor() { kubectl wait --timeout=180s "$@"; }
cond() { # kind/name condition -> "status reason: message"
  kubectl -n $ns get "$1" -o jsonpath="{.status.conditions[?(@.type==\"$2\")].status} {.status.conditions[?(@.type==\"$2\")].reason}: {.status.conditions[?(@.type==\"$2\")].message}"
}
pod_of() { kubectl -n $ns get pods -l "app.kubernetes.io/instance=$1" --field-selector=status.phase=Running \
  -o jsonpath='{.items[0].metadata.name} {.items[0].status.podIP} {.items[0].spec.nodeName}' 2>/dev/null; }
store=
cleanup() { [ -z "$store" ] || { kill "$store" 2>/dev/null || true; wait "$store" 2>/dev/null || true; }; }
trap cleanup EXIT

step "Local control plane: kwok-simulated GPU/CPU nodes, and the real node real-0 (kubelet + containerd)"
MODELHUB_REAL_NODE=1 hack/cluster.sh up >"$work/cluster.log" 2>&1 || { tail -20 "$work/cluster.log"; echo \
  "The real node did not start (see hack/README-real-node.md). Without it: MODELHUB_DEMO_MODE=process make demo"; exit 1; }
eval "$(hack/cluster.sh env | grep -E '^export (KUBECONFIG|PATH|MODELHUB_WEBHOOK_CLIENT_CA)=')"  # the webhook serves only the API server
export PATH="$root/.venv/bin:$PATH"
eval "$(hack/real-node.sh env)"
kubectl get nodes -L modelhub.dev/node-class,nvidia.com/gpu.product
say "The GPU nodes (gpu-l4-0, gpu-h100-0) are simulated by kwok: pods there are scheduled but run nothing."
say "real-0 runs real containers: the operator, and the loader and server of the demo's Model."

step "Images in real-0's containerd (make image builds them with buildah, no registry)"
present=$(ctr --address "$REAL_NODE_CONTAINERD" -n k8s.io images ls -q)
for image in "$MODELHUB_IMAGE" "localhost/modelhub-model-server:$tag"; do
  if ! grep -qx "$image" <<<"$present"; then
    hack/image.sh load 2>&1 | sed 's/^/   /'   # hack/demo.sh run by hand, without make image
    break
  fi
done
ctr --address "$REAL_NODE_CONTAINERD" -n k8s.io images ls | awk -v tag="$tag" 'NR == 1 || $1 ~ "^localhost/modelhub(-model-server)?:" tag "$" {print "   " $1, $4, $5}'

step "helm install the chart (CRDs, RBAC, operator pinned to real-0, webhooks through its Service)"
# A leftover of an earlier run: its namespace and Revocation go first (ModelVersions are immutable).
if kubectl get crd revocations.modelhub.dev >/dev/null 2>&1; then
  kubectl delete revocation demo-poisoned-1-1-0 --ignore-not-found >/dev/null
fi
if kubectl get namespace $ns >/dev/null 2>&1; then
  kubectl delete namespace $ns --wait=false >/dev/null
  # Its model servers (python as PID 1) ignore SIGTERM: do not sit out their grace period.
  kubectl -n $ns delete pods --all --grace-period=0 --force >/dev/null 2>&1 || true
  kubectl wait --for=delete namespace/$ns --timeout=120s >/dev/null 2>&1 || true
fi
MODELHUB_NAMESPACE=$opns hack/install.sh >"$work/helm.log" 2>&1 || { cat "$work/helm.log"; exit 1; }
kubectl -n $opns rollout status deployment/modelhub --timeout=180s >/dev/null
kubectl -n $opns get pods -o wide -l app.kubernetes.io/component=operator

step "Sign two versions of a model with a fresh P-256 key"
modelhub keygen --out "$work/release.key" >/dev/null
for v in 1.0.0 1.1.0; do
  mkdir -p "$work/store/sentiment/$v"
  printf 'weights of %s\n' "$v" >"$work/store/sentiment/$v/weights.bin"
  printf '{"architecture": "demo", "version": "%s"}\n' "$v" >"$work/store/sentiment/$v/config.json"
  modelhub digest "$work/store/sentiment/$v" >"$work/digest-$v"
  modelhub sign "$work/store/sentiment/$v" --private-key "$work/release.key" --signature "$work/sig-$v" >/dev/null
  say "$v: pin $(cat "$work/digest-$v")"
done

step "An https store on this host ($REAL_NODE_GATEWAY, real-0's bridge), certificate from a private CA"
PYTHONPATH="$root" .venv/bin/python -m tests.support.https_store --dir "$work/store" --host "$REAL_NODE_GATEWAY" \
  --ca-out "$work/store-ca.crt" --url-out "$work/store-url" &
store=$!
for _ in $(seq 100); do [ -s "$work/store-url" ] && break; sleep 0.1; done
url=$(cat "$work/store-url")
say "$url/sentiment/<version>/  (the namespace trusts its CA through the ConfigMap store-ca)"

step "The tenant's namespace: keyring, store CA, bundles (ConfigMaps), a Model on real-0 requiring approval"
kubectl create namespace $ns >/dev/null
kubectl -n $ns create configmap release-keys --from-file=release.pub="$work/release.key.pub"
kubectl -n $ns create configmap store-ca --from-file=ca.crt="$work/store-ca.crt"
for v in 1.0.0 1.1.0; do kubectl -n $ns create configmap "sentiment-${v//./-}-sig" --from-file=model.sig="$work/sig-$v"; done
cat <<YAML | kubectl -n $ns apply -f -
apiVersion: modelhub.dev/v1alpha1
kind: Model
metadata: {name: sentiment}
spec:
  card: {description: "Sentiment classifier", owner: ml-platform, task: text-classification, license: apache-2.0}
  trust: {keys: [{name: release-keys}], requireApproval: true}
  serving:
    runtime: {image: "localhost/modelhub-model-server:$tag", port: 8080}
    nodeSelector: {modelhub.dev/node-class: real}
    replicas: 1
  promotion: {stable: "1.1.0", onRevocation: rollback}
YAML
for v in 1.0.0 1.1.0; do
cat <<YAML | kubectl -n $ns apply -f -
apiVersion: modelhub.dev/v1alpha1
kind: ModelVersion
metadata: {name: sentiment-${v//./-}}
spec:
  model: sentiment
  version: "$v"
  artifact:
    uri: "$url/sentiment/$v/"
    digest: "$(cat "$work/digest-$v")"
    signature: {configMapRef: {name: sentiment-${v//./-}-sig, key: model.sig}}
    caConfigMapRef: {name: store-ca}
YAML
done

step "The operator (in its pod) verified both signatures against the keyring"
waitfor --for=condition=SignatureVerified modelversion --all -n $ns >/dev/null
kubectl -n $ns get modelversions
say "Not approved yet, so nothing runs: $(cond modelversion/sentiment-1-1-0 Available)"

step "Approve both as a release manager: the author cannot (Warning), RBAC verb approve decides, the webhook seals who"
kubectl -n $ns annotate modelversion sentiment-1-0-0 modelhub.dev/approve=true --overwrite 2>&1 | sed 's/^/   /'  # we created it
kubectl -n $ns create rolebinding release-manager --clusterrole=modelhub-approver --user=alice@example.com >/dev/null
say "alice@example.com is bound to the chart's ClusterRole modelhub-approver in $ns:"
kubectl -n $ns annotate modelversion sentiment-1-0-0 sentiment-1-1-0 modelhub.dev/approve=true --overwrite \
  --as=alice@example.com | sed 's/^/   /'
waitfor --for=condition=Approved modelversion --all -n $ns >/dev/null
say "approval: $(kubectl -n $ns get modelversion sentiment-1-1-0 -o jsonpath='{.status.approval}')"

step "1.1.0 rolls out on real-0: the loader fetches over https and checks every file, then the server starts"
waitfor --for=condition=Ready modelversion/sentiment-1-1-0 -n $ns >/dev/null
read -r pod ip node <<<"$(pod_of sentiment-1-1-0)"
kubectl -n $ns get pods -o wide
say "loader (init container) in $pod on $node:"
kubectl -n $ns logs "$pod" -c loader | tail -1 | sed 's/^/     /'
say "served through the pod: curl http://$ip:8080/model/config.json"
curl -fsS --max-time 5 "http://$ip:8080/model/config.json" | sed 's/^/     /'

step "Tamper: one file of 1.1.0 changes on the store; the next pod's loader refuses it"
printf 'weights of 1.1.0, poisoned\n' >"$work/store/sentiment/1.1.0/weights.bin"
kubectl -n $ns delete pod "$pod" --wait=false >/dev/null
waitfor --for=jsonpath='{.status.conditions[?(@.type=="Available")].reason}'=ArtifactRejected \
  modelversion/sentiment-1-1-0 -n $ns >/dev/null
say "ModelVersion sentiment-1-1-0 Available = $(cond modelversion/sentiment-1-1-0 Available)"
say "no server started (the old pod is going; the new one stops at its init container):"
kubectl -n $ns get pods -l app.kubernetes.io/instance=sentiment-1-1-0 | sed 's/^/     /'

step "Security revokes 1.1.0's artifact: teardown in every namespace, fallback to 1.0.0 (loaded on real-0)"
cat <<YAML | kubectl apply -f -
apiVersion: modelhub.dev/v1alpha1
kind: Revocation
metadata: {name: demo-poisoned-1-1-0}
spec:
  reason: "artifact tampered on the store (demo)"
  match: {digests: ["$(cat "$work/digest-1.1.0")"]}
YAML
waitfor --for=condition=Enforced revocation/demo-poisoned-1-1-0 >/dev/null
waitfor --for=condition=Ready modelversion/sentiment-1-0-0 -n $ns >/dev/null
kubectl get revocation demo-poisoned-1-1-0
kubectl -n $ns get modelversions
read -r pod ip node <<<"$(pod_of sentiment-1-0-0)"
say "1.0.0 serves from $pod on $node: $(curl -fsS --max-time 5 "http://$ip:8080/model/config.json")"
kubectl -n $ns get model sentiment -o jsonpath='{range .status.history[*]}   {.at}  {.reason}  stable={.stable}{"\n"}{end}'

step "Re-applying the revoked version is refused (admission webhook, served by the operator's pod)"
kubectl -n $ns delete modelversion sentiment-1-1-0 --wait=true >/dev/null
kubectl -n $ns apply -f - <<YAML 2>&1 | tail -1 | sed 's/^/   /' || true
apiVersion: modelhub.dev/v1alpha1
kind: ModelVersion
metadata: {name: sentiment-1-1-0}
spec: {model: sentiment, version: "1.1.0", artifact: {uri: "$url/sentiment/1.1.0/", digest: "$(cat "$work/digest-1.1.0")"}}
YAML

step "Git catches up: stable pinned to 1.0.0 in the Model, which is Ready again"
kubectl -n $ns patch model sentiment --type merge -p '{"spec": {"promotion": {"stable": "1.0.0"}}}' >/dev/null
waitfor --for=condition=Ready model/sentiment -n $ns >/dev/null
say "Model sentiment Ready = $(cond model/sentiment Ready)"

step "Everything modelhub knows"
kubectl get modelhub -A
kubectl delete revocation demo-poisoned-1-1-0 >/dev/null
echo
echo "Done in $(( $(date +%s) - t0 )) s. The cluster and the chart keep running (the https store stopped with the demo):"
echo "  export KUBECONFIG=$KUBECONFIG; 'make cluster-down' stops everything."
