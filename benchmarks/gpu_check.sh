#!/usr/bin/env bash
# Every GPU path once, one table, at most 8 minutes (benchmarks/gpu_check.py says what runs).
# Without CUDA the same steps run on CPU at tiny sizes and the table says which were skipped.
#   bash benchmarks/gpu_check.sh [--tiny] [--work DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SHOEMATCH_VENV:-$root/.venv}"
python="$venv/bin/python"
[ -x "$python" ] || python="$(command -v python3)"
export RAY_DISABLE_USAGE_STATS=1 RAY_AUTH_MODE=disabled MLFLOW_DISABLE_TELEMETRY=true
cd "$root"
# GPU_CHECK_LIMIT_S: the wall-clock limit (default 480 s, the 8 minutes of a GPU loan).
exec timeout --signal=INT --kill-after=20 "${GPU_CHECK_LIMIT_S:-480}" \
    "$python" -m benchmarks.gpu_check "$@"
