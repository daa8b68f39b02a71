"""The index's search is exact: same ranking as the reference method (docs/scoring-and-metrics.md,
full sort, first occurrence per model), across shards, with filters, ties and masked cells."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from shoematch.errors import QueryError
from shoematch.index import search as search_module
from shoematch.index.filters import FilterColumns, parse_filters
from shoematch.index.merge import merge_top_k
from shoematch.index.quantize import quantize_cells, quantize_query, query_levels
from shoematch.index.search import SearchStats, ShardSearcher
from shoematch.retrieval.metrics import rank_models


def unit_cells(rng: np.random.Generator, count: int, cells: int = 12, dim: int = 16,
               dtype=torch.float16) -> torch.Tensor:
    values = torch.from_numpy(rng.standard_normal((cells, count, dim), dtype=np.float32))
    return torch.nn.functional.normalize(values, dim=-1).to(dtype)


def masked_queries(rng: np.random.Generator, batch: int, cells: int, dim: int,
                   visible: float) -> torch.Tensor:
    queries = torch.nn.functional.normalize(
        torch.from_numpy(rng.standard_normal((batch, cells, dim), dtype=np.float32)), dim=-1)
    keep = torch.from_numpy(rng.random((batch, cells)) < visible)
    keep[:, 0] = True
    return queries * keep[..., None]


def reference_ranking(cells: torch.Tensor, models: list[str], query: torch.Tensor,
                      k: int) -> list[str]:
    flat = cells.float().permute(1, 0, 2).reshape(cells.shape[1], -1)
    return rank_models((flat @ query.reshape(-1)).numpy(), models, k)


def best_model_scores(cells: torch.Tensor, models: list[str],
                      query: torch.Tensor) -> dict[str, float]:
    """Each model's best score in float64: the truth that float32 sums approximate."""
    flat = cells.double().permute(1, 0, 2).reshape(cells.shape[1], -1)
    scores = (flat @ query.double().reshape(-1)).numpy()
    best: dict[str, float] = {}
    for model, score in zip(models, scores, strict=True):
        best[model] = max(best.get(model, -np.inf), float(score))
    return best


def assert_same_ranking(got: list[str], expected: list[str], best: dict[str, float],
                        tolerance: float = 1e-5) -> None:
    """Same models in the same order, except where two models' true scores are within float32
    summation error of each other (the scan and the reference sum cells in different orders)."""
    assert len(got) == len(expected) == len(set(got))
    for position, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
        assert mine == theirs or abs(best[mine] - best[theirs]) <= tolerance, \
            f"position {position}: {mine} ({best[mine]:.7f}) vs {theirs} ({best[theirs]:.7f})"


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("visible", [0.4, 1.0])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_search_equals_reference_method(seed, visible, dtype):
    rng = np.random.default_rng(seed)
    count = 900
    cells = unit_cells(rng, count, dtype=dtype)
    models = [f"m{int(i)}" for i in rng.integers(0, 300, count)]  # 1–several instances each
    queries = masked_queries(rng, 5, 12, 16, visible)
    searcher = ShardSearcher(cells, models)
    for k in (1, 10, 100):
        results = searcher.search(queries, k)
        for b in range(len(queries)):
            expected = reference_ranking(cells, models, queries[b], k)
            best = best_model_scores(cells, models, queries[b])
            assert_same_ranking([h.model for h in results[b]], expected, best)
            single = searcher.search(queries[b:b + 1], k)[0]  # the single-query kernel
            assert_same_ranking([h.model for h in single], expected, best)


@pytest.mark.parametrize("visible", [0.4, 1.0])
def test_exact_pass_is_exact_whatever_its_first_batch(visible, monkeypatch):
    """The first batch only sizes the work: one reference at a time (many rounds) or the whole
    queue gives the same ranking as the estimate-sized batch."""
    rng = np.random.default_rng(3)
    cells = unit_cells(rng, 900)
    models = [f"m{int(i)}" for i in rng.integers(0, 300, 900)]
    queries = masked_queries(rng, 3, 12, 16, visible)
    searcher = ShardSearcher(cells, models)
    sized = searcher.search(queries, 20)
    for size in (lambda *args: 1, lambda queue, *args: len(queue)):
        monkeypatch.setattr(search_module, "first_batch", size)
        assert searcher.search(queries, 20) == sized


def test_scan_bounds_hold():
    """The int8 estimate never misses the stored cells' score by more than its bound."""
    rng = np.random.default_rng(7)
    cells = unit_cells(rng, 500, cells=20, dim=32)
    queries = masked_queries(rng, 6, 20, 32, 0.5)
    searcher = ShardSearcher(cells, [str(i) for i in range(500)])
    flat = cells.float().permute(1, 0, 2).reshape(500, -1)
    exact = (flat @ queries.reshape(6, -1).T).numpy()
    for b in range(len(queries)):
        estimate, bound, visible = searcher.score_bounds(queries[b])
        assert visible == (queries[b].abs().sum(-1) > 0).nonzero().flatten().tolist()
        assert (np.abs(exact[:, b] - estimate) <= bound).all()
        assert float(bound.mean()) < 0.2  # tight enough to prune


def test_quantized_cells_error_bound():
    rng = np.random.default_rng(4)
    cells = unit_cells(rng, 64)
    quant = quantize_cells(cells, chunk=10)
    rebuilt = quant.codes.float() * quant.scales[..., None]
    error = torch.linalg.vector_norm(rebuilt - cells.float(), dim=-1)
    assert bool((error <= quant.errors).all())
    assert quant.max_norm >= float(torch.linalg.vector_norm(cells.float(), dim=-1).max())


def test_single_query_int16_codes_reconstruct_and_cannot_overflow():
    rng = np.random.default_rng(8)
    query = masked_queries(rng, 1, 8, 16, 0.5)[0]
    quant = quantize_query(query)
    error = torch.linalg.vector_norm(quant.codes.float() * quant.scale - query, dim=-1)
    assert bool((error <= quant.residual_norms).all())
    assert float(error.max()) < 1e-4
    for dim in (16, 128, 2048):  # worst-case per-cell product of int8 codes and int16 codes
        assert 127 * query_levels(dim) * dim <= 2**31 - 1


def test_ties_go_to_the_lower_instance_order():
    rng = np.random.default_rng(5)
    base = unit_cells(rng, 1)
    cells = base.repeat(1, 4, 1)  # four identical references
    searcher = ShardSearcher(cells, ["c", "b", "a", "b"], order_offset=10)
    query = masked_queries(rng, 1, 12, 16, 1.0)
    hits = searcher.search(query, 3)[0]
    assert [h.model for h in hits] == ["c", "b", "a"]
    assert [h.order for h in hits] == [10, 11, 12]


def test_merge_across_shards_equals_one_shard():
    rng = np.random.default_rng(6)
    cells = unit_cells(rng, 600)
    models = [f"m{int(i)}" for i in rng.integers(0, 150, 600)]
    queries = masked_queries(rng, 3, 12, 16, 0.5)
    whole = ShardSearcher(cells, models).search(queries, 50)
    parts = [ShardSearcher(cells[:, lo:hi], models[lo:hi], order_offset=lo)
             for lo, hi in ((0, 170), (170, 420), (420, 600))]
    per_shard = [p.search(queries, 50) for p in parts]
    for b in range(3):
        merged = merge_top_k([hits[b] for hits in per_shard], 50)
        assert [(h.model, h.order) for h in merged] == [(h.model, h.order) for h in whole[b]]


def test_filters_restrict_results_exactly():
    rng = np.random.default_rng(8)
    count = 300
    cells = unit_cells(rng, count)
    models = [f"m{i // 2}" for i in range(count)]
    metadata = pa.table({
        "descriptors": [["D02", "D08"] if i % 3 == 0 else ["D01"] for i in range(count)],
        "attributes": pa.array([[("colour", "black" if i % 2 else "white")]
                                for i in range(count)],
                               pa.map_(pa.string(), pa.string())),
    })
    columns = FilterColumns(metadata)
    filters = parse_filters({"descriptors": ["D02"], "attributes": {"colour": "black"}},
                            {"colour": ["black", "white"]})
    allowed = columns.mask(filters)
    assert allowed is not None and allowed.sum() == sum(
        1 for i in range(count) if i % 3 == 0 and i % 2 == 1)
    query = masked_queries(rng, 1, 12, 16, 0.6)
    hits = ShardSearcher(cells, models).search(query, 20, [allowed])[0]
    allowed_models = [m for m, ok in zip(models, allowed, strict=True) if ok]
    flat = cells.float().permute(1, 0, 2).reshape(count, -1)
    scores = (flat @ query[0].reshape(-1)).numpy()[allowed]
    assert [h.model for h in hits] == rank_models(scores, allowed_models, 20)
    nothing = columns.mask(parse_filters({"descriptors": ["D14"]}))
    assert ShardSearcher(cells, models).search(query, 5, [nothing])[0] == []


@pytest.mark.parametrize("raw, message", [
    ('{"descriptors": ["D99"]}', "unknown descriptor code"),
    ('{"attributes": {"heel": "flat"}}', "unknown attribute name"),
    ('{"attributes": {"colour": ["black", "nosuchcolour"]}}',
     r"unknown value\(s\) \['nosuchcolour'\] of attribute 'colour'; known: \['black', 'white'\]"),
    ('{"colour": "red"}', "colour"),
    ("not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
])
def test_bad_filters_name_the_problem(raw, message):
    with pytest.raises(QueryError, match=message):
        parse_filters(raw, {"colour": ["black", "white"]})


def test_stats_show_pruning():
    rng = np.random.default_rng(9)
    cells = unit_cells(rng, 3000, cells=24, dim=64)
    searcher = ShardSearcher(cells, [str(i) for i in range(3000)])
    stats = SearchStats()
    searcher.search(masked_queries(rng, 1, 24, 64, 0.4), 10, stats=stats)
    assert 0 < stats.exact_scored < 3000
