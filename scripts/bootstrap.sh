#!/usr/bin/env bash
# Creates .venv and installs CityBrain into it from the lock file, then compiles the numba kernels.
# Usage: scripts/bootstrap.sh [EXTRAS]   (e.g. "test,sumo")
#
# Every package comes from requirements.lock (all extras, resolved for Python 3.11+ on any platform).
# Refresh the lock after changing pyproject.toml (one line, see README "Dependencies"):
#   scripts/lock.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
UV_VERSION=0.13.9   # the installer is pinned too
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "CityBrain needs Python >= 3.11 (found $("$PY" --version 2>&1))" >&2
  exit 2
fi
extras=${1:-}
spec="."
[ -n "$extras" ] && spec=".[$extras]"
stamp=".venv/.installed-$(echo "$extras" | tr ',' '-')-$(cat pyproject.toml requirements.lock | sha1sum | cut -c1-12)"
[ -f "$stamp" ] && exit 0

t0=$(date +%s)
step() { echo "[$1/4] $2 (+$(( $(date +%s) - t0 )) s)" >&2; }
step 1 "creating .venv with $("$PY" --version 2>&1)"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if ! .venv/bin/python -m uv --version 2>/dev/null | grep -q "$UV_VERSION"; then
  step 2 "installing the installer (uv $UV_VERSION)"
  .venv/bin/python -m pip install --progress-bar on "uv==$UV_VERSION" 2>&1 | grep -v -E '^(Requirement already|WARNING: Location)' >&2 || true
  .venv/bin/python -m uv --version >/dev/null
else
  step 2 "installer present (uv $UV_VERSION)"
fi
step 3 "installing CityBrain $spec from requirements.lock (a first install downloads ~$([ -n "$extras" ] && echo 900 || echo 400) MB)"
# uv prints its own progress (resolved / prepared / installed counts) on stderr.
.venv/bin/python -m uv pip install --python .venv/bin/python -c requirements.lock -e "$spec"
step 4 "compiling the numba kernels once, so the first start is fast"
if ! .venv/bin/citybrain warm-up; then
  # Not fatal: the engine compiles what it needs at its first start (and says so); the tests find the bug.
  echo "warning: the warm-up failed (above); the first start will compile the kernels itself" >&2
fi
touch "$stamp"
echo "installed in $(( $(date +%s) - t0 )) s" >&2
