#!/usr/bin/env bash
# Creates .venv and installs CityBrain into it. Usage: scripts/bootstrap.sh [EXTRAS]  (e.g. "test,sumo")
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "CityBrain needs Python >= 3.11 (found $("$PY" --version 2>&1))" >&2
  exit 2
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
extras=${1:-}
spec="."
[ -n "$extras" ] && spec=".[$extras]"
stamp=".venv/.installed-$(echo "$extras" | tr ',' '-')-$(cat pyproject.toml | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "installing CityBrain ($spec) into .venv ..." >&2
  if ! { .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q -e "$spec"; } > .venv/pip.log 2>&1; then
    cat .venv/pip.log >&2
    echo "install failed (log above)" >&2
    exit 1
  fi
  touch "$stamp"
fi
