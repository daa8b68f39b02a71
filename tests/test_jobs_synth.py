"""jobs.synth as users run it: in-process, on a local Ray instance, via `ray job submit`, to S3."""

import os
import subprocess
import sys

import pytest

from shoematch.data.dataset import open_dataset
from tests.conftest import REPO
from tests.ray_jobs import submit, wait_job

ARGS = ["--models", "6", "--instances", "2", "--queries", "5", "--seed", "3",
        "--shard-models", "4", "--shard-queries", "3"]


def run_job(*args: str, env: dict | None = None,
            timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs.synth", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=timeout, env={**os.environ, **(env or {})})


def checksums(root) -> dict:
    return {sub: [s.sha256 for s in open_dataset(f"{root}/{sub}").manifest.shards]
            for sub in ("references", "queries")}


def test_local_runs_are_identical_and_complete(tmp_path):
    for name in ("a", "b"):
        result = run_job("--out", str(tmp_path / name), "--local", *ARGS)
        assert result.returncode == 0, result.stderr
    assert checksums(tmp_path / "a") == checksums(tmp_path / "b")
    refs = open_dataset(str(tmp_path / "a" / "references"))
    assert len(refs) == 12 and len(refs.manifest.shards) == 2
    assert len(open_dataset(str(tmp_path / "a" / "queries"))) == 5
    assert (tmp_path / "a" / "contact_sheet.png").stat().st_size > 1000


def test_ray_job_submit_matches_local(tmp_path, ray_head):
    """Submitted through the Jobs API the way users do; shards equal an in-process run's."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    out = tmp_path / "submitted"
    client = JobSubmissionClient(ray_head.url)
    job = submit(client, "jobs.synth", ["--out", str(out), *ARGS])
    status = wait_job(client, job, 240)
    logs = client.get_job_logs(job)
    assert status == JobStatus.SUCCEEDED, logs
    assert "shards: 4/4" in logs
    local = run_job("--out", str(tmp_path / "local"), "--local", *ARGS)
    assert local.returncode == 0, local.stderr
    assert checksums(out) == checksums(tmp_path / "local")


def test_synth_to_s3(s3):
    result = run_job("--out", s3.uri("synth"), "--local", *ARGS)
    assert result.returncode == 0, result.stderr
    assert len(open_dataset(s3.uri("synth", "references"))) == 12
    open_dataset(s3.uri("synth", "queries")).verify()


def test_unreachable_s3_fails_clearly_and_leaves_nothing(s3, tmp_path):
    from cluster.processes import free_port

    result = run_job("--out", s3.uri("nowhere"), "--local", *ARGS,
                     env={"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}, timeout=60)
    assert result.returncode == 2
    assert "cannot reach S3 endpoint" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("bad", [["--models", "0"], ["--queries", "-1"]])
def test_bad_arguments(bad, tmp_path):
    result = run_job("--out", str(tmp_path / "x"), "--local", *bad, timeout=30)
    assert result.returncode == 2 and "must be" in result.stderr
