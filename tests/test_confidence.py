"""Scores an examiner can read on the cell index: gallery moments from the scan, the per-version
calibrator fitted by `jobs.calibrate`, and the `z` / `p_top10` / `confident` fields of
`/v1/search` (null until the version is calibrated, picked up on reload)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys

import httpx
import numpy as np
import pytest

from serve.local import local_api
from shoematch.data.dataset import open_dataset
from shoematch.errors import QueryError
from shoematch.index.calibration import fit_calibration, query_evidence
from shoematch.index.reader import SearchIndex
from shoematch.index.search import SearchStats
from shoematch.retrieval.calibration import TopTenCalibrator
from shoematch.retrieval.confidence import (
    GalleryMoments,
    load_calibrator,
    ranking_evidence,
    save_calibrator,
)
from shoematch.storage import open_store
from tests.conftest import REPO


def test_moments_add_up_over_parts_and_standardise() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(3.0, 2.0, 500)
    whole, parts = GalleryMoments(), [GalleryMoments(), GalleryMoments()]
    whole.add(np.append(scores, -np.inf))  # an unscorable reference takes no part
    parts[0].add(scores[:200])
    parts[1].add(scores[200:])
    merged = parts[0].merged(parts[1])
    assert merged.count == whole.count == 500
    assert np.allclose(merged.mean_std(), (scores.mean(), scores.std()))
    assert np.allclose(whole.z([scores.mean()]), [0.0], atol=1e-9)
    evidence = ranking_evidence(sorted(scores, reverse=True)[:12], whole)
    assert evidence[1] == pytest.approx(evidence[0] - evidence[2]) and evidence[1] > 0
    with pytest.raises(QueryError, match="fewer than two"):
        GalleryMoments(1, 1.0, 1.0).mean_std()


def test_scan_moments_describe_the_exact_scores(tiny_index, tiny_refs, random_encoder) -> None:
    """The scan's estimates over every reference (both shards) give the mean and spread of the
    exact scores (int8 error only)."""
    from shoematch.crisp.store import load_encoder
    from shoematch.data.images import decode_image
    from shoematch.index.encoding import query_cells

    index = SearchIndex.load(tiny_index)
    record = next(open_dataset(f"{tiny_refs}/queries").iter_records())
    mask = decode_image(record["mask"], "mask") > 127
    cells, _ = query_cells(load_encoder(random_encoder).model.eval(),
                           decode_image(record["print"], "print")[None], mask[None])
    stats = SearchStats()
    index.search(cells, 5, None, stats)
    exact = np.concatenate([shard.searcher.exact_scores(
        cells[0], np.arange(len(shard.searcher)), list(range(shard.searcher.grid_cells)))
        for shard in index.shards])
    assert stats.moments[0].count == len(exact)
    mean, std = stats.moments[0].mean_std()
    assert mean == pytest.approx(exact.mean(), abs=0.02 * std + 1e-3)
    assert std == pytest.approx(exact.std(), rel=0.05)


@pytest.fixture
def index_copy(tiny_index, tmp_path) -> str:
    """A private copy: calibrating must not change the shared index other tests serve."""
    root = str(tmp_path / "index")
    shutil.copytree(tiny_index, root)
    return root


def test_calibrator_round_trip_per_version(index_copy) -> None:
    store = open_store(index_copy)
    version = SearchIndex.load(index_copy).version
    assert load_calibrator(store, version) is None
    save_calibrator(store, version, TopTenCalibrator([1.0, 0.5, -0.2], -0.3, 0.6), {"queries": 9})
    loaded = load_calibrator(store, version)
    assert loaded is not None and loaded.coef == [1.0, 0.5, -0.2] and loaded.threshold == 0.6


def test_served_scores_are_readable_and_calibrated_after_reload(index_copy, tiny_refs) -> None:
    app, gateway = local_api({"index": index_copy, "slots": 2, "shard_timeout_s": 20})
    loop = asyncio.new_event_loop()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
    record = next(open_dataset(f"{tiny_refs}/queries").iter_records())
    files = {"print": ("p.png", record["print"], "image/png"),
             "mask": ("m.png", record["mask"], "image/png")}

    def search() -> dict:
        response = loop.run_until_complete(client.post("/v1/search", files=files,
                                                       data={"k": "5"}))
        assert response.status_code == 200, response.text
        return response.json()

    try:
        before = search()
        assert before["p_top10"] is None and before["confident"] is None
        z = [r["z"] for r in before["results"]]
        assert len(z) == 5 and z == sorted(z, reverse=True) and z[0] > 0
        version = SearchIndex.load(index_copy).version
        save_calibrator(open_store(index_copy), version,
                        TopTenCalibrator([1.0, 0.5, 0.5], -1.0, 0.5), {"queries": "test"})
        reloaded = loop.run_until_complete(client.post("/v1/index/reload")).json()
        assert reloaded["changed"] is False  # same version, calibrator picked up anyway
        after = search()
        assert 0.0 <= after["p_top10"] <= 1.0
        assert after["confident"] is (after["p_top10"] >= 0.5)
        assert [r["model_id"] for r in after["results"]] == \
            [r["model_id"] for r in before["results"]]
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()


def test_query_evidence_is_the_served_search(tiny_index, tiny_refs) -> None:
    """Evidence and hits come from the index's own search of each query; a cross-validated fit
    on well-separated evidence is calibrated."""
    index = SearchIndex.load(tiny_index)
    features, hits = query_evidence(index, open_dataset(f"{tiny_refs}/queries"), None)
    assert features.shape == (8, 3) and hits.shape == (8,)
    assert np.allclose(features[:, 1], features[:, 0] - features[:, 2])
    rng = np.random.default_rng(1)
    separable = rng.normal(0, 1, (200, 3))
    labels = separable[:, 0] + 0.3 * rng.normal(size=200) > 0
    fit = fit_calibration(separable, labels, folds=5)
    assert fit.queries == 200 and fit.ece < 0.15 and len(fit.reliability) >= 2


@pytest.mark.parametrize(("folds", "message"), [
    ("5", "calibration needs at least 10"),
    ("2", "both inside and outside the top 10"),  # every tiny query finds its model
])
def test_calibrate_refuses_what_it_cannot_fit(index_copy, tiny_refs, folds, message) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jobs.calibrate", "--index", index_copy, "--queries",
         f"{tiny_refs}/queries", "--split", "", "--folds", folds],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not open_store(index_copy).exists("calibration")
