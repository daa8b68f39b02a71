"""The only part of shoematch that imports Ray: connecting to a cluster, the Ray Train driver and
per-worker step reporter, the Ray Data pipelines (CriSp training data, re-index executor) and the
Ray Tune sweeps. Everything else in the library runs without Ray installed
(tests/test_library_without_ray.py checks it).

Importing this package sets quiet, local-first defaults before Ray is imported; an explicit
environment always wins.
"""

import os

ENV_DEFAULTS = {
    "RAY_DISABLE_USAGE_STATS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",
}
for _key, _value in ENV_DEFAULTS.items():
    os.environ.setdefault(_key, _value)
