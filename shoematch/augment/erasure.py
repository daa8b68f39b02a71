"""Erasure: parts of the print that did not transfer, shaped by Gaussian blobs or thresholded
Perlin noise, faded by a random strength. `sample_erasure` draws the erased region,
`apply_erasure` fades the print there."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from shoematch.augment.config import AugConfig
from shoematch.augment.draws import coin, col, grid, mode_mask, per_sample, uniform
from shoematch.augment.perlin import perlin_noise


@dataclass
class ErasureParams:
    perlin: Tensor  # [B] bool: Perlin-shaped (else Gaussian blobs)
    fraction: Tensor  # [B] share of the canvas erased
    strength: Tensor  # [B] how much ink goes there (0: this sample is not erased)
    region: Tensor  # [B, 1, H, W] in [0, 1]: where ink is erased (soft rim)


def gaussian_blob_field(batch: int, height: int, width: int, cfg: AugConfig,
                        gen: torch.Generator, device: torch.device) -> Tensor:
    """[B, 1, H, W] sum of 1..max_blobs anisotropic, rotated Gaussians (random amplitudes)."""
    k = cfg.erasure_max_blobs
    size = torch.tensor([width, height], device=device, dtype=torch.float32)
    centre = torch.rand(batch, k, 2, generator=gen, device=device) * size
    sigma = uniform(gen, (batch, k, 2), cfg.erasure_blob_sigma_range, device) * height
    theta = torch.rand(batch, k, generator=gen, device=device) * math.pi
    amp = uniform(gen, (batch, k), (0.5, 1.0), device)
    count = torch.rand(batch, generator=gen, device=device) * k
    amp = amp * (torch.arange(k, device=device) < count[:, None])  # blob 0 always on

    ys, xs = grid(height, width, device)
    field = torch.zeros(batch, height, width, device=device)
    cos, sin = torch.cos(theta), torch.sin(theta)
    for j in range(k):
        dx, dy = xs - col(centre[:, j, 0]), ys - col(centre[:, j, 1])
        u = col(cos[:, j] / sigma[:, j, 0]) * dx + col(sin[:, j] / sigma[:, j, 0]) * dy
        v = col(cos[:, j] / sigma[:, j, 1]) * dy - col(sin[:, j] / sigma[:, j, 1]) * dx
        field = field + col(amp[:, j]) * torch.exp(-0.5 * (u * u + v * v))
    return field.unsqueeze(1)


def threshold_fraction(field: Tensor, fraction: Tensor, soft: float = 0.04) -> Tensor:
    """Mask in [0, 1] covering about `fraction` [B] of each sample's pixels: where the field is
    above its per-sample (1 - fraction) quantile, with a soft rim `soft` x the field's range
    wide. The quantile is taken on a strided subsample: the fields are smooth."""
    b, _, h, w = field.shape
    stride = max(1, min(h, w) // 48)
    sample = field[:, 0, ::stride, ::stride].reshape(b, -1)
    ordered = sample.sort(dim=1).values
    n = ordered.shape[1]
    index = ((1 - fraction) * (n - 1)).round().long().clamp(0, n - 1)
    thr = ordered.gather(1, index[:, None]).view(b, 1, 1, 1)
    band = ((ordered[:, -1] - ordered[:, 0]) * soft).clamp_min(1e-6).view(b, 1, 1, 1)
    # fraction 0 -> threshold at the max -> nothing erased
    return ((field - thr) / band).clamp(0, 1)


def sample_erasure(shape: torch.Size, cfg: AugConfig, gen: torch.Generator,
                   device: torch.device) -> ErasureParams:
    b, _, h, w = shape
    perlin = mode_mask(gen, b, cfg.erasure_mode, device)
    fraction = uniform(gen, (b,), cfg.erasure_fraction_range, device)
    strength = uniform(gen, (b,), cfg.erasure_strength_range, device)
    strength = strength * coin(gen, b, cfg.p_erasure, device)
    if cfg.erasure_mode == "gaussian":
        field = gaussian_blob_field(b, h, w, cfg, gen, device)
    else:
        cell = max(2, round(cfg.erasure_perlin_cell * h))
        field = perlin_noise(b, h, w, cell, gen, device, octaves=2)
        if cfg.erasure_mode == "random":
            blobs = gaussian_blob_field(b, h, w, cfg, gen, device)
            field = torch.where(per_sample(perlin), field, blobs)
    return ErasureParams(perlin, fraction, strength, threshold_fraction(field, fraction))


def apply_erasure(prints: Tensor, p: ErasureParams) -> Tensor:
    return prints * (1 - per_sample(p.strength) * p.region)
