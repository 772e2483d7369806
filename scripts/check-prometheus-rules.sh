#!/usr/bin/env bash
# Checks deploy/prometheus/ with Debian's promtool (installed if missing):
# the config and rules parse, and the alert rules pass their unit tests
# (deploy/prometheus/alerts_test.yml).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v promtool >/dev/null; then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 \
    install -y -q --no-install-recommends prometheus >/dev/null
fi
promtool check config deploy/prometheus/prometheus.yml
promtool test rules deploy/prometheus/alerts_test.yml
