#!/usr/bin/env bash
# Runs a command with KUBECONFIG pointing at a live cluster: the one in $KUBECONFIG if it answers, else the local
# control plane, brought up for the command and down after it (only when this script started it).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.env"
cache=${MODELHUB_CACHE:-$HOME/.cache/modelhub}
export KUBECTL=${KUBECTL:-$cache/bin/kubectl-$KUBERNETES_VERSION}
export PATH="$cache/bin/links:$PATH"
started=0
if [ -n "${KUBECONFIG:-}" ] && "$KUBECTL" --request-timeout=5s get --raw /readyz >/dev/null 2>&1; then
  echo "[with-cluster] using the cluster in KUBECONFIG=$KUBECONFIG" >&2
else
  if ! "$here/cluster.sh" status >/dev/null 2>&1; then
    "$here/cluster.sh" up || exit 1
    started=1
  fi
  export KUBECONFIG=$("$here/cluster.sh" env | sed -n 's/^export KUBECONFIG=//p')
fi
"$@"
rc=$?
if [ "$started" = 1 ] && [ -z "${MODELHUB_KEEP_CLUSTER:-}" ]; then "$here/cluster.sh" down; fi
exit $rc
