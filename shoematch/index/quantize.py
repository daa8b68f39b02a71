"""Int8 copies of unit cells, with rigorous error bounds, for the search's first pass.

The float16 (or float32) embeddings stored in an index are the truth; the scan reads an int8 copy
(half the bytes of float16, and int8 products run on VNNI units) and knows, per reference cell,
how far the copy can be from the truth. `search.py` turns those bounds into an exact re-ranking,
so the int8 pass only decides which references deserve an exact look.

One scale per reference (over all its cells) and one per query level make every cell's int8
product share a scale, so per-cell products add up in int32 without rescaling
(72 · 128 · 127² < 2³¹).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

INT8_MAX = 127.0
# Bounds are rounded up by this factor (plus an absolute epsilon) so float32 rounding in the
# bound arithmetic itself can never make a bound too small.
BOUND_SLACK = 1.0 + 1e-3
BOUND_EPS = 1e-6


@dataclass
class QuantizedCells:
    codes: torch.Tensor  # int8 [S, n, C], cell-major
    scales: torch.Tensor  # float32 [n]: cell ≈ scale · code
    errors: torch.Tensor  # float32 [n, S]: ‖cell − scale · code‖₂, rounded up


@dataclass
class QuantizedQueries:
    codes: torch.Tensor  # int8 [S, C, 2B]: columns [0, B) coarse codes, [B, 2B) residual codes
    scales: torch.Tensor  # float32 [2B]
    norms: torch.Tensor  # float32 [S, B]: ‖q_s‖₂
    residual_norms: torch.Tensor  # float32 [S, B]: ‖q_s − dequantised q_s‖₂, rounded up


def _codes(values: torch.Tensor, peak: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 codes of `values` given the peak |value| per leading index."""
    scales = peak / INT8_MAX
    safe = torch.where(scales > 0, scales, torch.ones_like(scales))
    shape = (-1,) + (1,) * (values.dim() - 1)
    codes = torch.round(values / safe.reshape(shape)).clamp_(-INT8_MAX, INT8_MAX)
    return codes.to(torch.int8), scales


def quantize_cells(cells: torch.Tensor, chunk: int = 4096) -> QuantizedCells:
    """Quantise reference cells [S, n, C] (any float dtype) to int8, one scale per reference.

    Works in chunks of references so a float32 copy of a whole shard is never materialised.
    """
    cell_count, count, dim = cells.shape
    codes = torch.empty((cell_count, count, dim), dtype=torch.int8)
    scales = torch.empty(count, dtype=torch.float32)
    errors = torch.empty((count, cell_count), dtype=torch.float32)
    for start in range(0, count, chunk):
        stop = min(count, start + chunk)
        values = cells[:, start:stop].float().transpose(0, 1)  # [m, S, C]
        chunk_codes, chunk_scales = _codes(values, values.abs().amax(dim=(1, 2)))
        residual = values - chunk_codes.float() * chunk_scales.reshape(-1, 1, 1)
        codes[:, start:stop] = chunk_codes.transpose(0, 1)
        scales[start:stop] = chunk_scales
        errors[start:stop] = torch.linalg.vector_norm(residual, dim=-1) * BOUND_SLACK + BOUND_EPS
    return QuantizedCells(codes, scales, errors)


def quantize_queries(queries: torch.Tensor) -> QuantizedQueries:
    """Two-level int8 codes of queries [B, S, C]: coarse codes plus codes of the residual.

    Both levels go through one int8 product (2B columns), so the query side adds no memory
    traffic while its quantisation error shrinks to ~1/127² of its largest value.
    """
    values = queries.float()
    coarse, coarse_scales = _codes(values, values.abs().amax(dim=(1, 2)))
    residual = values - coarse.float() * coarse_scales.reshape(-1, 1, 1)
    fine, fine_scales = _codes(residual, residual.abs().amax(dim=(1, 2)))
    left = residual - fine.float() * fine_scales.reshape(-1, 1, 1)
    codes = torch.cat([coarse, fine], dim=0).permute(1, 2, 0).contiguous()  # [S, C, 2B]
    return QuantizedQueries(
        codes=codes,
        scales=torch.cat([coarse_scales, fine_scales]),
        norms=torch.linalg.vector_norm(values, dim=-1).T.contiguous(),
        residual_norms=(torch.linalg.vector_norm(left, dim=-1) * BOUND_SLACK).T.contiguous(),
    )
