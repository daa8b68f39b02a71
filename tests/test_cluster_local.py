"""The local multi-node stack as users run it: S3 + MLflow (artifacts in S3) + a Ray head and 2
worker nodes on one machine, `status`/`env` from another process, a training job submitted
through the Jobs API whose 2 DDP workers land on 2 different nodes, and the loss of one of those
nodes mid-run: the job resumes from its last checkpoint on a replacement node and finishes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.conftest import REPO
from tests.ray_jobs import submit

pytestmark = pytest.mark.slow

STEPS = 12
SYNTH = ["--models", "16", "--instances", "2", "--queries", "8", "--seed", "5",
         "--height", "64", "--width", "128", "--local"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator:
    from cluster.local import bring_up, tear_down

    state = bring_up(str(tmp_path_factory.mktemp("cluster")), workers=2)
    try:
        yield state
    finally:
        tear_down(state, timeout_s=3.0)  # nodes that ran jobs may take 15 s to stop gracefully
        shutil.rmtree(state.temp_root, ignore_errors=True)


def s3_client(stack):
    import boto3

    access, secret = stack.credentials()
    return boto3.client("s3", endpoint_url=stack.s3_endpoint, aws_access_key_id=access,
                        aws_secret_access_key=secret, region_name="us-east-1")


def s3_keys(stack, prefix: str) -> list[str]:
    pages = s3_client(stack).get_paginator("list_objects_v2").paginate(
        Bucket=stack.bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def cli(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cluster", *args, "--state-dir", stack.state_dir],
                          cwd=REPO, capture_output=True, text=True, timeout=60)


def test_up_reports_healthy_nodes_and_is_idempotent(stack):
    from cluster.local import bring_up, check

    health = check(stack)
    assert health.healthy, health.services
    assert set(health.services) == {"s3", "mlflow", "head", "worker_1", "worker_2"}
    assert len(health.nodes) == 3 and sum(n["is_head"] for n in health.nodes) == 1
    workers = [n for n in health.nodes if not n["is_head"]]
    assert sorted(r for n in workers for r in n["resources"] if r.startswith("worker_")) == [
        "worker_1", "worker_2"]
    assert all(n["resources"]["CPU"] == 2 for n in workers)

    status = cli(stack, "status")
    assert status.returncode == 0, status.stderr
    assert status.stdout.count("healthy") == 5 and "ray nodes alive: 3" in status.stdout
    exports = cli(stack, "env").stdout
    for variable in (f"RAY_ADDRESS={stack.ray_address}", f"MLFLOW_TRACKING_URI={stack.mlflow_url}",
                     f"AWS_ENDPOINT_URL={stack.s3_endpoint}", "MLFLOW_S3_ENDPOINT_URL="):
        assert variable in exports

    again = bring_up(stack.state_dir, workers=2)
    assert {k: s.pid for k, s in again.services.items()} == {
        k: s.pid for k, s in stack.services.items()}


def wait_for(check, timeout_s: float, what: str, interval_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"{what}: not after {timeout_s:.0f} s")


def job_running(client, job: str) -> bool:
    status = job_end(client, job)
    if status is not None:
        raise AssertionError(f"job ended early ({status}):\n{client.get_job_logs(job)[-4000:]}")
    return True


def job_end(client, job: str):
    """The job's final status, or None while it runs."""
    from ray.job_submission import JobStatus

    status = client.get_job_status(job)
    return status if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED) else None


def test_training_spans_worker_nodes_and_survives_losing_one(stack):
    from mlflow import MlflowClient
    from ray.job_submission import JobStatus, JobSubmissionClient

    from cluster.local import add_worker, check, kill_worker
    from cluster.ray_local import alive_nodes

    data = f"s3://{stack.bucket}/data"
    made = subprocess.run([sys.executable, "-m", "jobs.synth", "--out", data, *SYNTH], cwd=REPO,
                          capture_output=True, text=True, timeout=180,
                          env={**os.environ, **stack.env(with_keys=True)})
    assert made.returncode == 0, made.stderr[-3000:]

    client = JobSubmissionClient(stack.dashboard_url)
    overrides = [f"data.refdb={data}/references", f"data.val_queries={data}/queries",
                 f"ray.storage_path=s3://{stack.bucket}/ray", "ray.run_name=spread",
                 f"mlflow.tracking_uri={stack.mlflow_url}", f"optim.steps={STEPS}",
                 "schedule.checkpoint_every=4", "schedule.log_every=2", "optim.batch_models=2",
                 "data.label=model", "model.embed_dim=16", "ray.cpus_per_worker=1.5"]
    job = submit(client, "jobs.train_crisp", ["--config", "configs/crisp_tiny.yaml", *overrides],
                 python="python", excludes=[".git", ".venv", "runs"])

    # The first checkpoint is in S3 and training has gone past it: now lose a node.
    wait_for(lambda: job_running(client, job) and "spread/step_0000004/train_state.pt" in
             " ".join(s3_keys(stack, "ray/spread/")) and "step 6/" in client.get_job_logs(job),
             360, "first checkpoint", interval_s=2.0)
    tracking = MlflowClient(tracking_uri=stack.mlflow_url)
    run = tracking.search_runs([tracking.get_experiment_by_name("crisp").experiment_id])[0]
    placed = run.data.tags["worker_nodes"].split(",")
    nodes = {n["node_id"]: n for n in alive_nodes(stack.dashboard_url)}
    assert len(set(placed)) == 2 and not any(nodes[n]["is_head"] for n in placed), placed
    victim = next(r for r in nodes[placed[1]]["resources"] if r.startswith("worker_"))
    kill_worker(stack, victim)
    assert not check(stack).services[victim]
    replacement = add_worker(stack, victim)  # what an autoscaler does for a lost machine

    status = wait_for(lambda: job_end(client, job), 420, "job end", interval_s=2.0)
    logs = client.get_job_logs(job)
    assert status == JobStatus.SUCCEEDED, logs[-4000:]
    resumed = [int(s) for s in re.findall(r"resumed from checkpoint at step (\d+)", logs)]
    assert resumed and min(resumed) >= 4, logs[-4000:]
    assert check(stack).healthy

    run = tracking.get_run(run.info.run_id)
    assert max(m.step for m in tracking.get_metric_history(run.info.run_id, "loss")) == STEPS
    final_placement = run.data.tags["worker_nodes"].split(",")
    assert set(final_placement) == {placed[0], replacement}, (placed, final_placement)
    version = tracking.get_model_version_by_alias("crisp-encoder", "current")
    assert version.run_id == run.info.run_id and version.source.startswith("mlflow-artifacts:")
    artifacts = s3_keys(stack, "mlflow/")
    assert any(run.info.run_id in key and "/encoder/" in key for key in artifacts), artifacts
    assert any(key.startswith(f"ray/spread/step_{STEPS:07d}/") for key in s3_keys(stack, "ray/"))
