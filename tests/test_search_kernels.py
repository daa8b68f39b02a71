"""The search's numba kernels: the scan, the exact pass's products, `largest`, and the
per-process thread setting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shoematch.index.exact import cell_dots
from shoematch.index.scan import scan_int8
from shoematch.index.search import ShardSearcher, largest
from shoematch.index.threads import set_search_threads


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_cell_dots_match_float32_products(dtype, tmp_path) -> None:
    """In RAM and memory-mapped, with repeated and unsorted rows, including float16's extremes
    (subnormals, the largest finite value)."""
    rng = np.random.default_rng(0)
    truth = rng.standard_normal((6, 50, 16)).astype(dtype)
    truth[4, 3, :2] = [6e-8, -65504] if dtype == np.float16 else [1e-30, -1e30]
    path = tmp_path / "truth.npy"
    np.save(path, truth)
    mapped = np.load(path, mmap_mode="r")
    cells, rows = [4, 0, 2], [49, 3, 3, 17]
    query = rng.standard_normal((3, 16)).astype(np.float32)
    picked = truth[np.ix_(cells, rows)].astype(np.float32)  # [cells, rows, C]
    expected = np.einsum("irc,ic->ri", picked.astype(np.float64), query.astype(np.float64))
    for source in (truth, mapped):
        got = cell_dots(source, cells, rows, query)
        assert got.dtype == np.float32 and got.shape == (4, 3)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert cell_dots(mapped, cells, [], query).shape == (0, 3)


def test_cell_dots_refuse_what_does_not_fit() -> None:
    truth = np.zeros((6, 5, 16), np.float16)
    with pytest.raises(ValueError, match="does not fit 2 cells of 16 channels"):
        cell_dots(truth, [0, 1], [0], np.zeros((3, 16), np.float32))
    with pytest.raises(ValueError, match="int8 is not a float16/32/64"):
        cell_dots(truth.astype(np.int8), [0], [0], np.zeros((1, 16), np.float32))


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


@pytest.mark.parametrize("dim", [128, 96])
def test_wide_vector_scan_matches_integer_arithmetic(dim) -> None:
    """The kernel compiled with wide vectors, at the embedding widths in use, over more than one
    block and a partial last block, with the query at the int16 extremes."""
    rng = np.random.default_rng(dim)
    count = 2 * 2048 + 37
    codes = rng.integers(-127, 128, (4, count, dim), dtype=np.int8)
    scales, errors = rng.random((4, count), np.float32), rng.random((4, count), np.float32)
    query = rng.choice(np.array([-32767, 32767, -1, 0, 5], np.int16), (3, dim))
    weights = rng.random(3)
    cells = [3, 0, 2]
    estimate, bound = scan_int8(codes, scales, errors, cells, query, weights)
    exact = sum(scales[c].astype(np.float64) * (codes[c].astype(np.int64) @ query[i])
                for i, c in enumerate(cells))
    np.testing.assert_allclose(estimate, exact, rtol=1e-12)
    np.testing.assert_allclose(bound, sum(errors[c] * weights[i] for i, c in enumerate(cells)),
                               rtol=1e-6)


@pytest.mark.parametrize("case", ["plain", "ties", "masked", "few", "small take"])
def test_largest_keeps_the_top_values_in_order(case) -> None:
    rng = np.random.default_rng(7)
    values = rng.standard_normal(20000)
    if case == "ties":
        values = np.round(values)  # five distinct values: the cut keeps far too many
    if case == "masked":
        values[rng.random(20000) < 0.97] = -np.inf
    if case == "few":
        values[100:] = -np.inf
    take = 5 if case == "small take" else 400
    top = largest(values, take)
    finite = np.sort(values[np.isfinite(values)])[::-1][:take]
    np.testing.assert_array_equal(values[top], finite)
    assert len(set(top.tolist())) == len(top)
