#!/usr/bin/env bash
# Refreshes requirements.lock from pyproject.toml: every extra, any platform, Python 3.11+.
# The resolution is as of LOCK_DATE, so running this twice gives the same file; move the date to take
# newer releases (then run `make test`):   LOCK_DATE=2026-12-01 scripts/lock.sh
set -euo pipefail
cd "$(dirname "$0")/.."
LOCK_DATE=${LOCK_DATE:-2026-11-20}
UV=uv
command -v uv >/dev/null || UV=".venv/bin/python -m uv"
exec $UV pip compile pyproject.toml --all-extras --universal --python-version 3.11 \
  --exclude-newer "${LOCK_DATE}T00:00:00Z" -o requirements.lock "$@"
