"""Random draws shared by the augmentation operations: batched, on the given device, from one
`torch.Generator`, with no host syncs."""

from __future__ import annotations

import torch
from torch import Tensor

from shoematch.augment.config import Range


def uniform(gen: torch.Generator, shape: tuple[int, ...], bounds: Range,
            device: torch.device) -> Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(shape, generator=gen, device=device)


def coin(gen: torch.Generator, batch: int, p: float, device: torch.device) -> Tensor:
    """Per-sample booleans, True with probability p."""
    return torch.rand(batch, generator=gen, device=device) < p


def mode_mask(gen: torch.Generator, batch: int, mode: str, device: torch.device) -> Tensor:
    """Per-sample True = Perlin variant, False = Gaussian; 'random' is a fair coin."""
    if mode == "random":
        return coin(gen, batch, 0.5, device)
    return torch.full((batch,), mode == "perlin", dtype=torch.bool, device=device)


def grid(height: int, width: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates, ys [1, H, 1] and xs [1, 1, W], for broadcasting over [B, H, W]."""
    ys = torch.arange(height, device=device, dtype=torch.float32).view(1, height, 1)
    xs = torch.arange(width, device=device, dtype=torch.float32).view(1, 1, width)
    return ys, xs


def col(t: Tensor) -> Tensor:
    """[B] -> [B, 1, 1] for broadcasting against [B, H, W] (or [B, H, 1], [B, 1, W])."""
    return t.view(-1, 1, 1)


def per_sample(t: Tensor) -> Tensor:
    """[B] -> [B, 1, 1, 1] for broadcasting against images [B, 1, H, W]."""
    return t.view(-1, 1, 1, 1)
