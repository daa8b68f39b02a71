"""The float16 truth memory-mapped: same results as in RAM, only the int8 copy resident, page-ins
counted; and the scale benchmark's random-index writer read back by the real loader."""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.random_index import write_random_index
from shoematch.index.reader import SearchIndex
from shoematch.index.search import SearchStats, ShardSearcher
from shoematch.index.shard_io import release_pages
from shoematch.retrieval.metrics import rank_models


def unit_cells(rng: np.random.Generator, cells: int, count: int, dim: int) -> np.ndarray:
    values = rng.standard_normal((cells, count, dim), dtype=np.float32)
    return (values / np.linalg.norm(values, axis=-1, keepdims=True)).astype(np.float16)


def masked(rng: np.random.Generator, batch: int, cells: int, dim: int) -> torch.Tensor:
    queries = torch.nn.functional.normalize(
        torch.from_numpy(rng.standard_normal((batch, cells, dim), dtype=np.float32)), dim=-1)
    keep = torch.from_numpy(rng.random((batch, cells)) < 0.4)
    keep[:, 0] = True
    return queries * keep[..., None]


def test_mapped_truth_gives_identical_results(tmp_path):
    rng = np.random.default_rng(0)
    cells = unit_cells(rng, 12, 700, 16)
    np.save(tmp_path / "cells.npy", cells)
    mapped = np.load(tmp_path / "cells.npy", mmap_mode="r")
    models = [f"m{int(i)}" for i in rng.integers(0, 250, 700)]
    in_ram, on_disk = ShardSearcher(torch.from_numpy(cells), models), \
        ShardSearcher(mapped, models)
    assert release_pages(mapped) and not release_pages(cells)
    queries = masked(rng, 4, 12, 16)
    stats = SearchStats()
    for k in (1, 20, 100):
        expected = in_ram.search(queries, k)
        got = on_disk.search(queries, k, stats=stats)
        assert [[(h.model, h.score, h.order) for h in hits] for hits in got] == \
            [[(h.model, h.score, h.order) for h in hits] for hits in expected]
    rows = [h.row for h in got[0]]
    np.testing.assert_array_equal(on_disk.cell_scores(queries[0], rows),
                                  in_ram.cell_scores(queries[0], rows))
    visible = (queries.abs().sum(-1) > 0).sum(-1)
    assert 0 < stats.exact_scored < 3 * 4 * 700  # the exact pass reads a few rows only
    assert stats.truth_rows <= stats.exact_scored * int(visible.max())
    assert stats.truth_bytes == stats.truth_rows * 16 * 2


def test_resident_bytes_are_the_scan_copy_only(tmp_path):
    rng = np.random.default_rng(1)
    count, cells, dim = 300, 12, 16
    np.save(tmp_path / "cells.npy", unit_cells(rng, cells, count, dim))
    searcher = ShardSearcher(np.load(tmp_path / "cells.npy", mmap_mode="r"),
                             [str(i) for i in range(count)])
    # int8 codes, float32 scale and error bound per cell, int32 model code
    assert searcher.resident_bytes == count * (cells * dim + cells * 8 + 4)
    assert isinstance(searcher.cells, np.memmap)


def test_random_index_writer_is_read_by_the_loader(tmp_path):
    root = str(tmp_path / "index")
    manifest = write_random_index(root, 900, 2, seed=3)
    assert manifest.references == 900 and len(manifest.shards) == 2
    assert write_random_index(root, 900, 2).version == manifest.version  # reused
    index = SearchIndex.load(root)  # checksums verified, truth memory-mapped
    assert all(isinstance(s.searcher.cells, np.memmap) for s in index.shards)
    queries = masked(np.random.default_rng(4), 2, 72, 128)
    results = index.search(queries, 10)
    truth = np.concatenate([np.load(f"{root}/{e.path}/embeddings.npy") for e in manifest.shards],
                           axis=1).astype(np.float32)
    flat = truth.transpose(1, 0, 2).reshape(900, -1)
    models = [f"M{i // 3:07d}" for i in range(900)]
    for b in range(2):
        expected = rank_models(flat @ queries[b].reshape(-1).numpy(), models, 10)
        assert [m.model for m in results[b]] == expected
        assert np.asarray(results[b][0].cell_scores).shape == (6, 12)
