"""Fault: the object store goes away during a re-index. The job fails with a clear error, and
the previous index version stays current and servable once the store is back."""

from __future__ import annotations

import numpy as np

from cluster.s3 import ensure_bucket, start_s3
from shoematch.index.layout import list_versions, read_current
from shoematch.index.reader import SearchIndex
from tests.ray_jobs import submit, wait_job

KEYS = {"AWS_ACCESS_KEY_ID": "fault-key", "AWS_SECRET_ACCESS_KEY": "fault-secret",
        "AWS_REGION": "us-east-1"}


def test_store_stopped_during_reindex_keeps_previous_version(tiny_refs, random_encoder,
                                                             tmp_path, ray_head, monkeypatch):
    from ray.job_submission import JobStatus, JobSubmissionClient

    data_dir = str(tmp_path / "s3")
    store = start_s3(data_dir, env=KEYS)
    port = int(store.url.rsplit(":", 1)[1])
    env = {**KEYS, "AWS_ENDPOINT_URL": store.url}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    ensure_bucket(store.url, "fault", KEYS["AWS_ACCESS_KEY_ID"], KEYS["AWS_SECRET_ACCESS_KEY"])
    root = "s3://fault/index"
    client = JobSubmissionClient(ray_head.url)
    args = ["--model", random_encoder, "--refdb", f"{tiny_refs}/references", "--out", root,
            "--shards", "2"]
    try:
        first = submit(client, "jobs.reindex", args, env)
        assert wait_job(client, first, 300) == JobStatus.SUCCEEDED, \
            client.get_job_logs(first)[-3000:]
        published = read_current(root)

        second = submit(client, "jobs.reindex", args, env)
        wait_job(client, second, 300, until=lambda logs: "re-indexing" in logs)
        store.stop()  # the store disappears while the job runs
        status = wait_job(client, second, 400)
        logs = client.get_job_logs(second)
        assert status == JobStatus.FAILED, logs[-3000:]
        errors = [line for line in logs.splitlines() if line.startswith("error: ")]
        assert errors and "s3://fault" in errors[-1], logs[-6000:]
        print(errors[-1])
    finally:
        store.stop()
    store = start_s3(data_dir, port=port, env=KEYS)  # the store comes back, data intact
    try:
        assert read_current(root) == published
        assert list_versions(root) == [published]
        index = SearchIndex.load(root)
        queries = np.random.default_rng(0).standard_normal((1, 8, 16)).astype(np.float32)
        assert len(index.search(queries, 5)[0]) == 5
    finally:
        store.stop()
