#!/usr/bin/env bash
# The real node `real-0` of the local control plane: a kubelet with Debian's containerd + runc and a bridge CNI,
# beside the kwok-simulated nodes. hack/cluster.sh calls it; see hack/README-real-node.md for what it takes.
#   hack/real-node.sh deps        install containerd, runc, CNI plugins, buildah (Debian packages) if missing
#   hack/real-node.sh net-up      create the pod bridge (before the control plane: its IP goes into the serving cert)
#   hack/real-node.sh up          start containerd and the kubelet, join the cluster, wait for Ready
#   hack/real-node.sh down        stop both and remove every process, mount, netns, interface and iptables rule of ours
#   hack/real-node.sh running     exit 0 when its containerd answers
#   hack/real-node.sh import TAR  load an OCI archive into the node's containerd (namespace k8s.io)
#   hack/real-node.sh env         print the node's facts (bridge, gateway, containerd socket) as shell assignments
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.env"
cache=${MODELHUB_CACHE:-$HOME/.cache/modelhub}
bin="$cache/bin"
name=${MODELHUB_CLUSTER_NAME:-modelhub}
node=${MODELHUB_REAL_NODE_NAME:-real-0}
if [ "$name" = modelhub ]; then cstate="$cache/cluster"; else cstate="$cache/cluster-$name"; fi
kubeconfig="$cstate/kubeconfig"
pki="$cache/kwok/clusters/$name/pki"
state="$cache/real-node-$name"          # kubelet root dir, configs, certs, IPAM, logs (kept small; removed on down)
run="/run/modelhub-$name"               # containerd sockets and runtime state (tmpfs)
kubectl="$bin/kubectl-$KUBERNETES_VERSION"
kubelet="$bin/kubelet-$KUBERNETES_VERSION"
# One bridge and /24 per cluster name, so that two engineers' clusters on one machine do not collide.
sum=$(printf '%s' "$name" | cksum | cut -d' ' -f1)
octet=$(( sum % 200 + 20 ))
bridge="mh$(printf '%s' "$name" | tr -cd 'a-z0-9' | cut -c1-10)0"
subnet="10.88.$octet.0/24"
gateway="10.88.$octet.1"
comment="modelhub-$name"                # every iptables rule of ours carries this comment
log() { printf '[real-node] %s\n' "$*" >&2; }

deps() {
  local need=()
  command -v containerd >/dev/null || need+=(containerd)
  command -v runc >/dev/null || need+=(runc)
  [ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
  command -v buildah >/dev/null || need+=(buildah)
  command -v iptables >/dev/null || need+=(iptables)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  command -v gcc >/dev/null || need+=(gcc libc6-dev)
  [ ${#need[@]} -eq 0 ] && return 0
  log "installing ${need[*]} (Debian packages)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The package's init script may have started a system containerd: ours is separate, but do not leave theirs up.
  if [ -x /etc/init.d/containerd ] && [ ! -d /run/systemd/system ]; then /etc/init.d/containerd stop >/dev/null 2>&1 || true; fi
}

net_up() {
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add "$bridge" type bridge
    ip addr add "$gateway/24" dev "$bridge"
  fi
  ip link set "$bridge" up
}

write_configs() {
  mkdir -p "$state"/{kubelet,pki,cni/net.d,ipam,log} "$run"
  cat >"$state/cni/net.d/10-modelhub.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "$comment",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$state/ipam",
        "ranges": [[{"subnet": "$subnet", "gateway": "$gateway"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
JSON
  cat >"$state/containerd.toml" <<TOML
version = 2
root = "$state/containerd"
state = "$run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$run/containerd.sock"
[ttrpc]
  address = "$run/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$state/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/modelhub-pause:1"
  # runc may not lower oom_score_adj here ("failed to update /proc/self/oom_score_adj: Permission denied").
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$run/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$state/cni/net.d"
    max_conf_num = 1
TOML
  cat >"$state/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This host: cgroup v1 (a kubelet >= 1.35 refuses it unless told), no systemd (cgroupfs), swap not checked.
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
cgroupRoot: /modelhub-$name
containerRuntimeEndpoint: unix://$run/containerd.sock
address: $gateway
port: $kubelet_port
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
podLogsDir: $state/pod-logs
maxPods: 30
serializeImagePulls: false
imageGCHighThresholdPercent: 95
imageGCLowThresholdPercent: 90
evictionHard: {memory.available: "200Mi", nodefs.available: "2%", imagefs.available: "2%"}
registerWithTaints: []
YAML
}

# The kubelet's client identity: a certificate for system:node:<node> in system:nodes, signed by the cluster CA that
# kwokctl made. The Node authorizer and NodeRestriction then give the kubelet exactly a node's rights.
kubelet_identity() {
  [ -f "$pki/ca.key" ] || { log "no CA key at $pki/ca.key: is the control plane up?"; exit 1; }
  local server
  server=$("$kubectl" --kubeconfig "$kubeconfig" config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  openssl ecparam -name prime256v1 -genkey -noout -out "$state/pki/kubelet.key" 2>/dev/null
  openssl req -new -key "$state/pki/kubelet.key" -subj "/O=system:nodes/CN=system:node:$node" -out "$state/pki/kubelet.csr"
  openssl x509 -req -in "$state/pki/kubelet.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 30 -sha256 -out "$state/pki/kubelet.crt" 2>/dev/null
  chmod 600 "$state/pki/kubelet.key"
  cat >"$state/kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "$server", certificate-authority: "$pki/ca.crt"}
users:
- name: $node
  user: {client-certificate: "$state/pki/kubelet.crt", client-key: "$state/pki/kubelet.key"}
contexts:
- name: local
  context: {cluster: local, user: $node}
current-context: local
YAML
}

start_containerd() {
  if [ -S "$run/containerd.sock" ] && ctr_ version >/dev/null 2>&1; then return 0; fi
  setsid containerd --config "$state/containerd.toml" >"$state/log/containerd.log" 2>&1 </dev/null &
  echo $! >"$run/containerd.pid"
  local i
  for i in $(seq 1 50); do ctr_ version >/dev/null 2>&1 && return 0; sleep 0.2; done
  log "containerd did not start:"; tail -20 "$state/log/containerd.log" >&2; exit 1
}

ctr_() { ctr --address "$run/containerd.sock" "$@"; }

pause_image() {
  if ctr_ -n k8s.io images ls -q | grep -qx 'localhost/modelhub-pause:1'; then return 0; fi
  "$here/image.sh" pause
  ctr_ -n k8s.io images import --no-unpack=false "$cache/images/pause-1.tar" >/dev/null
}

# Pods reach the API server the way in-cluster clients do: through the kubernetes Service's ClusterIP. There is no
# kube-proxy, so one DNAT rule (ours, by comment) sends that ClusterIP:443 from the bridge to the API server, which
# listens on all addresses and whose serving certificate names the bridge IP.
service_dnat() {
  local server port vip
  server=$("$kubectl" --kubeconfig "$kubeconfig" config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  port=${server##*:}
  vip=$("$kubectl" --kubeconfig "$kubeconfig" get service kubernetes -n default -o jsonpath='{.spec.clusterIP}')
  iptables -t nat -C PREROUTING -i "$bridge" -d "$vip" -p tcp --dport 443 -m comment --comment "$comment" \
    -j DNAT --to-destination "$gateway:$port" 2>/dev/null \
  || iptables -t nat -A PREROUTING -i "$bridge" -d "$vip" -p tcp --dport 443 -m comment --comment "$comment" \
    -j DNAT --to-destination "$gateway:$port"
}

start_kubelet() {
  mkdir -p "/sys/fs/cgroup/cpu/modelhub-$name" 2>/dev/null || true
  local c
  for c in /sys/fs/cgroup/*/; do [ -d "$c" ] && [ ! -L "${c%/}" ] && mkdir -p "$c/modelhub-$name" 2>/dev/null || true; done
  setsid "$kubelet" --config "$state/kubelet.yaml" --kubeconfig "$state/kubeconfig" \
    --hostname-override "$node" --node-ip "$gateway" --root-dir "$state/kubelet" --cert-dir "$state/pki" \
    --node-labels "modelhub.dev/node-class=real" --v "${MODELHUB_KUBELET_V:-1}" \
    >"$state/log/kubelet.log" 2>&1 </dev/null &
  echo $! >"$run/kubelet.pid"
}

wait_ready() {
  local i
  for i in $(seq 1 120); do
    if [ "$("$kubectl" --kubeconfig "$kubeconfig" get node "$node" \
          -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]; then return 0; fi
    if ! kill -0 "$(cat "$run/kubelet.pid")" 2>/dev/null; then break; fi
    sleep 1
  done
  log "$node did not become Ready; the kubelet log ends:"; tail -30 "$state/log/kubelet.log" >&2; exit 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

up() {
  [ -x "$kubelet" ] || "$here/build-tools.sh" kube >&2
  deps
  net_up
  kubelet_port=${MODELHUB_KUBELET_PORT:-$(free_port)}
  write_configs
  kubelet_identity
  start_containerd
  pause_image
  # Images already built (hack/image.sh build, `make image`) are there from the start: pods use imagePullPolicy Never.
  local f
  for f in "$cache"/images/*.tar; do
    [ -f "$f" ] && [ "$(basename "$f")" != pause-1.tar ] && ctr_ -n k8s.io images import "$f" >/dev/null
  done
  service_dnat
  start_kubelet
  wait_ready
  log "$node Ready (bridge $bridge $subnet, containerd $run/containerd.sock, logs $state/log)"
}

stop_pid() { # pidfile
  [ -f "$1" ] || return 0
  local pid; pid=$(cat "$1")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    local i; for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

umount_under() { # every mount point below a directory, deepest first
  local d=$1
  [ -n "$d" ] || return 0
  awk -v d="$d" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
}

down() {
  stop_pid "$run/kubelet.pid"
  local netns=()
  if [ -S "$run/containerd.sock" ] && ctr_ version >/dev/null 2>&1; then
    # The pods' network namespaces, from the sandboxes' runtime specs, before their containers go.
    mapfile -t netns < <(for c in $(ctr_ -n k8s.io containers ls -q); do
      ctr_ -n k8s.io containers info "$c" 2>/dev/null \
        | python3 -c 'import json,sys
for ns in json.load(sys.stdin).get("Spec",{}).get("linux",{}).get("namespaces",[]):
    if ns.get("type")=="network" and ns.get("path"): print(ns["path"])' || true
    done | sort -u)
    for t in $(ctr_ -n k8s.io tasks ls -q 2>/dev/null); do ctr_ -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
    sleep 0.5
    for t in $(ctr_ -n k8s.io tasks ls -q 2>/dev/null); do ctr_ -n k8s.io tasks rm -f "$t" >/dev/null 2>&1 || true; done
  fi
  stop_pid "$run/containerd.pid"
  # Shims outlive containerd by design; ours name our socket on their command line.
  local p
  for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $run/containerd.sock" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
  umount_under "$state"
  umount_under "$run"
  for n in "${netns[@]}"; do
    [ -n "$n" ] || continue
    umount "$n" 2>/dev/null || true; rm -f "$n"
  done
  # The veths go with their namespaces; the bridge is ours by name.
  ip link del "$bridge" 2>/dev/null || true
  iptables-save 2>/dev/null | awk -v c="$comment" '
    /^\*/ {t=substr($0,2)} $0 ~ "--comment \"?" c "\"? " && /^-A / {sub(/^-A /, "-D "); print t " " $0}' \
    | while read -r table rule; do eval "iptables -t $table $rule" 2>/dev/null || true; done
  kubelet_chains
  local c
  for c in /sys/fs/cgroup/*/modelhub-"$name"; do
    [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  rm -rf "$run" "$state"
  log "$node removed"
}

# The kubelet's own chains (a canary it watches for iptables flushes, a hint for kube-proxy, and KUBE-FIREWALL, which
# drops outside packets to 127.0.0.0/8). They are shared by every kubelet on the host: removed when none is left.
kubelet_chains() {
  if pgrep -f "kubelet-[0-9.]* --config" >/dev/null 2>&1; then return 0; fi
  local ipt
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    "$ipt" -t filter -D INPUT -j KUBE-FIREWALL 2>/dev/null || true
    "$ipt" -t filter -D OUTPUT -j KUBE-FIREWALL 2>/dev/null || true
    local t ch
    for t in filter nat mangle; do
      for ch in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
        "$ipt" -t "$t" -F "$ch" 2>/dev/null && "$ipt" -t "$t" -X "$ch" 2>/dev/null || true
      done
    done
  done
}

case "${1:-}" in
  deps) deps ;;
  net-up) net_up ;;
  up) up ;;
  down) down ;;
  running) [ -S "$run/containerd.sock" ] && ctr_ version >/dev/null 2>&1 ;;
  import) shift; for f in "$@"; do ctr_ -n k8s.io images import "$f" >/dev/null; done ;;
  env) printf 'REAL_NODE=%s\nREAL_NODE_BRIDGE=%s\nREAL_NODE_SUBNET=%s\nREAL_NODE_GATEWAY=%s\nREAL_NODE_CONTAINERD=%s\n' \
         "$node" "$bridge" "$subnet" "$gateway" "$run/containerd.sock" ;;
  *) echo "usage: $0 deps|net-up|up|down|import TAR...|env" >&2; exit 2 ;;
esac
