#!/usr/bin/env bash
# Creates (once) the project's virtualenv and installs what pyproject.toml asks for.
# Idempotent: a stamp keyed on the dependency files skips work already done.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${SHOEMATCH_VENV:-$root/.venv}"
python_bin="${SHOEMATCH_PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x "$venv/bin/python" ]; then
  echo "[bootstrap] creating virtualenv at $venv"
  "$python_bin" -m venv "$venv"
fi
stamp="$venv/.shoematch-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  log="$venv/bootstrap.log"
  echo "[bootstrap] installing dependencies (first run: a few minutes; log: $log)"
  if ! {
    "$venv/bin/pip" install -U pip &&
    # The CPU build of torch on disk; a looser pin would pull CUDA wheels.
    "$venv/bin/pip" install "torch==2.13.0" &&
    "$venv/bin/pip" install -c constraints.txt -e ".[dev]"
  } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "[bootstrap] install failed; full log: $log" >&2
    exit 1
  fi
  rm -f "$venv"/.shoematch-*
  touch "$stamp"
fi
