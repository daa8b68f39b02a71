"""The search's numba kernels: the truth gather and the per-process thread setting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shoematch.index.gather import gather_cells
from shoematch.index.scan import scan_int8
from shoematch.index.search import ShardSearcher
from shoematch.index.threads import set_search_threads


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_gather_matches_fancy_indexing(dtype, tmp_path) -> None:
    rng = np.random.default_rng(0)
    truth = rng.standard_normal((6, 50, 16)).astype(dtype)
    path = tmp_path / "truth.npy"
    np.save(path, truth)
    mapped = np.load(path, mmap_mode="r")
    cells, rows = [4, 0, 2], [49, 3, 3, 17]
    expected = truth[np.ix_(cells, rows)].astype(np.float32).transpose(1, 0, 2)
    for source in (truth, mapped):
        got = gather_cells(source, cells, rows)
        assert got.dtype == torch.float32
        np.testing.assert_array_equal(got.numpy(), expected)
    assert gather_cells(mapped, cells, []).shape == (0, 3, 16)


def test_exact_scores_of_no_rows_is_empty() -> None:
    cells = torch.nn.functional.normalize(torch.randn(4, 10, 8), dim=-1).half()
    searcher = ShardSearcher(cells, [f"M{i}" for i in range(10)])
    assert searcher.exact_scores(torch.randn(4, 8), np.empty(0, np.int64), [0, 2]).shape == (0,)


def test_scan_is_the_same_on_one_thread_and_bad_counts_are_refused() -> None:
    rng = np.random.default_rng(1)
    codes = rng.integers(-127, 128, (5, 3000, 32), dtype=np.int8)
    scales, errors = rng.random((5, 3000), np.float32), rng.random((5, 3000), np.float32)
    query = rng.integers(-1000, 1000, (2, 32)).astype(np.int16)
    every_core = scan_int8(codes, scales, errors, [1, 4], query, np.ones(2))
    try:
        set_search_threads(1)
        one = scan_int8(codes, scales, errors, [1, 4], query, np.ones(2))
    finally:
        set_search_threads(0)
    for a, b in zip(every_core, one, strict=True):
        np.testing.assert_array_equal(a, b)
    exact = sum(scales[c].astype(np.float64) * (codes[c].astype(np.int64) @ query[i])
                for i, c in enumerate([1, 4]))
    np.testing.assert_allclose(every_core[0], exact, rtol=1e-12)
    with pytest.raises(ValueError, match="search threads"):
        set_search_threads(-1)
