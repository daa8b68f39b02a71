#!/usr/bin/env bash
# README command 2: install what is needed (first run only), lint, type-check, then run the
# test suite.
# Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
bash "$root/scripts/system_deps.sh"
cd "$root"
venv="${SHOEMATCH_VENV:-$root/.venv}"
export RAY_DISABLE_USAGE_STATS=1 RAY_AUTH_MODE=disabled MLFLOW_DISABLE_TELEMETRY=true
"$venv/bin/ruff" check .
"$venv/bin/mypy" shoematch serve  # configured in pyproject.toml: zero errors
exec "$venv/bin/python" -m pytest -q "$@"
