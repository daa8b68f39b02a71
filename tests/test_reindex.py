"""Re-indexing as a Ray job into a local folder and into s3://, incremental updates, and
inputs that fail before any cluster work."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from shoematch.data.dataset import DatasetWriter, open_dataset
from shoematch.index.layout import read_current, read_manifest
from shoematch.index.reader import SearchIndex
from shoematch.index.shard_io import read_shard
from shoematch.storage import open_store
from tests.conftest import REPO
from tests.ray_jobs import submit, wait_job


def s3_env() -> dict[str, str]:
    return {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                       "AWS_ENDPOINT_URL", "AWS_REGION") if k in os.environ}


def reindex_job(client, model: str, refdb: str, out: str, *extra: str,
                env: dict | None = None) -> str:
    from ray.job_submission import JobStatus

    job = submit(client, "jobs.reindex", ["--model", model, "--refdb", refdb, "--out", out,
                                          "--shards", "2", *extra], env)
    status = wait_job(client, job, 300)
    logs = client.get_job_logs(job)
    assert status == JobStatus.SUCCEEDED, logs[-4000:]
    return logs


def run_local(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs.reindex", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=240)


def check_index(root: str, refdb: str) -> None:
    manifest = read_manifest(root)
    references = open_dataset(refdb)
    assert manifest.references == len(references)
    assert manifest.counts["models"] == len(set(references.read_table(["model_id"])
                                                .column("model_id").to_pylist()))
    store = open_store(root)
    ids = []
    for entry in manifest.shards:
        data = read_shard(store, entry)  # checksums verified
        assert data.cells.dtype == np.float16 and data.cells.shape[1] == entry.rows
        norms = np.linalg.norm(data.cells.astype(np.float32), axis=-1)
        np.testing.assert_allclose(norms, 1.0, atol=2e-3)
        ids += data.metadata.column("instance_id").to_pylist()
    assert sorted(ids) == sorted(references.ids())
    assert manifest.label_sources["descriptors"] == {"label": len(references)}
    assert manifest.attribute_values


def test_reindex_job_to_local_folder_and_s3(tiny_refs, random_encoder, tmp_path, ray_head, s3):
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(ray_head.url)
    refdb = f"{tiny_refs}/references"
    local = str(tmp_path / "index")
    logs = reindex_job(client, random_encoder, refdb, local)
    assert "is current" in logs
    check_index(local, refdb)

    remote = s3.uri("index-job")
    reindex_job(client, random_encoder, refdb, remote, env=s3_env())
    check_index(remote, refdb)
    # Same encoder, same records: the two indexes rank identically.
    queries = np.random.default_rng(0).standard_normal((2, 8, 16)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=-1, keepdims=True)
    a = SearchIndex.load(local).search(queries, 5)
    b = SearchIndex.load(remote).search(queries, 5)
    assert [[m.model for m in r] for r in a] == [[m.model for m in r] for r in b]


def test_incremental_reindex_reuses_unchanged_shards(tiny_refs, random_encoder, tmp_path):
    full = open_dataset(f"{tiny_refs}/references")
    records = list(full.iter_records())
    half = str(tmp_path / "half")
    with DatasetWriter(half, "references", full.canvas, "test") as writer:
        writer.add(records[: len(records) // 2])
    out = str(tmp_path / "index")
    first = run_local("--model", random_encoder, "--refdb", half, "--out", out, "--local",
                      "--shards", "2")
    assert first.returncode == 0, first.stderr
    v1 = read_manifest(out)
    second = run_local("--model", random_encoder, "--refdb", full.uri, "--out", out, "--local",
                       "--shards", "2", "--incremental")
    assert second.returncode == 0, second.stderr
    v2 = read_manifest(out)
    assert v2.version != v1.version and v2.previous_version == v1.version and v2.incremental
    assert {e.id for e in v1.shards} <= {e.id for e in v2.shards}
    assert f"encoded {len(records) - len(records) // 2} " in second.stdout
    # The incremental index ranks exactly as a full rebuild.
    rebuilt = str(tmp_path / "rebuilt")
    assert run_local("--model", random_encoder, "--refdb", full.uri, "--out", rebuilt,
                     "--local").returncode == 0
    queries = np.random.default_rng(1).standard_normal((3, 8, 16)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=-1, keepdims=True)
    a = SearchIndex.load(out).search(queries, 10)
    b = SearchIndex.load(rebuilt).search(queries, 10)
    assert [[(m.model, m.instance_id) for m in r] for r in a] == \
        [[(m.model, m.instance_id) for m in r] for r in b]


@pytest.mark.parametrize("case, message", [
    ("no_manifest", "manifest"),
    ("unknown_model", "no such directory"),
    ("incremental_without_index", "no current index"),
])
def test_bad_inputs_fail_before_cluster_work(case, message, tiny_refs, random_encoder, tmp_path):
    args = {"model": random_encoder, "refdb": f"{tiny_refs}/references",
            "out": str(tmp_path / "index")}
    extra = []
    if case == "no_manifest":
        args["refdb"] = str(tmp_path)
    elif case == "unknown_model":
        args["model"] = str(tmp_path / "nope")
    else:
        extra = ["--incremental"]
    result = run_local("--model", args["model"], "--refdb", args["refdb"], "--out",
                       args["out"], *extra)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert read_current(args["out"]) is None
