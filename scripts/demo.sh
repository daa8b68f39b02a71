#!/usr/bin/env bash
# README command 1: install what is needed (first run only), then run the main job end to end
# on the built-in synthetic data. Extra arguments go to `python -m jobs.demo`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
cd "$root"
export RAY_DISABLE_USAGE_STATS=1 MLFLOW_DISABLE_TELEMETRY=true
exec "${SHOEMATCH_VENV:-$root/.venv}/bin/python" -m jobs.demo "$@"
