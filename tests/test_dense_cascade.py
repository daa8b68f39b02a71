"""The dense cascade: the scan's reduction and scores, the ranking both the in-process search and
Serve use, and an index built with the scan component searched in process."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from shoematch.data.dataset import open_dataset
from shoematch.data.images import decode_image
from shoematch.dense.cascade import cascade_ranking
from shoematch.dense.matcher import DenseConfig, DenseMatcher
from shoematch.dense.rerank import variant_scores
from shoematch.dense.scan import (
    ScanGallery,
    fit_projection,
    reduce_references,
    scan_probe,
)
from shoematch.errors import IndexComponentMissing, QueryError
from shoematch.index.layout import read_manifest
from shoematch.index.reader import SearchIndex
from tests.test_reindex import run_local

DENSE = ["--dense", "--dense-config", "block=2", "px_per_cm=5", "--scan-config", "channels=8"]


def random_maps(n: int = 40, channels: int = 24, grid: tuple[int, int] = (12, 20),
                seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, channels, *grid, generator=generator)


def test_projection_is_orthonormal_and_ordered_by_variance():
    maps = random_maps()
    maps[:, 3] *= 10  # one channel carries most of the variance
    projection = fit_projection(maps, 4)
    basis = projection.basis
    np.testing.assert_allclose(basis.T @ basis, np.eye(4), atol=1e-5)
    assert abs(basis[3, 0]) > 0.99  # the first direction is that channel
    with pytest.raises(QueryError, match="scan channels 30"):
        fit_projection(maps, 30)


def test_a_crop_of_a_reference_scans_highest_against_it():
    maps = random_maps()
    projection = fit_projection(maps, 12)
    stored = reduce_references(maps, projection, 2)
    assert stored.dtype == np.float16 and stored.shape == (40, 12, 6, 10)
    gallery = ScanGallery(torch.from_numpy(stored), (6, 10))
    for target in (0, 17, 39):
        crop = maps[target, :, 2:10, 4:16]  # a partial print: 8×12 of 12×20 cells
        visible = torch.ones(crop.shape[-2:], dtype=torch.bool)
        probe = scan_probe(crop, visible, projection, 2, (12, 20))
        scores = gallery.scores([probe], min_overlap=0.5)
        assert int(np.argmax(scores)) == target
    allowed = np.ones(40, dtype=bool)
    allowed[17] = False
    probe = scan_probe(maps[17, :, 2:10, 4:16], torch.ones(8, 12, dtype=torch.bool),
                       projection, 2, (12, 20))
    assert gallery.scores([probe], 0.5, allowed)[17] == -math.inf


def test_a_probe_smaller_than_a_scan_cell_is_refused():
    maps = random_maps()
    projection = fit_projection(maps, 4)
    visible = torch.zeros(12, 20, dtype=torch.bool)
    visible[5, 5] = True  # one fine cell: a quarter of a 2×2 scan cell
    with pytest.raises(QueryError, match="covers no first-stage cell"):
        scan_probe(maps[0], visible, projection, 2, (12, 20))


@dataclass(frozen=True)
class Item:
    model: str
    score: float
    order: int


def test_cascade_ranking_puts_exact_scores_first_and_each_model_once():
    candidates = [Item("a", 9, 0), Item("b", 8, 1), Item("a", 7, 2), Item("c", 6, 3),
                  Item("d", 5, 4), Item("c", 4, 5)]
    ranked = cascade_ranking(candidates, [0.1, 0.5, 0.9, float("nan")])
    assert [(item.model, item.order, score) for item, score in ranked] == [
        ("a", 2, 0.9), ("b", 1, 0.5), ("c", 3, -math.inf), ("d", 4, None)]
    with pytest.raises(ValueError):
        cascade_ranking(candidates[:1], [1.0, 2.0])


@pytest.fixture(scope="module")
def cascade_index(tiny_refs, random_encoder, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("cascade") / "index")
    result = run_local("--model", random_encoder, "--refdb", f"{tiny_refs}/references",
                       "--out", out, "--local", "--shards", "2", *DENSE)
    assert result.returncode == 0, result.stderr
    return out


def probe_of(tiny_refs: str, matcher: DenseMatcher, px_per_cm: float):
    query = next(open_dataset(f"{tiny_refs}/queries").iter_records())
    image = decode_image(query["print"], query["query_id"])
    mask = decode_image(query["mask"], query["query_id"]) > 127
    return matcher.probe_variants(image, mask, px_per_cm)


def test_the_index_carries_the_scan_and_the_cascade_equals_exhaustive_when_n_covers_all(
        cascade_index, tiny_refs):
    manifest = read_manifest(cascade_index)
    scan = manifest.dense.scan
    assert scan is not None and scan.channels == 8 and scan.config["pool"] == 2
    assert scan.bytes_per_reference == 8 * scan.grid[0] * scan.grid[1] * 2
    index = SearchIndex.load(cascade_index)
    config = DenseConfig.model_validate(manifest.dense.config)
    matcher = DenseMatcher(config)
    variants = [(f.numpy(), v.numpy()) for f, v in
                probe_of(tiny_refs, matcher, manifest.px_per_cm)]
    total = manifest.references
    ranked = index.cascade(variants, k=total, n=total)
    assert all(score is not None for _, score in ranked)
    # the same exact scores as the dense matcher over every reference
    maps = np.concatenate([shard.dense for shard in index.shards])
    models = [m for shard in index.shards for m in
              shard.searcher.model_names[shard.searcher.model_codes].tolist()]
    from shoematch.dense.mcncc import ReferenceSpectra

    exact = variant_scores(variants, ReferenceSpectra(torch.from_numpy(maps.astype(np.float32))),
                           config.min_overlap)
    best: dict[str, float] = {}
    for model, value in zip(models, exact, strict=True):
        best[model] = max(best.get(model, -math.inf), float(value))
    assert [m.model for m, _ in ranked] == sorted(best, key=lambda m: -best[m])[:len(ranked)]
    np.testing.assert_allclose([s for _, s in ranked], sorted(best.values(), reverse=True),
                               atol=1e-5)
    small = index.cascade(variants, k=5, n=4)
    assert len(small) == 5 and sum(score is not None for _, score in small) <= 4


def test_an_index_without_the_scan_refuses_the_cascade(tiny_index):
    index = SearchIndex.load(tiny_index)
    with pytest.raises(IndexComponentMissing, match="no dense cascade"):
        index.cascade([(np.zeros((4, 3, 3), np.float32), np.ones((3, 3), bool))], 5, 10)
