"""The int8 scan kernel for single queries: one pass over the visible cells' codes.

oneDNN's int8 product (`torch._int_mm`) is fast for wide query batches but, for the two
columns of a single query, runs far below memory bandwidth and degrades badly with more than
one thread; this numba kernel streams each reference's codes once per visible cell and reaches
most of the machine's read bandwidth. Batches keep using `torch._int_mm`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

BLOCK = 256  # references per parallel work item: the accumulators stay in L1


@njit(parallel=True, cache=True, fastmath=True)
def _scan(codes, cells, queries, out):
    count, dim = codes.shape[1], codes.shape[2]
    columns = queries.shape[1]
    for block in prange((count + BLOCK - 1) // BLOCK):
        lo = block * BLOCK
        hi = min(count, lo + BLOCK)
        for r in range(lo, hi):
            for m in range(columns):
                out[r, m] = 0
        for i in range(cells.shape[0]):
            cell = cells[i]
            for m in range(columns):
                query = queries[cell, m]
                for r in range(lo, hi):
                    row = codes[cell, r]
                    total = np.int32(0)
                    for c in range(dim):
                        total += np.int32(row[c]) * np.int32(query[c])
                    out[r, m] += total


def scan_int8(codes: np.ndarray, cells: list[int], queries: np.ndarray) -> np.ndarray:
    """Σ over `cells` of codes[cell] @ queries[cell].T in int32: codes int8 [S, n, C],
    queries int8 [S, M, C] → [n, M]."""
    out = np.empty((codes.shape[1], queries.shape[1]), dtype=np.int32)
    _scan(codes, np.asarray(cells, dtype=np.int64), np.ascontiguousarray(queries), out)
    return out
