"""Rows of the stored truth for the exact pass, gathered in parallel.

The exact pass reads the visible cells of a few hundred references from the (memory-mapped)
float16 truth: thousands of scattered 256-byte rows. numpy's fancy indexing and float16 → float32
conversion took ~4 ms for 10,000 rows on 2 cores; copying the raw bits with a parallel numba
loop into one contiguous buffer and converting it with torch takes ~0.7 ms. numba has no float16
type on CPU, hence the copy through unsigned integers of the same width.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from numba import njit, prange

from shoematch.index.threads import apply_search_threads

_BITS = {2: np.uint16, 4: np.uint32, 8: np.uint64}


@njit(parallel=True, cache=True)
def _gather(bits, cells, rows, out):
    for j in prange(rows.shape[0]):
        for i in range(cells.shape[0]):
            out[j, i, :] = bits[cells[i], rows[j], :]


def gather_cells(truth: np.ndarray, cells: Sequence[int] | np.ndarray,
                 rows: Sequence[int] | np.ndarray) -> torch.Tensor:
    """float32 [len(rows), len(cells), C] = truth[cells, rows] for truth [S, n, C] (float16,
    float32 or float64, possibly memory-mapped; only the picked rows are read)."""
    raw = np.asarray(truth)
    if raw.itemsize not in _BITS:
        raise ValueError(f"truth of dtype {raw.dtype} is not a float16/32/64 array")
    bits = raw.view(_BITS[raw.itemsize])
    out = np.empty((len(rows), len(cells), raw.shape[2]), dtype=bits.dtype)
    apply_search_threads()
    _gather(bits, np.asarray(cells, dtype=np.int64), np.asarray(rows, dtype=np.int64), out)
    return torch.from_numpy(out.view(raw.dtype)).float()
