"""Search speed at CriSp's scale: 56,847 references × 128×6×12 random unit cells.

    python -m benchmarks.bench_search [--references 56847] [--repeats 5]

Compares, in one process, the project's search (cell-major int8 scan with exact re-ranking,
`shoematch.index.search`) with the reference method (float32 matmul over all cells, full sort,
Python dedup loop) for one query with 40 % and with 100 % of the cells visible, top-100 unique
models; checks both return the same ranking; then queries/s for batches of 32, bytes per
reference, this machine's memory bandwidth and the scan's effective GB/s.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from shoematch.index.search import SearchStats, ShardSearcher
from shoematch.retrieval.metrics import rank_models

CELLS, DIM, K = 72, 128, 100


def best_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def memory_bandwidth_gbs(repeats: int) -> float:
    """Read bandwidth: sum a 1 GiB float32 array (bigger than any cache)."""
    big = torch.ones(256 * 1024 * 1024)
    ms = best_ms(lambda: big.sum(), repeats)
    return big.numel() * 4 / 1e9 / (ms / 1e3)


def reference_method(flat: np.ndarray, models: list[str], query: np.ndarray) -> list[str]:
    scores = flat @ query.reshape(-1)
    return rank_models(scores, models, K)  # stable full sort + first occurrence per model


def queries_with(rng: np.random.Generator, batch: int, visible: float) -> torch.Tensor:
    q = torch.nn.functional.normalize(torch.from_numpy(
        rng.standard_normal((batch, CELLS, DIM), dtype=np.float32)), dim=-1)
    keep = torch.zeros((batch, CELLS), dtype=torch.bool)
    for b in range(batch):  # a contiguous block of grid columns, like a partial print
        columns = max(1, round(12 * visible))
        start = int(rng.integers(0, 12 - columns + 1))
        grid = torch.zeros((6, 12), dtype=torch.bool)
        grid[:, start:start + columns] = True
        keep[b] = grid.flatten()
    return q * keep[..., None]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--references", type=int, default=56847)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n = args.references
    cells32 = torch.nn.functional.normalize(torch.from_numpy(
        rng.standard_normal((CELLS, n, DIM), dtype=np.float32)), dim=-1)
    cells16 = cells32.half()
    # The reference method's float32 rows hold the same (float16-stored) values.
    flat = np.ascontiguousarray(cells16.float().permute(1, 0, 2).reshape(n, -1).numpy())
    del cells32
    models = [f"M{i // 3:05d}" for i in rng.permutation(n)]  # ~3 instances per model
    started = time.perf_counter()
    searcher = ShardSearcher(cells16, models)
    prep_s = time.perf_counter() - started
    bandwidth = memory_bandwidth_gbs(args.repeats)
    print(f"{n} references × {CELLS} cells × {DIM} channels; torch threads {args.threads}; "
          f"index preparation {prep_s:.1f} s")
    print(f"memory read bandwidth (sum of 1 GiB float32): {bandwidth:.1f} GB/s\n")
    print("| visible cells | reference method ms | shoematch ms | speed-up | same top-100 | "
          "exactly scored refs | scan GB/s |")
    print("|---|---|---|---|---|---|---|")
    for visible in (0.4, 1.0):
        query = queries_with(rng, 1, visible)
        reference = reference_method(flat, models, query[0].numpy())
        stats = SearchStats()
        ours = [h.model for h in searcher.search(query, K, stats=stats)[0]]
        ref_ms = best_ms(lambda q=query: reference_method(flat, models, q[0].numpy()),
                         args.repeats)
        our_ms = best_ms(lambda q=query: searcher.search(q, K), args.repeats)
        visible_cells = int((query[0].abs().sum(-1) > 0).sum())
        scanned = visible_cells * n * (DIM + 8)  # int8 codes + float32 scale and error
        print(f"| {visible_cells}/{CELLS} ({visible:.0%}) | {ref_ms:.1f} | {our_ms:.1f} | "
              f"{ref_ms / our_ms:.1f}× | {ours == reference} | {stats.exact_scored} | "
              f"{scanned / 1e9 / (our_ms / 1e3):.1f} |")
    print()
    for visible in (0.4, 1.0):
        batch = queries_with(rng, 32, visible)
        ms = best_ms(lambda b=batch: searcher.search(b, K), max(1, args.repeats // 2))
        ref_ms = best_ms(lambda b=batch: [reference_method(flat, models, q.numpy())
                                          for q in b], 1)
        print(f"batch of 32 at {visible:.0%} visible: {32 / (ms / 1e3):.1f} queries/s "
              f"({ms / 32:.1f} ms/query; reference method {32 / (ref_ms / 1e3):.1f} queries/s)")
    stored = CELLS * DIM * 2
    scanned = CELLS * DIM + CELLS * 4 * 2
    print(f"\nbytes per reference: {stored} stored (float16 cells), in memory {stored} float16 + "
          f"{scanned} int8 scan copy (codes + per-cell scales + per-cell error bounds); "
          f"reference method "
          f"{CELLS * DIM * 4} (float32)")


if __name__ == "__main__":
    main()
