"""The scan kernel: one pass over a query's visible cells' int8 codes.

Streams each reference's codes once per visible cell (int8 codes × int16 query, one product per
byte read) and, in the same pass, sums the per-cell scale and error terms, so nothing else of
the shard is read. Why not oneDNN's int8 product (`torch._int_mm`): for one query column it runs
far below memory bandwidth, and on CPUs without VNNI it is ~100× slower still; batches gain
little from sharing the read when each query is already bandwidth-bound.

What makes it run at memory bandwidth (measured on a 2-core AVX2 machine, 56,847 references ×
30 cells):
- the channel count is a compile-time constant (one kernel per embedding width), so each
  128-byte row becomes a fixed run of widening multiply-adds and one reduction, no loop tail;
- the kernel is compiled with LLVM's vectoriser choosing its width by the narrowest type
  (`-vectorizer-maximize-bandwidth`): by default it sizes vectors for the int32 sums and emits
  16-byte multiply-adds; sized for the int8 codes they are 32-byte (AVX2), half the instructions
  per row. The option is set only while this kernel compiles;
- a block's estimates and bounds stay in block-local arrays written out once, and rows are
  indexed from 0 within the block (no negative-index handling), so the only streams per cell
  are the codes, scales and error terms. Blocks of 2048 references keep long sequential runs
  per cell and the partials in L2.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
from llvmlite import binding
from numba import njit, prange

from shoematch.index.threads import apply_search_threads

BLOCK = 2048  # references per work item
SIGNATURE = ("void(int8[:, :, ::1], float32[:, ::1], float32[:, ::1], int64[::1], int16[:, ::1], "
             "float64[::1], float64[::1], float64[::1])")
WIDE_VECTORS = "-vectorizer-maximize-bandwidth"


@contextmanager
def _wide_vectors() -> Iterator[None]:
    """Let LLVM's loop vectoriser size vectors by the narrowest type while compiling."""
    binding.set_option("", WIDE_VECTORS)
    try:
        yield
    finally:
        binding.set_option("", f"{WIDE_VECTORS}=false")


@lru_cache
def _kernel(dim: int) -> Callable[..., None]:
    """The scan compiled for `dim` channels (cached on disk per width by numba)."""

    def scan(codes, scales, errors, cells, query, weights, estimate, bound):
        count = codes.shape[1]
        for block in prange((count + BLOCK - 1) // BLOCK):
            lo = block * BLOCK
            hi = min(count, lo + BLOCK)
            block_estimate = np.zeros(hi - lo, dtype=np.float64)
            block_bound = np.zeros(hi - lo, dtype=np.float64)
            for i in range(cells.shape[0]):
                plane = codes[cells[i], lo:hi]
                scale, error = scales[cells[i], lo:hi], errors[cells[i], lo:hi]
                values, weight = query[i], weights[i]
                for r in range(hi - lo):
                    # int16 products summed in int32: LLVM emits widening multiply-adds.
                    total = np.int32(0)
                    for c in range(dim):
                        total = np.int32(total + np.int32(np.int16(plane[r, c]) * values[c]))
                    block_estimate[r] += np.float64(total) * scale[r]
                    block_bound[r] += error[r] * weight
            estimate[lo:hi] = block_estimate
            bound[lo:hi] = block_bound

    with _wide_vectors():
        return njit(SIGNATURE, parallel=True, cache=True, fastmath=True)(scan)


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
    apply_search_threads()
    _kernel(codes.shape[2])(np.ascontiguousarray(codes, dtype=np.int8),
                            np.ascontiguousarray(scales, dtype=np.float32),
                            np.ascontiguousarray(errors, dtype=np.float32),
                            np.asarray(cells, dtype=np.int64),
                            np.ascontiguousarray(query, dtype=np.int16),
                            np.ascontiguousarray(weights, dtype=np.float64), estimate, bound)
    return estimate, bound
