"""Submitting `python -m jobs.…` through the Ray Jobs API, as users do, and waiting on it."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from shoematch.ray.cluster import submit_job
from tests.conftest import REPO


def submit(client, module: str, args: list[str], env: dict[str, str] | None = None,
           python: str = sys.executable, excludes: list[str] | None = None) -> str:
    """`python -m module args` as a Ray job with this repository as its working dir; `python`
    is the interpreter on the cluster (this one for a head started by the tests)."""
    runtime_env = {"working_dir": str(REPO), "env_vars": env or {}}
    if excludes:
        runtime_env["excludes"] = excludes
    return submit_job(client, " ".join([python, "-m", module, *args]), runtime_env)


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


def kill_shard_replica(dashboard_url: str, deployment: str = "IndexShard0") -> None:
    """SIGKILL one live replica of a shard deployment, as a crashed node would lose it."""
    from ray.util.state import list_actors

    actors = list_actors(address=dashboard_url, filters=[("state", "=", "ALIVE")], limit=1000)
    victims = [a.pid for a in actors if deployment in (a.class_name or "")]
    assert victims, [a.class_name for a in actors]
    os.kill(victims[0], signal.SIGKILL)


def only_whole_rankings(send: Callable[[int], Any], expected: dict[int, list[str]],
                        tries: int, limit_s: float = 120) -> None:
    """After a replica was lost: `send(i)` for query i % len(expected), bounded in count and
    time; each answer is the whole expected ranking or a 503 naming the shard, and the last
    one is a ranking again (Serve replaced the replica)."""
    statuses = []
    deadline = time.monotonic() + limit_s
    for i in range(tries):
        if time.monotonic() > deadline:
            break
        response = send(i % len(expected))
        statuses.append(response.status_code)
        if response.status_code == 200:
            assert [r["model_id"] for r in response.json()["results"]] == \
                expected[i % len(expected)]
        else:
            assert response.status_code == 503 and "shard" in response.json()["error"]
    assert statuses[-1] == 200, statuses
