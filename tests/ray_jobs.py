"""Submitting `python -m jobs.…` through the Ray Jobs API, as users do, and waiting on it."""

from __future__ import annotations

import sys
import time

from tests.conftest import REPO


def submit(client, module: str, args: list[str], env: dict[str, str] | None = None,
           timeout_s: float = 90.0) -> str:
    """Submit, retrying while the head's job agent is still starting (bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return client.submit_job(
                entrypoint=" ".join([sys.executable, "-m", module, *args]),
                runtime_env={"working_dir": str(REPO), "env_vars": env or {}},
            )
        except RuntimeError as exc:
            if "No available agent" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(2)


def wait_job(client, job, timeout_s: float, until=None):
    """Bounded wait for a terminal state (or for `until(logs)` to hold)."""
    from ray.job_submission import JobStatus

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.get_job_status(job)
        if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
            return status
        if until and until(client.get_job_logs(job)):
            return status
        time.sleep(1)
    raise AssertionError(f"job not done in {timeout_s} s:\n{client.get_job_logs(job)[-3000:]}")
