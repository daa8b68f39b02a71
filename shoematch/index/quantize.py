"""Integer copies of unit cells, with rigorous error bounds, for the search's first pass.

The float16 (or float32) embeddings stored in an index are the truth; the scan reads an int8 copy
(half the bytes of float16) and knows, per reference cell, how far the copy can be from the
truth. `search.py` turns those bounds into an exact re-ranking, so the int8 pass only decides
which references deserve an exact look.

Each reference cell has its own scale: the peak of 128 values is ~30 % below the peak over a whole
reference, so the codes are finer and the bounds tighter (fewer exact re-scores). The query is
coded in int16 (one product per byte read; its own error is negligible).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

INT8_MAX = 127
INT32_MAX = 2**31 - 1
# Bounds are rounded up by this factor (plus an absolute epsilon) so float32 rounding in the
# bound arithmetic itself can never make a bound too small.
BOUND_SLACK = 1.0 + 1e-3
BOUND_EPS = 1e-6


@dataclass
class QuantizedCells:
    codes: torch.Tensor  # int8 [S, n, C], cell-major
    scales: torch.Tensor  # float32 [S, n]: cell ≈ scale · code
    errors: torch.Tensor  # float32 [S, n]: ‖cell − scale · code‖₂, rounded up
    max_norm: float  # largest ‖cell‖₂ (rounded up): bounds ‖scale · code‖ with `errors`


@dataclass
class QuantizedQuery:
    codes: torch.Tensor  # int16 [S, C]
    scale: float
    norms: torch.Tensor  # float32 [S]: ‖q_s‖₂
    residual_norms: torch.Tensor  # float32 [S]: ‖q_s − scale · codes_s‖₂, rounded up


def _codes(values: torch.Tensor, peak: torch.Tensor,
           levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric integer codes in [-levels, levels] of `values`, given the peak |value| of each
    leading index (`peak` has the leading dimensions of `values`)."""
    scales = peak / levels
    safe = torch.where(scales > 0, scales, torch.ones_like(scales))
    shape = tuple(peak.shape) + (1,) * (values.dim() - peak.dim())
    codes = torch.round(values / safe.reshape(shape)).clamp_(-levels, levels)
    return codes, scales


def _rounded_up_norms(values: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(values, dim=-1) * BOUND_SLACK + BOUND_EPS


def quantize_cells(cells: torch.Tensor | np.ndarray, chunk: int = 4096) -> QuantizedCells:
    """Quantise reference cells [S, n, C] (any float dtype; a memory-mapped array too) to int8,
    one scale per cell.

    Works in chunks of references so a float32 copy of a whole shard is never materialised.
    """
    cell_count, count, dim = cells.shape
    codes = torch.empty((cell_count, count, dim), dtype=torch.int8)
    scales = torch.empty((cell_count, count), dtype=torch.float32)
    errors = torch.empty((cell_count, count), dtype=torch.float32)
    max_norm = 0.0
    for start in range(0, count, chunk):
        stop = min(count, start + chunk)
        values = torch.from_numpy(np.asarray(cells[:, start:stop], dtype=np.float32)) \
            if isinstance(cells, np.ndarray) else cells[:, start:stop].float()  # [S, m, C]
        chunk_codes, chunk_scales = _codes(values, values.abs().amax(dim=-1), INT8_MAX)
        codes[:, start:stop] = chunk_codes.to(torch.int8)
        scales[:, start:stop] = chunk_scales
        errors[:, start:stop] = _rounded_up_norms(values - chunk_codes * chunk_scales[..., None])
        max_norm = max(max_norm, float(_rounded_up_norms(values).max()))
    return QuantizedCells(codes, scales, errors, max_norm)


def query_levels(dim: int) -> int:
    """The largest int16 code range whose per-cell products cannot overflow int32."""
    return min(2**15 - 1, INT32_MAX // (INT8_MAX * dim))


def quantize_query(query: torch.Tensor) -> QuantizedQuery:
    """int16 codes of one query [S, C] with one scale (the scan sums cells in float)."""
    values = query.float()
    codes, scale = _codes(values, values.abs().amax(), query_levels(values.shape[-1]))
    return QuantizedQuery(
        codes=codes.to(torch.int16),
        scale=float(scale),
        norms=torch.linalg.vector_norm(values, dim=-1),
        residual_norms=_rounded_up_norms(values - codes * scale),
    )
