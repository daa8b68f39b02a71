"""The only part of shoematch that imports Ray: connecting to a cluster, the Ray Train driver and
per-worker step reporter, the Ray Data pipelines (CriSp training data, re-index executor) and the
Ray Tune sweeps. Everything else in the library runs without Ray installed
(tests/test_library_without_ray.py checks it).

Importing this package sets the quiet environment defaults before Ray is imported.
"""

from shoematch.env import apply_quiet_defaults

apply_quiet_defaults()
