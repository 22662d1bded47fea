#!/usr/bin/env bash
# `MODELHUB_DEMO_MODE=process make demo`: the fallback when the real node cannot run here. The operator runs as a
# process beside the embedded local control plane, every pod is simulated by kwok, and the loader is shown as a
# command on this host:
#   cluster up -> CRDs -> operator -> sign a model -> the operator verifies it -> approve -> rolled out on GPU
#   nodes -> the loader verifies every file -> a Revocation tears it down and the Model falls back.
# Leaves the cluster running (make cluster-down stops it); the operator stops with the script.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. hack/versions.env
cache=${MODELHUB_CACHE:-$HOME/.cache/modelhub}
MODELHUB_REAL_NODE=${MODELHUB_REAL_NODE:-0} hack/cluster.sh up   # no real node needed here
eval "$(hack/cluster.sh env | grep -E 'KUBECONFIG|WEBHOOK_CLIENT_CA')"   # the webhook serves only the API server
export PATH="$cache/bin/links:$root/.venv/bin:$PATH"
ns=demo
work=$(mktemp -d)
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
waitfor() { kubectl wait --timeout=60s "$@"; }

step "Install the CRDs"
kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null
kubectl get crds -l '!x' -o name | grep modelhub

step "Start the operator (logs: $work/operator.log)"
health_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
MODELHUB_BUNDLE_FILE_ROOTS="$work" modelhub run --liveness "http://127.0.0.1:$health_port/healthz" >"$work/operator.log" 2>&1 &
op=$!
trap 'kill $op 2>/dev/null || true; wait $op 2>/dev/null || true' EXIT
PYTHONPATH="$root" .venv/bin/python -m tests.support.operator wait "http://127.0.0.1:$health_port/healthz" --timeout 60

step "Sign two versions of a model with a fresh P-256 key"
modelhub keygen --out "$work/release.key"
for v in 1.0.0 1.1.0; do
  mkdir -p "$work/models/$v"
  printf 'weights of %s\n' "$v" >"$work/models/$v/weights.bin"
  printf '{"architecture": "demo", "version": "%s"}\n' "$v" >"$work/models/$v/config.json"
  modelhub digest "$work/models/$v" >"$work/digest-$v"
  modelhub sign "$work/models/$v" --private-key "$work/release.key" --signature "$work/models/$v/model.sig"
  echo "  $v: pin $(cat "$work/digest-$v")"
done
modelhub verify "$work/models/1.1.0" --signature "$work/models/1.1.0/model.sig" --public-key "$work/release.key.pub"

step "Apply the keyring, a GPU Model that requires approval, and both ModelVersions"
kubectl create namespace $ns --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n $ns create configmap release-keys --from-file=release.pub="$work/release.key.pub" \
  --dry-run=client -o yaml | kubectl apply -f -
cat <<YAML | kubectl -n $ns apply -f -
apiVersion: modelhub.dev/v1alpha1
kind: Model
metadata: {name: sentiment}
spec:
  card: {description: "Sentiment classifier", owner: ml-platform, task: text-classification, license: apache-2.0}
  trust: {keys: [{name: release-keys}], requireApproval: true}
  serving:
    runtime: {image: "ghcr.io/example/triton:24.01", port: 8000}
    accelerator: {kind: gpu, count: 1, product: NVIDIA-L4}
    replicas: 2
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
    uri: "file://$work/models/$v"
    digest: "$(cat "$work/digest-$v")"
YAML
done

step "The operator verified both signatures against the keyring"
waitfor --for=condition=SignatureVerified modelversion --all -n $ns
kubectl -n $ns get modelversions

step "Approve both as a release manager: the author cannot (Warning), RBAC verb approve decides, the webhook seals who"
kubectl -n $ns annotate modelversion sentiment-1-0-0 modelhub.dev/approve=true --overwrite   # we created it: refused
kubectl -n $ns create role release-manager --verb=get,patch,approve --resource=modelversions.modelhub.dev \
  --dry-run=client -o yaml 2>/dev/null | kubectl apply -f - >/dev/null   # in a real cluster: the chart's modelhub-approver
kubectl -n $ns create rolebinding release-manager --role=release-manager --user=alice@example.com \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n $ns annotate modelversion sentiment-1-0-0 sentiment-1-1-0 modelhub.dev/approve=true --overwrite \
  --as=alice@example.com
waitfor --for=condition=Approved modelversion --all -n $ns
kubectl -n $ns get modelversion sentiment-1-1-0 -o jsonpath='{.status.approval}{"\n"}'

step "1.1.0 rolls out on the L4 GPU node"
waitfor --for=condition=Ready modelversion/sentiment-1-1-0 -n $ns
echo "  (kwok simulates every node here: the pods are scheduled and marked Running, no container runs)"
kubectl -n $ns get deploy,svc,pods -o wide
kubectl get modelhub -n $ns

step "The loader (init container) fetches the artifact and checks every file against the signed manifest"
pinned=$(kubectl -n $ns get modelversion sentiment-1-1-0 -o jsonpath='{.spec.artifact.digest}')
modelhub load --uri "file://$work/models/1.1.0" --digest "$pinned" --dest "$work/pod" --public-key "$work/release.key.pub"
echo "  now one byte of the artifact changes on the store:"
echo "tampered" >>"$work/models/1.1.0/weights.bin"
modelhub load --uri "file://$work/models/1.1.0" --digest "$pinned" --dest "$work/pod2" \
  --public-key "$work/release.key.pub" || echo "  -> refused, nothing served"

step "Security revokes 1.1.0's artifact: teardown in every namespace, fallback to 1.0.0"
digest=$(kubectl -n $ns get modelversion sentiment-1-1-0 -o jsonpath='{.spec.artifact.digest}')
cat <<YAML | kubectl apply -f -
apiVersion: modelhub.dev/v1alpha1
kind: Revocation
metadata: {name: demo-poisoned-1-1-0}
spec:
  reason: "training data poisoned (demo)"
  match: {digests: ["$digest"]}
YAML
waitfor --for=condition=Enforced revocation/demo-poisoned-1-1-0
waitfor --for=condition=Ready modelversion/sentiment-1-0-0 -n $ns
kubectl get revocation demo-poisoned-1-1-0
kubectl -n $ns get modelversions
kubectl -n $ns get model sentiment -o jsonpath='{range .status.history[*]}{.at}  {.reason}  stable={.stable}{"\n"}{end}'

step "Re-applying the revoked version is refused"
kubectl -n $ns delete modelversion sentiment-1-1-0 --wait=false >/dev/null
kubectl -n $ns apply -f - <<YAML 2>&1 | tail -1 || true
apiVersion: modelhub.dev/v1alpha1
kind: ModelVersion
metadata: {name: sentiment-1-1-0}
spec: {model: sentiment, version: "1.1.0", artifact: {uri: "file://$work/models/1.1.0", digest: "$digest"}}
YAML

step "Everything modelhub knows"
kubectl get modelhub -A
kubectl delete revocation demo-poisoned-1-1-0 >/dev/null
echo
echo "Done. The cluster keeps running: export KUBECONFIG=$KUBECONFIG; 'make cluster-down' stops it."
