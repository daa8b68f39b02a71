"""The dense cascade's first stage: every reference scored by one channel-summed correlation.

Why: exact MCNCC (`mcncc`) normalises every channel over every overlap, so a probe costs three
inverse FFTs per (reference, channel) — 1.8 ms per reference on 2 cores, minutes per query on a
large database. Here the reference side is reduced once, at index time:
- channels projected onto the `channels` leading principal directions of reference cells
  (`fit_projection`, fitted on references only);
- cells averaged `pool`×`pool` (coarser translations, a quarter of the FFT);
- each channel standardised over the reference's own map (zero mean, unit variance).
The probe's reduced channels are standardised over its visible cells, so the correlation summed
over channels approximates the sum of per-channel NCCs with window statistics replaced by global
ones. Summed over channels *before* the inverse transform, a reference costs one product-sum over
its cached spectrum and one inverse FFT. The score is that sum per overlap cell, maximised over
translations with enough overlap (the exact matcher's rule), so candidates are the references
whose reduced features line up with the probe's somewhere; the exact pass re-scores them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from shoematch.config import StrictModel
from shoematch.errors import QueryError

STORED_DTYPE = np.float16
EPS = 1e-6
VISIBLE_SHARE = 0.5  # a coarse cell is visible when half of its fine cells are
CPU_CHUNK, CUDA_CHUNK = 512, 8192  # references per product-sum and inverse transform


class ScanConfig(StrictModel):
    """How references are reduced for the first stage and how many go on to the exact pass."""

    channels: int = Field(16, ge=1, description="principal directions kept of the dense maps")
    pool: int = Field(2, ge=1, description="fine cells averaged per coarse cell, per side")
    candidates: int = Field(200, ge=1, description="references the exact pass re-scores")
    sample_cells: int = Field(200_000, ge=1000, description="reference cells the projection "
                                                            "is fitted on (a seeded sample)")


@dataclass
class Projection:
    """Centred linear map of dense channels onto their leading principal directions."""

    mean: np.ndarray  # [C] float32
    basis: np.ndarray  # [C, k] float32, orthonormal columns

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "basis": self.basis.tolist()}

    @classmethod
    def from_dict(cls, raw: dict) -> Projection:
        return cls(np.asarray(raw["mean"], np.float32), np.asarray(raw["basis"], np.float32))


def fit_projection(maps: torch.Tensor | np.ndarray, channels: int, sample_cells: int = 200_000,
                   seed: int = 0) -> Projection:
    """PCA of reference cells (maps [n, C, h, w]): the directions the exact score varies most
    along. References only: nothing about probes enters the index."""
    maps = torch.as_tensor(maps).float()
    if channels > maps.shape[1]:
        raise QueryError(f"scan channels {channels} > the dense maps' {maps.shape[1]}")
    cells = maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1])
    if cells.shape[0] > sample_cells:
        generator = torch.Generator().manual_seed(seed)
        cells = cells[torch.randperm(cells.shape[0], generator=generator)[:sample_cells]]
    mean = cells.mean(0)
    centred = cells - mean
    covariance = centred.T @ centred / max(cells.shape[0] - 1, 1)
    _, vectors = torch.linalg.eigh(covariance.double())  # ascending eigenvalues
    basis = vectors[:, -channels:].flip(1).float()
    return Projection(mean.numpy(), basis.numpy())


def _reduce(maps: torch.Tensor, projection: Projection, pool: int) -> torch.Tensor:
    """[n, C, h, w] → [n, k, ⌈h/pool⌉, ⌈w/pool⌉]: projected, then cells averaged."""
    mean = torch.as_tensor(projection.mean, device=maps.device)
    basis = torch.as_tensor(projection.basis, device=maps.device)
    reduced = torch.einsum("nchw,ck->nkhw", maps.float() - mean[None, :, None, None], basis)
    return F.avg_pool2d(reduced, pool, pool, ceil_mode=True) if pool > 1 else reduced


def reduce_references(maps: torch.Tensor | np.ndarray, projection: Projection,
                      pool: int) -> np.ndarray:
    """[n, k, H, W] float16 scan maps of references (what the index stores): reduced, each
    channel standardised over the reference's whole map."""
    reduced = _reduce(torch.as_tensor(maps), projection, pool)
    mean = reduced.mean(dim=(-2, -1), keepdim=True)
    std = reduced.std(dim=(-2, -1), keepdim=True)
    return ((reduced - mean) / (std + EPS)).cpu().numpy().astype(STORED_DTYPE)


def coarse_grid(grid: tuple[int, int], pool: int) -> tuple[int, int]:
    return -(-grid[0] // pool), -(-grid[1] // pool)


@dataclass
class ScanProbe:
    """One probe variant's reduced, standardised channels and visible cells on the coarse
    probe grid."""

    features: torch.Tensor  # [k, h, w], zero where invisible
    visible: torch.Tensor  # [h, w] float 0/1


def scan_probe(features: torch.Tensor | np.ndarray, visible: torch.Tensor | np.ndarray,
               projection: Projection, pool: int, probe_grid: tuple[int, int]) -> ScanProbe:
    """A dense probe variant (features [C, h, w], visible [h, w], as `DenseMatcher`
    gives them) in the first stage's terms."""
    features = torch.as_tensor(features).float()
    seen = torch.as_tensor(visible).float()
    reduced = _reduce(features[None], projection, pool)[0]
    if pool > 1:
        seen = F.avg_pool2d(seen[None, None], pool, pool, ceil_mode=True)[0, 0]
    seen = (seen >= VISIBLE_SHARE).float()
    count = float(seen.sum())
    if count == 0:
        raise QueryError(f"the probe's visible region covers no first-stage cell ({pool}×"
                         f"{pool} dense cells): too small for the cascade's scan")
    mean = (reduced * seen).sum(dim=(-2, -1), keepdim=True) / count
    centred = (reduced - mean) * seen
    std = (centred.square().sum(dim=(-2, -1), keepdim=True) / count).sqrt()
    standard = centred / (std + EPS)
    height, width = coarse_grid(probe_grid, pool)
    pad = (0, max(width - standard.shape[-1], 0), 0, max(height - standard.shape[-2], 0))
    return ScanProbe(F.pad(standard, pad), F.pad(seen, pad))


class ScanGallery:
    """Reference scan maps [N, k, H, W] and their spectra at the one correlation size every
    probe shares (probes are padded to `probe_grid`), computed once and kept.

    Kept frequency-major ([bins, n, k] per chunk): the channel sum of a probe's spectrum times
    each reference's is then one batched matrix-vector product per bin (BLAS), ≈ 45× faster on
    CPU than the same sum as an elementwise einsum, which reads the spectra with strides."""

    def __init__(self, maps: torch.Tensor | np.ndarray, probe_grid: tuple[int, int],
                 chunk: int | None = None) -> None:
        maps = torch.as_tensor(maps)
        if maps.dim() != 4:
            raise ValueError(f"scan maps must be [N, k, H, W], got {tuple(maps.shape)}")
        self.grid = int(maps.shape[-2]), int(maps.shape[-1])
        self.probe_grid = probe_grid
        self.size = probe_grid[0] + self.grid[0] - 1, probe_grid[1] + self.grid[1] - 1
        self.chunk = chunk or (CUDA_CHUNK if maps.is_cuda else CPU_CHUNK)
        self.count = int(maps.shape[0])
        self.bins = self.size[0], self.size[1] // 2 + 1
        self.spectra = [torch.fft.rfft2(part.float(), s=self.size).flatten(2)
                        .permute(2, 0, 1).contiguous() for part in maps.split(self.chunk)]
        self.device = maps.device

    def __len__(self) -> int:
        return self.count

    @property
    def resident_bytes(self) -> int:
        return sum(part.numel() * part.element_size() for part in self.spectra)

    def scores(self, probes: Sequence[ScanProbe], min_overlap: float,
               allowed: np.ndarray | None = None) -> np.ndarray:
        """[N] best first-stage score per reference over the probe variants (-inf: no valid
        translation, or not `allowed`)."""
        best = torch.full((self.count,), float("-inf"), device=self.device)
        ones = torch.fft.rfft2(torch.ones(self.grid, device=self.device), s=self.size)
        for probe in probes:
            if tuple(probe.visible.shape) != self.probe_grid:
                raise QueryError(f"scan probe grid {tuple(probe.visible.shape)} is not the "
                                 f"gallery's {self.probe_grid}")
            flip = (-2, -1)
            visible = probe.visible.to(self.device)
            spectrum = torch.fft.rfft2(probe.features.to(self.device).flip(flip), s=self.size)
            columns = spectrum.flatten(1).T.unsqueeze(-1).contiguous()  # [bins, k, 1]
            count = torch.fft.irfft2(torch.fft.rfft2(visible.flip(flip), s=self.size) * ones,
                                     s=self.size).round()
            area = min(float(visible.sum()), float(self.grid[0] * self.grid[1]))
            valid = count >= max(min_overlap * area, 1.0)
            weight = torch.where(valid, 1.0 / count.clamp_min(1.0), torch.zeros_like(count))
            start = 0
            for part in self.spectra:
                summed = torch.bmm(part, columns)[..., 0].T.reshape(-1, *self.bins)
                correlation = torch.fft.irfft2(summed.contiguous(), s=self.size) * weight
                value = correlation.masked_fill_(~valid, float("-inf")).flatten(1).amax(1)
                end = start + part.shape[1]
                best[start:end] = torch.maximum(best[start:end], value)
                start = end
        scores = best.cpu().numpy()
        if allowed is not None:
            scores = np.where(allowed, scores, -np.inf)
        return scores
