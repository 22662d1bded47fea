#!/usr/bin/env bash
# The local control plane: real etcd, kube-apiserver, kube-controller-manager and kube-scheduler run as local
# processes on 127.0.0.1 (kwokctl's binary runtime), and kwok simulates the GPU, CPU and edge nodes in kwok/nodes.yaml.
#   hack/cluster.sh up|down|status|env
# CLUSTER=kind uses a kind cluster instead (needs a Docker engine).
# A real node `real-0` (kubelet + containerd, hack/real-node.sh) joins beside the fake ones; MODELHUB_REAL_NODE=0 leaves
# it out. kwok manages only the nodes annotated kwok.x-k8s.io/node=fake, so it never touches the real one.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.env"
cache=${MODELHUB_CACHE:-$HOME/.cache/modelhub}
bin="$cache/bin"
name=${MODELHUB_CLUSTER_NAME:-modelhub}
# The default cluster keeps its kubeconfig at $cache/cluster/kubeconfig; others (MODELHUB_CLUSTER_NAME) beside it.
if [ "$name" = modelhub ]; then state="$cache/cluster"; else state="$cache/cluster-$name"; fi
kubeconfig="$state/kubeconfig"
backend=${CLUSTER:-kwok}
kubectl="$bin/kubectl-$KUBERNETES_VERSION"
real_node=${MODELHUB_REAL_NODE:-1}
[ "$backend" = kind ] && real_node=0
export KWOK_WORKDIR="$cache/kwok"
log() { printf '[cluster] %s\n' "$*" >&2; }

kwok_env() {
  export KWOK_KUBE_VERSION="v$KUBERNETES_VERSION"
  export KWOK_ETCD_BINARY="$bin/etcd-$ETCD_VERSION"
  export KWOK_KUBE_APISERVER_BINARY="$bin/kube-apiserver-$KUBERNETES_VERSION"
  export KWOK_KUBE_CONTROLLER_MANAGER_BINARY="$bin/kube-controller-manager-$KUBERNETES_VERSION"
  export KWOK_KUBE_SCHEDULER_BINARY="$bin/kube-scheduler-$KUBERNETES_VERSION"
  export KWOK_KUBECTL_BINARY="$kubectl"
  export KWOK_CONTROLLER_BINARY="$bin/kwok-$KWOK_VERSION"
}

running() { [ -f "$kubeconfig" ] && "$kubectl" --kubeconfig "$kubeconfig" --request-timeout=5s get --raw /readyz >/dev/null 2>&1; }

up() {
  if running; then log "already running"; print_usage; return 0; fi
  if [ "$backend" = kind ]; then up_kind; else up_kwok; fi
  "$kubectl" --kubeconfig "$kubeconfig" apply -f "$here/kwok/nodes.yaml" >/dev/null
  # Node status is a subresource: set allocatable/capacity/labels explicitly so the scheduler sees GPUs.
  if [ "$backend" != kind ]; then
    wait_nodes
  fi
  if [ "$real_node" = 1 ]; then "$here/real-node.sh" up; fi
  print_usage
}

up_kwok() {
  "$here/build-tools.sh" etcd kube kwok >&2
  kwok_env
  mkdir -p "$state"
  local extra=()
  if [ "$real_node" = 1 ]; then
    "$here/real-node.sh" deps
    "$here/real-node.sh" down 2>/dev/null || true   # what a dead session may have left
    # The pod bridge exists before the API server's certificate is made, so that the certificate names its IP
    # (kwokctl adds every address of the host): pods reach the API server there.
    "$here/real-node.sh" net-up
    # Webhooks and aggregated APIs are called at a Service's endpoint (a pod IP on the bridge): there is no kube-proxy.
    extra+=(--extra-args "kube-apiserver=enable-aggregator-routing=true")
    # logs and exec reach the kubelet at the node's InternalIP (its hostname resolves nowhere).
    extra+=(--extra-args "kube-apiserver=kubelet-preferred-address-types=InternalIP,Hostname")
    # ... and authenticate to it (the kubelet refuses anonymous calls) with kwokctl's admin certificate.
    extra+=(--extra-args "kube-apiserver=kubelet-client-certificate=$KWOK_WORKDIR/clusters/$name/pki/admin.crt")
    extra+=(--extra-args "kube-apiserver=kubelet-client-key=$KWOK_WORKDIR/clusters/$name/pki/admin.key")
  fi
  # The API server authenticates to admission webhooks with a client certificate of its own (CA and certificate
  # made here, beside the kubeconfig); the operator accepts only clients chained to that CA
  # (MODELHUB_WEBHOOK_CLIENT_CA=$state/webhook-client-ca.crt).
  webhook_client_auth
  extra+=(--extra-args "kube-apiserver=admission-control-config-file=$state/admission.yaml")
  # In-cluster clients call the kubernetes Service's ClusterIP (10.0.0.1): the serving certificate must name it.
  cat >"$state/kwokctl.yaml" <<'YAML'
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  kubeApiserverCertSANs: ["10.0.0.1"]
# One controller-manager and one scheduler: without leader election they ride out an API server restart (with it,
# a renewal missed while the API server is down makes them exit, and nothing starts them again).
componentsPatches:
- name: kube-controller-manager
  extraArgs:
  - key: leader-elect
    value: "false"
- name: kube-scheduler
  extraArgs:
  - key: leader-elect
    value: "false"
YAML
  # A stale cluster from a dead session: remove it first.
  "$bin/kwokctl-$KWOK_VERSION" delete cluster --name "$name" --kubeconfig "$kubeconfig" >/dev/null 2>&1 || true
  # kwokctl 0.8.0 files an --extra-args under its component by the position of that component's first one: each
  # component's first --extra-args must come in the order of first appearance (apiserver at 0, kwok-controller at 1).
  log "starting kube-apiserver, etcd, controller-manager, scheduler and kwok on 127.0.0.1"
  "$bin/kwokctl-$KWOK_VERSION" --config "$state/kwokctl.yaml" create cluster --name "$name" --runtime binary \
    --kubeconfig "$kubeconfig" \
    --kube-apiserver-port "${MODELHUB_APISERVER_PORT:-0}" \
    --extra-args "kube-apiserver=advertise-address=127.0.0.1" \
    --extra-args "kwok-controller=manage-all-nodes=false" \
    --extra-args "kube-apiserver=service-cluster-ip-range=10.0.0.0/16" \
    --extra-args "kwok-controller=manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake" \
    "${extra[@]}" \
    --disable-qps-limits \
    --wait 120s >&2
}

# A CA, and a client certificate it signs (CN kube-apiserver-webhook-client), that the API server presents to every
# webhook it calls (the kubeconfig user `*` of its WebhookAdmissionConfiguration). Made once per state directory.
webhook_client_auth() {
  local d="$state" subj="/CN=kube-apiserver-webhook-client"
  if [ ! -s "$d/webhook-client.crt" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj "/CN=modelhub-webhook-client-ca" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
      -keyout "$d/webhook-client-ca.key" -out "$d/webhook-client-ca.crt" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$subj" \
      -keyout "$d/webhook-client.key" -out "$d/webhook-client.csr" 2>/dev/null
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$d/webhook-client.ext"
    openssl x509 -req -in "$d/webhook-client.csr" -CA "$d/webhook-client-ca.crt" -CAkey "$d/webhook-client-ca.key" \
      -CAcreateserial -days 3650 -extfile "$d/webhook-client.ext" -out "$d/webhook-client.crt" 2>/dev/null
    chmod 600 "$d/webhook-client-ca.key" "$d/webhook-client.key"
  fi
  cat >"$d/webhook-kubeconfig.yaml" <<YAML
apiVersion: v1
kind: Config
users:
- name: "*"
  user: {client-certificate: "$d/webhook-client.crt", client-key: "$d/webhook-client.key"}
YAML
  cat >"$d/admission.yaml" <<YAML
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: ValidatingAdmissionWebhook
  configuration: {apiVersion: apiserver.config.k8s.io/v1, kind: WebhookAdmissionConfiguration, kubeConfigFile: "$d/webhook-kubeconfig.yaml"}
- name: MutatingAdmissionWebhook
  configuration: {apiVersion: apiserver.config.k8s.io/v1, kind: WebhookAdmissionConfiguration, kubeConfigFile: "$d/webhook-kubeconfig.yaml"}
YAML
}

up_kind() {
  docker info >/dev/null 2>&1 || { log "CLUSTER=kind needs a Docker engine; none answers"; exit 1; }
  "$here/build-tools.sh" kube kind >&2
  mkdir -p "$state"
  "$bin/kind-$KIND_VERSION" create cluster --name "$name" --kubeconfig "$kubeconfig" --wait 120s >&2
}

wait_nodes() {
  local i
  for i in $(seq 1 60); do
    if [ "$("$kubectl" --kubeconfig "$kubeconfig" get nodes --no-headers 2>/dev/null | grep -c ' Ready')" -ge 5 ]; then return 0; fi
    sleep 1
  done
  log "nodes did not become Ready"; "$kubectl" --kubeconfig "$kubeconfig" get nodes >&2; exit 1
}

down() {
  if [ "$backend" = kind ]; then
    "$bin/kind-$KIND_VERSION" delete cluster --name "$name" >/dev/null 2>&1 || true
  else
    "$here/real-node.sh" down || true
    kwok_env
    "$bin/kwokctl-$KWOK_VERSION" delete cluster --name "$name" --kubeconfig "$kubeconfig" >&2 || true
    # Leave no process behind, whatever kwokctl thinks: a kube-apiserver a test restarted outside kwokctl can hang
    # in its graceful shutdown once etcd is gone, so what is left after 10 s is killed.
    pkill -f "$KWOK_WORKDIR/clusters/$name/" 2>/dev/null || true
    local i
    for i in $(seq 1 20); do pgrep -f "$KWOK_WORKDIR/clusters/$name/" >/dev/null || break; sleep 0.5; done
    pkill -KILL -f "$KWOK_WORKDIR/clusters/$name/" 2>/dev/null || true
  fi
  rm -f "$kubeconfig"
  log "stopped"
}

print_usage() {
  cat >&2 <<MSG
[cluster] ready. Use it with:
  export KUBECONFIG=$kubeconfig
  export PATH=$bin/links:\$PATH   # kubectl, helm, kwokctl at the pinned versions
  kubectl get nodes -L nvidia.com/gpu.product
MSG
}

links() { # stable names for the pinned binaries
  mkdir -p "$bin/links"
  ln -sf "$kubectl" "$bin/links/kubectl"
  ln -sf "$bin/helm-$HELM_VERSION" "$bin/links/helm"
  ln -sf "$bin/kwokctl-$KWOK_VERSION" "$bin/links/kwokctl"
}

case "${1:-}" in
  up) up; links ;;
  down) down ;;
  status) if running; then echo "running: KUBECONFIG=$kubeconfig"; else echo "not running"; exit 1; fi ;;
  env) echo "export KUBECONFIG=$kubeconfig"; echo "export KUBECTL=$kubectl"; echo "export PATH=$bin/links:\$PATH"
       if [ -s "$state/webhook-client-ca.crt" ]; then echo "export MODELHUB_WEBHOOK_CLIENT_CA=$state/webhook-client-ca.crt"; fi ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
