#!/usr/bin/env bash
# Install Debian's chromium for the browser e2e test (Playwright drives /usr/bin/chromium; it never downloads a
# browser of its own, which this machine's closed network refuses). Idempotent: a no-op when already installed.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
/usr/bin/chromium --version
