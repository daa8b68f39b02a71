"""The device search (torch scan and exact pass) gives the CPU search's estimates, bounds and
rankings: run on the CPU here, and on CUDA as well when a GPU is present."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shoematch.index import device_search
from shoematch.index.device_search import DeviceShardSearcher
from shoematch.index.quantize import query_levels
from shoematch.index.search import ShardSearcher
from tests.test_index_search import (
    assert_same_ranking,
    best_model_scores,
    masked_queries,
    reference_ranking,
    unit_cells,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("visible", [0.4, 1.0])
def test_device_search_equals_the_cpu_search(device, visible, monkeypatch):
    """Same estimates and bounds as the numba scan (the integer products are exact), and the
    reference method's ranking, with scan chunks smaller than the shard."""
    monkeypatch.setattr(device_search, "CHUNK", 256)
    rng = np.random.default_rng(5)
    cells = unit_cells(rng, 900, dim=128)
    models = [f"m{int(i)}" for i in rng.integers(0, 300, 900)]
    queries = masked_queries(rng, 4, 12, 128, visible)
    cpu, on_device = ShardSearcher(cells, models), DeviceShardSearcher(cells, models, device)
    for query in queries:
        estimate, bound, visible_cells = cpu.score_bounds(query)
        device_estimate, device_bound, device_cells = on_device.score_bounds(query)
        assert device_cells == visible_cells
        np.testing.assert_allclose(device_estimate, estimate, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(device_bound, bound, rtol=1e-12, atol=1e-12)
    for k in (1, 10, 100):
        for query, hits in zip(queries, on_device.search(queries, k), strict=True):
            assert_same_ranking([h.model for h in hits],
                                reference_ranking(cells, models, query, k),
                                best_model_scores(cells, models, query))


def test_split_products_are_exact_at_the_code_limits():
    """The largest int8 codes against the largest int16 query codes of both signs: the split
    float32 products equal the int64 ones."""
    levels = query_levels(128)
    codes = torch.tensor([[127] * 128, [-127] * 128, [127, -127] * 64], dtype=torch.int8)
    query = torch.tensor([levels] * 64 + [-levels] * 64, dtype=torch.int32)
    low = query & 255
    halves = torch.stack([(query - low) // 256, low], dim=-1).float()
    dots = (codes.float() @ halves).double()
    exact = (codes.long() @ query.long()).double()
    assert torch.equal(dots[:, 0] * 256 + dots[:, 1], exact)


def test_filters_and_truth_rows_on_the_device():
    rng = np.random.default_rng(9)
    cells = unit_cells(rng, 400, dim=32)
    models = [f"m{i // 2}" for i in range(400)]
    allowed = rng.random(400) < 0.3
    query = masked_queries(rng, 1, 12, 32, 0.6)
    cpu = ShardSearcher(cells, models).search(query, 15, [allowed])[0]
    on_device = DeviceShardSearcher(cells, models, "cpu").search(query, 15, [allowed])[0]
    assert [h.model for h in on_device] == [h.model for h in cpu]
    np.testing.assert_allclose([h.score for h in on_device], [h.score for h in cpu], rtol=1e-6)


def test_an_index_loaded_onto_a_device_answers_as_on_the_cpu(tiny_index):
    """What a shard replica with a GPU share loads (`SearchIndex.load(device=…)`): the same
    matches, scores and per-cell evidence; here the device is the CPU."""
    from shoematch.index.reader import SearchIndex

    on_cpu, on_device = SearchIndex.load(tiny_index), SearchIndex.load(tiny_index,
                                                                       device="cpu")
    assert all(isinstance(s.searcher, DeviceShardSearcher) for s in on_device.shards)
    rng = np.random.default_rng(2)
    dim, cells = on_cpu.manifest.dim, on_cpu.cell_count
    queries = masked_queries(rng, 3, cells, dim, 0.5)
    expected, got = on_cpu.search(queries, 10), on_device.search(queries, 10)
    assert [[m.model for m in hits] for hits in got] == \
        [[m.model for m in hits] for hits in expected]
    for mine, theirs in zip(got[0], expected[0], strict=True):
        assert mine.score == pytest.approx(theirs.score, rel=1e-6)
        np.testing.assert_allclose(mine.cell_scores, theirs.cell_scores, rtol=1e-6)
