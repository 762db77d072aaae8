#!/usr/bin/env bash
# Install Debian's PostgreSQL 15 and Redis for the distributed Airflow (make cluster, make e2e-cluster).
# Idempotent: a no-op when both are installed. The packages' own services are not used (on a machine without
# systemd they do not start); dev/cluster_services.py runs its own throwaway servers on 127.0.0.1.
set -euo pipefail
if [ -x /usr/lib/postgresql/15/bin/postgres ] && command -v redis-server >/dev/null; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends postgresql-15 redis-server >/dev/null
/usr/lib/postgresql/15/bin/postgres --version
redis-server --version
