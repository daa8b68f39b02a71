"""The scan kernel: one pass over a query's visible cells' int8 codes.

Streams each reference's codes once per visible cell (int8 codes × int16 query, one product per
byte read) and, in the same pass, sums the per-cell scale and error terms, so nothing else of
the shard is read. Why not oneDNN's int8 product (`torch._int_mm`): for one query column it runs
far below memory bandwidth, and on CPUs without VNNI it is ~100× slower still; batches gain
little from sharing the read when each query is already bandwidth-bound. Measured limit: from
L3 it runs at 13–23 GB/s on 2 cores, from DRAM at 3–4.5 GB/s against 8–14 GB/s for a plain
sum: each 128-byte row costs ~25 instructions (widen, multiply-add, reduce), so fewer loads are
in flight than in a sum; blocks of 2048 references (long runs per cell) gave ~1.5× over 256.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

BLOCK = 2048  # references per work item: long sequential runs per cell, partials stay in L2


@njit(parallel=True, cache=True, fastmath=True)
def _scan(codes, scales, errors, cells, query, weights, estimate, bound):
    count, dim = codes.shape[1], codes.shape[2]
    for block in prange((count + BLOCK - 1) // BLOCK):
        lo = block * BLOCK
        hi = min(count, lo + BLOCK)
        totals = np.empty(hi - lo, dtype=np.int32)
        for r in range(lo, hi):
            estimate[r] = 0.0
            bound[r] = 0.0
        for i in range(cells.shape[0]):
            cell = cells[i]
            values = query[i]
            # Integer products first, scales after: mixing the float terms into this loop
            # stops it from vectorising well.
            for r in range(lo, hi):
                row = codes[cell, r]
                total = np.int32(0)
                for c in range(dim):
                    total += np.int32(row[c]) * np.int32(values[c])
                totals[r - lo] = total
            weight = weights[i]
            for r in range(lo, hi):
                estimate[r] += np.float64(totals[r - lo]) * scales[cell, r]
                bound[r] += errors[cell, r] * weight


def scan_int8(codes: np.ndarray, scales: np.ndarray, errors: np.ndarray, cells: list[int],
              query: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every reference n: Σ over `cells` of scales[cell, n] · (codes[cell, n] · query[i])
    and Σ of errors[cell, n] · weights[i].

    codes int8 [S, n, C]; scales, errors float32 [S, n]; query int16 [len(cells), C] (row i for
    cells[i]); weights [len(cells)]. Returns two float64 arrays [n].
    """
    count = codes.shape[1]
    estimate = np.empty(count, dtype=np.float64)
    bound = np.empty(count, dtype=np.float64)
    _scan(codes, scales, errors, np.asarray(cells, dtype=np.int64),
          np.ascontiguousarray(query, dtype=np.int16),
          np.ascontiguousarray(weights, dtype=np.float64), estimate, bound)
    return estimate, bound
