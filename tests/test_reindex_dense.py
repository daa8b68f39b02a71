"""The optional dense index component: written by both executors (Ray Data and --local) with
checksums and its description in the manifest, kept by incremental updates, refused when the
component differs or the reference db has no physical scale."""

from __future__ import annotations

import numpy as np

from shoematch.data.dataset import DatasetWriter, open_dataset
from shoematch.index.layout import read_manifest
from shoematch.index.shard_io import read_shard
from shoematch.storage import open_store
from tests.ray_jobs import submit, wait_job
from tests.test_reindex import run_local

DENSE = ["--dense", "--dense-config", "block=2", "px_per_cm=5"]


def maps_by_instance(root: str) -> dict[str, np.ndarray]:
    manifest = read_manifest(root)
    store = open_store(root)
    out = {}
    for entry in manifest.shards:
        assert entry.dense_sha256
        data = read_shard(store, entry)  # checksums verified
        assert data.dense is not None and data.dense.dtype == np.float16
        assert data.dense.shape == (entry.rows, manifest.dense.channels, *manifest.dense.grid)
        out.update(zip(data.metadata.column("instance_id").to_pylist(), data.dense,
                       strict=True))
    return out


def test_ray_and_local_executors_write_the_same_dense_maps(tiny_refs, random_encoder, tmp_path,
                                                           ray_head):
    from ray.job_submission import JobStatus, JobSubmissionClient

    refdb = f"{tiny_refs}/references"
    client = JobSubmissionClient(ray_head.url)
    with_ray = str(tmp_path / "ray")
    job = submit(client, "jobs.reindex", ["--model", random_encoder, "--refdb", refdb, "--out",
                                          with_ray, "--shards", "2", *DENSE])
    assert wait_job(client, job, 300) == JobStatus.SUCCEEDED, client.get_job_logs(job)[-3000:]
    local = str(tmp_path / "local")
    result = run_local("--model", random_encoder, "--refdb", refdb, "--out", local, "--local",
                       *DENSE)
    assert result.returncode == 0, result.stderr
    manifest = read_manifest(with_ray)
    dense = manifest.dense
    assert dense is not None and manifest.px_per_cm == open_dataset(refdb).manifest.params[
        "px_per_cm"]
    assert dense.config["block"] == 2 and dense.px_per_cm == 5 and dense.stride == 4
    assert dense.bytes_per_reference == dense.channels * dense.grid[0] * dense.grid[1] * 2
    a, b = maps_by_instance(with_ray), maps_by_instance(local)
    assert sorted(a) == sorted(b) == sorted(open_dataset(refdb).ids())
    for instance, maps in a.items():
        np.testing.assert_allclose(maps.astype(np.float32), b[instance].astype(np.float32),
                                   atol=1e-2)


def test_incremental_keeps_dense_maps_and_refuses_another_component(tiny_refs, random_encoder,
                                                                    tmp_path):
    full = open_dataset(f"{tiny_refs}/references")
    records = list(full.iter_records())
    part = str(tmp_path / "part")
    with DatasetWriter(part, "references", full.canvas, "test", full.manifest.params) as writer:
        writer.add(records[: 3 * len(records) // 4])
    out = str(tmp_path / "index")
    common = ["--model", random_encoder, "--out", out, "--local", "--shards", "2"]
    assert run_local(*common, "--refdb", full.uri, *DENSE).returncode == 0
    before = maps_by_instance(out)
    update = run_local(*common, "--refdb", part, "--incremental", *DENSE)
    assert update.returncode == 0, update.stderr
    after = maps_by_instance(out)  # rewritten shards copy their kept rows' maps
    assert sorted(after) == sorted(open_dataset(part).ids())
    for instance, maps in after.items():
        np.testing.assert_array_equal(maps, before[instance])
    refused = run_local(*common, "--refdb", part, "--incremental")
    assert refused.returncode == 2 and "dense component" in refused.stderr
    other = run_local(*common, "--refdb", part, "--incremental", "--dense", "--dense-config",
                      "block=3")
    assert other.returncode == 2 and "dense component" in other.stderr


def test_dense_needs_the_reference_scale(tiny_refs, random_encoder, tmp_path):
    full = open_dataset(f"{tiny_refs}/references")
    unscaled = str(tmp_path / "unscaled")
    with DatasetWriter(unscaled, "references", full.canvas, "test") as writer:
        writer.add(list(full.iter_records())[:4])
    result = run_local("--model", random_encoder, "--refdb", unscaled, "--out",
                       str(tmp_path / "index"), "--local", *DENSE)
    assert result.returncode == 2 and "physical scale" in result.stderr, result.stderr
    assert unscaled in result.stderr and "Traceback" not in result.stderr
