"""The exact search of `search.py` with its two heavy parts on a torch device (a GPU).

The scan and the exact re-scoring run on the device; the candidate bookkeeping between them
(bounds, the k-th model, per-model dedup) stays the CPU code of `ShardSearcher`, on the n
estimates and bounds brought back (8 bytes each). The result is the same ranking as the CPU
search, because the scan's estimates and bounds are the same numbers:

- the int8 × int16 products are summed exactly in float32 matrix products: the int16 query is
  split into a high byte and a low byte (q = 256·hi + lo, |hi| ≤ 128, 0 ≤ lo ≤ 255), so every
  product and partial sum is an integer below 2^24, which float32 (and TF32 or a float16
  product with float32 sums) holds exactly in any order;
- the per-cell scales and error terms are summed in float64 as in the CPU kernel.

The exact pass reads the float16 truth on the device and multiplies in float32, as the CPU
pass does; both then agree with the reference method to float32 rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from shoematch.index.search import ShardSearcher

CHUNK = 16384  # references per scan step: bounds the float32 copy of their codes (≤ 0.6 GB)


class DeviceShardSearcher(ShardSearcher):
    """`ShardSearcher` whose scan and exact pass run on `device`; the int8 copy and the truth
    are held there (3 bytes per reference value: int8 and float16), beside the int8 copy the
    base class keeps in host memory."""

    def __init__(self, cells: np.ndarray | torch.Tensor, models: Sequence[str],
                 device: torch.device | str, order_offset: int = 0) -> None:
        super().__init__(cells, models, order_offset)
        self.device = torch.device(device)
        self.device_codes = torch.from_numpy(self.codes).to(self.device)
        self.device_scales = torch.from_numpy(self.scales).to(self.device, torch.float64)
        self.device_errors = torch.from_numpy(self.errors).to(self.device, torch.float64)
        self.device_truth = self._copy_truth()

    def _copy_truth(self) -> torch.Tensor:
        """The truth on the device, copied `CHUNK` references at a time: a memory-mapped truth
        is read once and never held whole in host memory."""
        dtype = torch.from_numpy(np.empty(0, self.cells.dtype)).dtype
        truth = torch.empty(self.cells.shape, dtype=dtype, device=self.device)
        for start in range(0, len(self), CHUNK):
            stop = min(len(self), start + CHUNK)
            truth[:, start:stop] = torch.from_numpy(np.array(self.cells[:, start:stop]))
        return truth

    def _scan(self, visible: list[int], codes: torch.Tensor,
              weights: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        wide = codes.to(torch.int32)
        low = wide & 255  # two's complement: q − low is a multiple of 256
        halves = torch.stack([(wide - low) // 256, low], dim=-1).float().to(self.device)
        on = torch.tensor(visible, dtype=torch.long, device=self.device)
        estimate = torch.empty(len(self), dtype=torch.float64, device=self.device)
        for start in range(0, len(self), CHUNK):
            stop = min(len(self), start + CHUNK)
            block = self.device_codes[on, start:stop].float()  # [V, m, C]
            dots = torch.bmm(block, halves).double()  # [V, m, 2], exact integers
            products = dots[..., 0] * 256 + dots[..., 1]
            estimate[start:stop] = (products * self.device_scales[on, start:stop]).sum(0)
        bound = (self.device_errors[on] * weights.double().to(self.device)[:, None]).sum(0)
        return estimate.cpu().numpy(), bound.cpu().numpy()

    def _exact(self, values: np.ndarray, rows: np.ndarray, visible: list[int]) -> np.ndarray:
        cells = torch.tensor(visible, dtype=torch.long, device=self.device)
        picked = torch.from_numpy(np.asarray(rows, dtype=np.int64)).to(self.device)
        truth = self.device_truth[cells[:, None], picked[None, :]].float()  # [V, R, C]
        query = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)).to(self.device)
        return torch.einsum("vrc,vc->rv", truth, query).sum(1).cpu().numpy()
