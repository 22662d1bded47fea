#!/usr/bin/env bash
# Builds the pinned control-plane tools from the Go module proxy into a cache outside the repo.
# Each tool lands in $MODELHUB_CACHE/bin/<tool>-<version>; an existing binary is never rebuilt.
# Usage: hack/build-tools.sh [tool ...]   (default: etcd kube kwok helm registry oras controller-gen)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${MODELHUB_CACHE:-$HOME/.cache/modelhub}
bin="$cache/bin"
work="$cache/build"
mkdir -p "$bin" "$work"
export GOFLAGS="${GOFLAGS:--buildvcs=false} -trimpath"
export CGO_ENABLED=0
ldflags="-s -w"

have() { [ -x "$bin/$1-$2" ]; }
log() { printf '[build-tools] %s\n' "$*" >&2; }

# A throwaway module per tool keeps the repo free of fetched code and lets us add replaces.
module_dir() {
  local d="$work/$1-$2"
  rm -rf "$d"; mkdir -p "$d"; echo "$d"
}

build_etcd() {
  local v=$ETCD_VERSION
  have etcd "$v" && return 0
  log "building etcd $v"
  local d; d=$(module_dir etcd "$v")
  (cd "$d" && go mod init modelhub.local/etcd >/dev/null 2>&1 \
    && go get "go.etcd.io/etcd/server/v3@v$v" >/dev/null \
    && printf 'package main\nimport _ "go.etcd.io/etcd/server/v3/etcdmain"\nfunc main(){}\n' >tools.go \
    && go mod tidy >/dev/null 2>&1 || true)
  # etcd's server module exposes its main in etcdmain; build a tiny main that calls it.
  cat >"$d/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  rm -f "$d/tools.go"
  (cd "$d" && go mod tidy && go build -ldflags "$ldflags" -o "$bin/etcd-$v.tmp" . && mv "$bin/etcd-$v.tmp" "$bin/etcd-$v")
}

build_kube() {
  local v=$KUBERNETES_VERSION
  local tools=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet)
  local missing=()
  for t in "${tools[@]}"; do have "$t" "$v" || missing+=("$t"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "building kubernetes $v: ${missing[*]}"
  local d; d=$(module_dir kubernetes "$v")
  (cd "$d" && go mod init modelhub.local/kube >/dev/null 2>&1)
  # k8s.io/kubernetes requires its staging modules at v0.0.0; pin each to the matching release.
  local gomod
  gomod=$(cd "$d" && go mod download -json "k8s.io/kubernetes@v$v" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  {
    echo "require k8s.io/kubernetes v$v"
    grep -oE '^\s*k8s\.io/[a-z0-9-]+ v0\.0\.0(\s|$)' "$gomod" | awk -v mv="v0.${v#1.}" '{print "replace " $1 " => " $1 " " mv}' | sort -u
  } >>"$d/go.mod"
  cat >"$d/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
  (cd "$d" && go mod tidy -e 2>&1 | grep -v '^go: \(downloading\|found\)' >&2 || true)
  # Stamp the version the way the release build does, so clients (kubectl version, helm) see v$v.
  local kv=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    kv+=" -X $pkg.gitVersion=v$v -X $pkg.gitMajor=${v%%.*} -X $pkg.gitMinor=$(echo "$v" | cut -d. -f2)"
    kv+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  for t in "${missing[@]}"; do
    log "  go build $t"
    (cd "$d" && go build -tags tools -ldflags "$ldflags$kv" -o "$bin/$t-$v.tmp" "k8s.io/kubernetes/cmd/$t" && mv "$bin/$t-$v.tmp" "$bin/$t-$v")
  done
}

build_gotool() { # name version module-path-of-main
  local name=$1 v=$2 pkg=$3
  have "$name" "$v" && return 0
  log "building $name $v"
  local d; d=$(module_dir "$name" "$v")
  (cd "$d" && GOBIN="$d/out" go install -ldflags "$ldflags" "$pkg@v$v" && mv "$d/out/$(basename "$pkg")" "$bin/$name-$v")
}

build_kwok() {
  build_gotool kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok
  build_gotool kwokctl "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwokctl
}
build_helm() { build_gotool helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm; }
build_kind() { build_gotool kind "$KIND_VERSION" sigs.k8s.io/kind; }
# The CNCF registry and the oras client, for the oci:// store tests (a real registry on 127.0.0.1).
build_registry() { build_gotool registry "$DISTRIBUTION_VERSION" github.com/distribution/distribution/v3/cmd/registry; }
build_oras() { build_gotool oras "$ORAS_VERSION" oras.land/oras/cmd/oras; }
# controller-gen, which makes the Gateway API CRDs from their Go types for the canary tests (hack/gateway-api-crds.sh).
build_controller-gen() { build_gotool controller-gen "$CONTROLLER_TOOLS_VERSION" sigs.k8s.io/controller-tools/cmd/controller-gen; }

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(etcd kube kwok helm registry oras controller-gen)
for t in "${targets[@]}"; do "build_$t"; done
log "tools ready in $bin"
