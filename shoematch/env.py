"""Quiet, local-first environment defaults for processes that run Ray or MLflow (jobs,
benchmarks, the Ray adapter); an explicit environment always wins."""

from __future__ import annotations

import os

QUIET_DEFAULTS = {
    "RAY_DISABLE_USAGE_STATS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",  # each ray.train.report is a barrier: see docs
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # one bar per file: dozens per model
}


def apply_quiet_defaults() -> None:
    for key, value in QUIET_DEFAULTS.items():
        os.environ.setdefault(key, value)
