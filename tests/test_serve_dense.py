"""Dense matching over HTTP. The dense cascade, `/v1/search`'s default on an index with scan
maps, ranks exactly as `SearchIndex.cascade` in process, says which stages ran, scores small
galleries exhaustively and never returns a partial ranking when a shard replica dies. `rerank`
(cells + dense) ranks exactly as `jobs.evaluate --matcher cells+dense`; prints at another scale
are resampled; a probe that cannot be matched is a 400 with the reason, and rerank or the
cascade on an index without their maps a 409."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import numpy as np
import pytest

from cluster.processes import free_port
from shoematch.data.dataset import open_dataset
from shoematch.data.images import decode_image, encode_png
from shoematch.data.readers.placement import scale
from shoematch.dense.matcher import DenseConfig, DenseMatcher
from shoematch.index.layout import read_manifest
from shoematch.index.reader import SearchIndex
from tests.conftest import REPO
from tests.ray_jobs import kill_shard_replica, only_whole_rankings, submit, wait_job
from tests.test_reindex import run_local

DENSE_CONFIG = ["block=2", "px_per_cm=5"]
RERANK = 8


def search(url: str, print_png: bytes, mask_png: bytes | None = None, **data) -> httpx.Response:
    files = {"print": ("print.png", print_png, "image/png")}
    if mask_png is not None:
        files["mask"] = ("mask.png", mask_png, "image/png")
    return httpx.post(f"{url}/v1/search", files=files, data=data, timeout=120)


@pytest.fixture(scope="module")
def dense_service(tiny_refs, random_encoder, tmp_path_factory, ray_head):
    """A dense index (3 shards) served by 2 slots; yields (url, index root)."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    root = str(tmp_path_factory.mktemp("dense-served") / "index")
    built = run_local("--model", random_encoder, "--refdb", f"{tiny_refs}/references", "--out",
                      root, "--shards", "3", "--local", "--dense", "--dense-config",
                      *DENSE_CONFIG)
    assert built.returncode == 0, built.stderr
    port = free_port()
    client = JobSubmissionClient(ray_head.url)
    # The float query encoder: `jobs.evaluate` encodes eagerly, and the int8 default may pick
    # other first-stage candidates (tests/test_serve.py compares the int8 path itself).
    job = submit(client, "jobs.serve_index", ["--index", root, "--slots", "2", "--port",
                                              str(port), "--set", "shard_timeout_s=60",
                                              "encoder_runtime=onnx"])
    try:
        assert wait_job(client, job, 300) == JobStatus.SUCCEEDED, client.get_job_logs(job)[-4000:]
        yield f"http://127.0.0.1:{port}", root
    finally:
        wait_job(client, submit(client, "jobs.serve_index", ["--shutdown"]), 120)


@pytest.fixture(scope="module")
def queries(tiny_refs) -> list[dict]:
    return list(open_dataset(f"{tiny_refs}/queries").iter_records())


def test_rerank_ranks_as_evaluate_cells_plus_dense(dense_service, queries, tiny_refs,
                                                   random_encoder, tmp_path):
    url, _ = dense_service
    out = tmp_path / "eval"
    evaluated = subprocess.run(
        [sys.executable, "-m", "jobs.evaluate", "--model", random_encoder, "--refdb",
         f"{tiny_refs}/references", "--queries", f"{tiny_refs}/queries", "--k", "16",
         "--matcher", "cells+dense", "--rerank-n", str(RERANK), "--dense-config",
         *DENSE_CONFIG, "--out", str(out)], cwd=REPO, capture_output=True, text=True,
        timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["matcher"] == "cells+dense" and report["first_stage"]["n"] == RERANK
    expected = {q["query_id"]: q["top10"] for q in report["per_query"]}
    for record in queries[:4]:
        response = search(url, record["print"], record["mask"], k="16", rerank=str(RERANK))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["reranked"] and body["rerank"] == RERANK
        ranked = [r["model_id"] for r in body["results"]]
        assert ranked[:10] == expected[record["query_id"]]
        dense = [r["dense_score"] for r in body["results"]]
        head = [d if d is not None else -np.inf for d in dense[:RERANK]]
        assert head == sorted(head, reverse=True) and all(d is None for d in dense[RERANK:])
        assert body["timings_ms"]["rerank"] > 0
    plain = search(url, queries[0]["print"], queries[0]["mask"], k="16", matcher="cells").json()
    assert not plain["reranked"] and plain["results"][0]["dense_score"] is None
    assert plain["matcher"] == "cells" and plain["stages"] == [
        {"stage": "cells", "references": 32, "kept": None}]


def in_process_cascade(root: str, record: dict, k: int, n: int) -> list[tuple[str, float]]:
    manifest = read_manifest(root)
    matcher = DenseMatcher(DenseConfig.model_validate(manifest.dense.config))
    image = decode_image(record["print"], "print")
    mask = decode_image(record["mask"], "mask") > 127
    variants = [(f.numpy(), v.numpy())
                for f, v in matcher.probe_variants(image, mask, manifest.px_per_cm)]
    return [(m.model, score) for m, score in SearchIndex.load(root).cascade(variants, k, n)]


def test_cascade_is_the_default_and_ranks_as_in_process(dense_service, queries):
    url, root = dense_service
    for record in queries[:3]:
        response = search(url, record["print"], record["mask"], k="10", candidates="6")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["matcher"] == "cascade" and not body["reranked"]
        assert body["stages"] == [{"stage": "scan", "references": 32, "kept": 6},
                                  {"stage": "exact", "references": 6, "kept": None}]
        assert body["p_top10"] is None and "no calibrated probability" in body[
            "confidence_reason"]
        assert all(r["score"] == r["dense_score"] for r in body["results"]
                   if r["dense_score"] is not None)  # what ranked it: the exact score
        expected = in_process_cascade(root, record, 10, 6)
        assert [r["model_id"] for r in body["results"]] == [m for m, _ in expected]
        np.testing.assert_allclose(
            [np.nan if r["dense_score"] is None else r["dense_score"] for r in body["results"]],
            [np.nan if s is None or not np.isfinite(s) else s for _, s in expected], atol=1e-4)
    everything = search(url, queries[0]["print"], queries[0]["mask"], k="10",
                        candidates="32").json()  # no more references than candidates
    assert everything["stages"] == [{"stage": "exact", "references": 32, "kept": None}]
    assert [r["model_id"] for r in everything["results"]] == [
        m for m, _ in in_process_cascade(root, queries[0], 10, 32)]


def test_cascade_bad_input_gets_400_with_the_reason(dense_service, queries):
    url, root = dense_service
    manifest = read_manifest(root)
    record = queries[0]
    shape = decode_image(record["print"], "print").shape
    # one dense feature cell visible: the dense matcher takes it, the scan's 2×2 cells do not
    side = round(manifest.dense.stride * manifest.px_per_cm / manifest.dense.px_per_cm)
    one_cell = np.zeros(shape, np.uint8)
    one_cell[8:8 + side, 16:16 + side] = 255
    cases = [
        (encode_png(one_cell), {"candidates": "6"}, "covers no first-stage cell"),
        (record["mask"], {"candidates": "0"}, "candidates must be"),
        (record["mask"], {"matcher": "nearest"}, "matcher must be one of"),
        (record["mask"], {"matcher": "cascade", "rerank": "4"}, "rerank applies to the cell"),
        (record["mask"], {"px_per_cm": str(manifest.px_per_cm * 10)}, "outside what index"),
    ]
    for mask, data, reason in cases:
        response = search(url, record["print"], mask, **data)
        assert response.status_code == 400, (reason, response.text)
        assert reason in response.json()["error"]


def test_print_at_another_scale_is_resampled(dense_service, queries):
    url, _ = dense_service
    index = httpx.get(f"{url}/v1/index", timeout=30).json()
    assert index["dense"]["bytes_per_reference"] > 0
    image = decode_image(queries[0]["print"], "print")
    half = encode_png(scale(image, 0.5))  # a print photographed at half the resolution
    response = search(url, half, rerank="4", px_per_cm=str(index["px_per_cm"] / 2))
    assert response.status_code == 200, response.text
    assert response.json()["reranked"] and len(response.json()["results"]) == 16


def test_unmatchable_probes_get_400_with_the_reason(dense_service, queries):
    url, _ = dense_service
    record = queries[0]
    shape = decode_image(record["print"], "print").shape
    empty = np.zeros(shape, np.uint8)
    speck = empty.copy()
    speck[shape[0] // 2, shape[1] // 2] = 255  # one visible pixel: below the feature stride
    cases = [
        (encode_png(empty), {"rerank": "4"}, "mask is empty"),
        (encode_png(speck), {"rerank": "4"}, "smaller than the feature stride"),
        (record["mask"], {"rerank": "100000"}, "rerank must be"),
        (record["mask"], {"rerank": "4", "px_per_cm": "0"}, "px_per_cm must be"),
    ]
    for mask, data, reason in cases:
        response = search(url, record["print"], mask, **data)
        assert response.status_code == 400, (reason, response.text)
        assert reason in response.json()["error"]


def test_killed_shard_replica_never_returns_a_partial_cascade(dense_service, queries,
                                                             ray_head):
    url, root = dense_service
    expected = {i: [m for m, _ in in_process_cascade(root, queries[i], 10, 6)] for i in range(3)}
    kill_shard_replica(ray_head.url)
    only_whole_rankings(lambda i: search(url, queries[i]["print"], queries[i]["mask"], k="10",
                                         candidates="6"), expected, 20)


def test_rerank_without_dense_maps_is_a_409(dense_service, queries, random_encoder, tiny_refs):
    url, root = dense_service
    plain = run_local("--model", random_encoder, "--refdb", f"{tiny_refs}/references", "--out",
                      root, "--shards", "3", "--local")  # a new version without dense maps
    assert plain.returncode == 0, plain.stderr
    assert httpx.post(f"{url}/v1/index/reload", timeout=120).json()["changed"]
    response = search(url, queries[0]["print"], queries[0]["mask"], rerank="4")
    assert response.status_code == 409
    assert "no dense feature maps" in response.json()["error"]
    response = search(url, queries[0]["print"], queries[0]["mask"], matcher="cascade")
    assert response.status_code == 409 and "no dense scan maps" in response.json()["error"]
    default = search(url, queries[0]["print"], queries[0]["mask"])
    assert default.status_code == 200 and default.json()["matcher"] == "cells"
