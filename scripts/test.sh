#!/usr/bin/env bash
# README command 2: install what is needed (first run only), lint, then run the test suite.
# Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
bash "$root/scripts/system_deps.sh"
cd "$root"
venv="${SHOEMATCH_VENV:-$root/.venv}"
export RAY_DISABLE_USAGE_STATS=1 RAY_AUTH_MODE=disabled MLFLOW_DISABLE_TELEMETRY=true
"$venv/bin/ruff" check .
exec "$venv/bin/python" -m pytest -q "$@"
