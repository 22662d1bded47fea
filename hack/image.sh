#!/usr/bin/env bash
# Images without a registry: builds with buildah (no Docker engine), into a storage under $MODELHUB_CACHE/containers,
# and writes OCI archives to $MODELHUB_CACHE/images for the real node's containerd.
#   hack/image.sh base           Debian bookworm from Debian's packages (debootstrap), tagged as the Dockerfiles' FROM
#   hack/image.sh pause          the real node's sandbox image localhost/modelhub-pause:1 (hack/images/pause/pause.c)
#   hack/image.sh build          localhost/modelhub:dev (Dockerfile) and localhost/modelhub-model-server:dev
#   hack/image.sh load           build, then import both into the real node's containerd (hack/real-node.sh import)
# Slow steps are cached by what they depend on: the base by suite and package set, image layers by buildah --layers.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cache=${MODELHUB_CACHE:-$HOME/.cache/modelhub}
images="$cache/images"
mkdir -p "$images"
base_name=docker.io/library/debian:bookworm-slim   # the repository:tag of the Dockerfiles' FROM (without digest)
suite=bookworm
base_key="$suite-minbase-1"                        # bump when base() changes
tag=${MODELHUB_IMAGE_TAG:-dev}
log() { printf '[image] %s\n' "$*" >&2; }

buildah_() {
  buildah --root "$cache/containers/storage" --runroot "/run/modelhub-buildah" --storage-driver overlay "$@"
}

have_image() { buildah_ inspect --type image "$1" >/dev/null 2>&1; }

mirror() { # the Debian mirror this machine's apt already uses
  local m
  m=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
  [ -n "$m" ] || m=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^http/) {print $i; exit}}' \
    /etc/apt/sources.list 2>/dev/null)
  [ -n "$m" ] || { log "no Debian mirror found in /etc/apt"; exit 1; }
  echo "$m"
}

base() {
  if have_image "localhost/modelhub-base:$base_key"; then
    have_image "$base_name" || buildah_ tag "localhost/modelhub-base:$base_key" "$base_name"
    return 0
  fi
  command -v debootstrap >/dev/null || "$here/real-node.sh" deps
  log "making $base_name from Debian packages (debootstrap $suite, minbase)"
  local c mnt
  c=$(buildah_ from scratch)
  mnt=$(buildah_ mount "$c")
  debootstrap --variant=minbase "$suite" "$mnt" "$(mirror)" >"$images/debootstrap.log" 2>&1 \
    || { log "debootstrap failed:"; tail -20 "$images/debootstrap.log" >&2; buildah_ rm "$c" >/dev/null; exit 1; }
  rm -rf "$mnt"/var/lib/apt/lists/* "$mnt"/var/cache/apt/*.bin "$mnt"/var/cache/apt/archives/*.deb \
    "$mnt"/usr/share/doc/* "$mnt"/usr/share/man/* "$mnt"/var/log/*.log
  buildah_ umount "$c" >/dev/null
  buildah_ config --cmd '["bash"]' --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$c"
  buildah_ commit -q --rm "$c" "localhost/modelhub-base:$base_key" >/dev/null
  buildah_ tag "localhost/modelhub-base:$base_key" "$base_name"
}

pause() {
  local out="$images/pause-1.tar"
  [ -f "$out" ] && return 0
  command -v gcc >/dev/null || "$here/real-node.sh" deps
  local d; d=$(mktemp -d)
  gcc -static -Os -s -o "$d/pause" "$here/images/pause/pause.c"
  local c; c=$(buildah_ from scratch)
  buildah_ copy "$c" "$d/pause" /pause >/dev/null
  buildah_ config --entrypoint '["/pause"]' --user 65535:65535 "$c"
  buildah_ commit -q --rm "$c" localhost/modelhub-pause:1 >/dev/null
  buildah_ push -q localhost/modelhub-pause:1 "oci-archive:$out.tmp:localhost/modelhub-pause:1"
  mv "$out.tmp" "$out"; rm -rf "$d"
}

bud() { # image dockerfile context
  # This machine's CA bundle, for pip behind an intercepting proxy; a build secret, never a layer.
  local ca=()
  [ -f "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" ] && ca=(--secret "id=build-ca,src=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}")
  buildah_ bud -q --layers --isolation chroot --network host \
    --build-arg "BASE_IMAGE=$base_name" "${ca[@]}" -f "$2" -t "$1" "$3" >/dev/null
  # An archive per image, rewritten only when the image changed.
  local id file
  id=$(buildah_ inspect --type image --format '{{.FromImageID}}' "$1")
  file="$images/$(basename "${1%%:*}")-${1##*:}.tar"
  if [ "$(cat "$file.id" 2>/dev/null)" != "$id" ]; then
    rm -f "$file"
    buildah_ push -q "$1" "oci-archive:$file.tmp:$1"
    mv "$file.tmp" "$file"; echo "$id" >"$file.id"
  fi
  echo "$file"
}

build() {
  command -v buildah >/dev/null || "$here/real-node.sh" deps
  base
  log "building localhost/modelhub:$tag and localhost/modelhub-model-server:$tag"
  bud "localhost/modelhub:$tag" "$root/Dockerfile" "$root" >"$images/.modelhub"
  bud "localhost/modelhub-model-server:$tag" "$here/images/model-server/Dockerfile" "$here/images/model-server" >"$images/.model-server"
}

load() {
  build
  if ! "$here/real-node.sh" running; then
    log "no real node runs: the images go into it when it starts (hack/cluster.sh up)"; return 0
  fi
  "$here/real-node.sh" import "$(cat "$images/.modelhub")" "$(cat "$images/.model-server")"
  log "loaded localhost/modelhub:$tag and localhost/modelhub-model-server:$tag into the real node"
}

case "${1:-}" in
  base) base ;;
  pause) pause ;;
  build) build ;;
  load) load ;;
  *) echo "usage: $0 base|pause|build|load" >&2; exit 2 ;;
esac
