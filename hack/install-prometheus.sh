#!/usr/bin/env bash
# Installs Debian's prometheus package (it ships /usr/bin/prometheus and /usr/bin/promtool) once; a no-op when
# both are already there. The alert-rule tests (promtool check/test rules), the dashboard query check and the
# Prometheus e2e need them. Debian bookworm's 2.42 has `promtool test rules` (since 2.5) and `check rules`.
set -euo pipefail
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-prometheus: need root for apt-get (or install Debian's prometheus package yourself)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt/dpkg run instead of failing at once (CI and other sessions share the machine).
apt_opts=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
apt-get "${apt_opts[@]}" update -qq
# --no-install-recommends: only the server and promtool, no node-exporter or web assets.
apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends prometheus >/dev/null
# The package enables a system service; the tests start their own server on 127.0.0.1, so stop that one.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  systemctl stop prometheus || true
fi
promtool --version | head -1
