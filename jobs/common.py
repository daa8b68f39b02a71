"""What every job shares: environment defaults, Ray connection, and error reporting."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from shoematch.errors import ShoematchError
from shoematch.log import get_logger

log = get_logger("jobs")

# Quiet, local-first defaults; an explicit environment always wins.
ENV_DEFAULTS = {
    "RAY_DISABLE_USAGE_STATS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # one bar per file: dozens per model
}
for _key, _value in ENV_DEFAULTS.items():
    os.environ.setdefault(_key, _value)


def quiet_train_cleaner() -> None:
    """Worker setup hook for local instances: without a dashboard there is no State API, and Ray
    Train's placement-group cleaner would log a warning about it every few seconds."""
    import logging

    logging.getLogger("ray.train.v2._internal.execution.controller.placement_group_cleaner"
                      ).setLevel(logging.ERROR)


def init_ray(local_cpus: int | None = None, object_store_mb: int = 1024) -> None:
    """Join the cluster this job was submitted to (RAY_ADDRESS), else start a local instance."""
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=True)
        log.info("connected to Ray cluster at %s", os.environ["RAY_ADDRESS"])
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(
        address="local",  # a fresh instance, even if another cluster runs on this machine
        num_cpus=local_cpus,
        object_store_memory=object_store_mb * 1024 * 1024,
        include_dashboard=False,
        log_to_driver=True,
        runtime_env={"worker_process_setup_hook": quiet_train_cleaner},
    )
    log.info("started a local Ray instance (%s CPUs)", ray.cluster_resources().get("CPU"))


def submit_job(client, entrypoint: str, runtime_env: dict, timeout_s: float = 90.0) -> str:
    """Submit through the Jobs API, retrying (bounded) while the head's job agent starts."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env)
        except RuntimeError as exc:
            if "No available agent" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(2)


def shoematch_cause(exc: BaseException) -> ShoematchError | None:
    """The ShoematchError behind `exc`, also when Ray (tasks, Ray Data, Train) wrapped it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        inner = getattr(current, "cause", None)  # Ray's wrappers keep the original here
        if isinstance(current, ShoematchError) and not isinstance(inner, BaseException):
            return current
        seen.add(id(current))
        current = inner if isinstance(inner, BaseException) else (
            current.__cause__ or current.__context__)
    return None


def run_main(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run a job's main; shoematch errors print one clear line and exit 2 (no traceback)."""
    try:
        code = main(argv)
    except Exception as exc:
        cause = shoematch_cause(exc)
        if cause is None:
            raise
        print(f"error: {cause}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)
