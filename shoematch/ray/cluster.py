"""Joining a Ray cluster (or starting a local instance) and submitting jobs to one."""

from __future__ import annotations

import os
import time

import ray

from shoematch.log import get_logger

log = get_logger(__name__)


def quiet_train_cleaner() -> None:
    """Worker setup hook for local instances: without a dashboard there is no State API, and Ray
    Train's placement-group cleaner would log a warning about it every few seconds."""
    import logging

    logging.getLogger("ray.train.v2._internal.execution.controller.placement_group_cleaner"
                      ).setLevel(logging.ERROR)


def init_ray(local_cpus: int | None = None, object_store_mb: int = 1024) -> None:
    """Join the cluster this job was submitted to (RAY_ADDRESS), else start a local instance."""
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
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env)
        except RuntimeError as exc:
            if "No available agent" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(2)
