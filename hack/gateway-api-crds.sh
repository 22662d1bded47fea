#!/usr/bin/env bash
# The Gateway API CRDs the canary tests install: copied from the Go module sigs.k8s.io/gateway-api (downloaded
# through the Go module proxy into the module cache) into $MODELHUB_CACHE/gateway-api/v<version>/. Nothing fetched
# is committed. Prints the directory. Idempotent: a second run only checks the files are there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.env"
cache=${MODELHUB_CACHE:-$HOME/.cache/modelhub}
out="$cache/gateway-api/v$GATEWAY_API_VERSION"
files=(gateway.networking.k8s.io_gatewayclasses.yaml gateway.networking.k8s.io_gateways.yaml
       gateway.networking.k8s.io_httproutes.yaml)
have=1
for f in "${files[@]}"; do [ -s "$out/$f" ] || have=0; done
if [ "$have" = 0 ]; then
  dir=$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/gateway-api@v$GATEWAY_API_VERSION" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] && [ -d "$dir/config/crd/standard" ] || { echo "gateway-api v$GATEWAY_API_VERSION: no CRDs in '$dir'" >&2; exit 1; }
  mkdir -p "$out.tmp"
  for f in "${files[@]}"; do install -m 0644 "$dir/config/crd/standard/$f" "$out.tmp/$f"; done
  rm -rf "$out" && mv "$out.tmp" "$out"
fi
echo "$out"
