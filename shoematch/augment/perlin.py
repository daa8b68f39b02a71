"""Batched gradient (Perlin) noise in torch: kornia has none, and the augmentation needs smooth,
blotchy random fields (erasure masks, background clutter) generated on the input's device.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _fade(t: Tensor) -> Tensor:
    """Perlin's quintic 6t^5 - 15t^4 + 10t^3: C2-continuous across lattice cells."""
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


def _cell_sizes(cell_size: int | tuple[int, int]) -> tuple[int, int]:
    ch, cw = (cell_size, cell_size) if isinstance(cell_size, int) else cell_size
    if ch < 1 or cw < 1:
        raise ValueError(f"cell_size must be >= 1, got {cell_size!r}")
    return int(ch), int(cw)


def _octave(batch: int, height: int, width: int, ch: int, cw: int,
            generator: torch.Generator, device: torch.device) -> Tensor:
    """One octave in [-1, 1], shape [B, H, W]. The lattice covers ceil(H/ch) x ceil(W/cw) cells
    (larger than the image when H, W are not multiples of the cell) and the result is cropped
    to H x W, so any size works.

    Computed as [B, cells_y, ch, cells_x, cw] so that every corner term is a broadcast of
    per-cell gradients against per-pixel offsets: no gathers, one full-size op per corner."""
    ny, nx = -(-height // ch), -(-width // cw)
    angles = torch.rand(batch, ny + 1, nx + 1, generator=generator, device=device)
    angles = angles * (2.0 * math.pi)
    gx, gy = torch.cos(angles), torch.sin(angles)  # random unit gradients on the lattice
    # pixel-centre offsets inside a cell, in [0, 1)
    fy = ((torch.arange(ch, device=device, dtype=torch.float32) + 0.5) / ch).view(ch, 1, 1)
    fx = (torch.arange(cw, device=device, dtype=torch.float32) + 0.5) / cw

    def corner(dy: int, dx: int) -> Tensor:
        """Dot product of the corner's gradient with the offset from that corner."""
        cgx = gx[:, dy:dy + ny, dx:dx + nx].reshape(batch, ny, 1, nx, 1)
        cgy = gy[:, dy:dy + ny, dx:dx + nx].reshape(batch, ny, 1, nx, 1)
        return cgx * (fx - dx) + cgy * (fy - dy)

    u, v = _fade(fx), _fade(fy)
    top = torch.lerp(corner(0, 0), corner(0, 1), u)
    bottom = torch.lerp(corner(1, 0), corner(1, 1), u)
    # |2D Perlin| <= sqrt(2)/2 with unit gradients; scale to [-1, 1].
    noise = torch.lerp(top, bottom, v) * math.sqrt(2.0)
    return noise.reshape(batch, ny * ch, nx * cw)[:, :height, :width]


def perlin_noise(batch: int, height: int, width: int, cell_size: int | tuple[int, int],
                 generator: torch.Generator, device: torch.device | str | None = None,
                 octaves: int = 1, persistence: float = 0.5) -> Tensor:
    """Fractal Perlin noise, float32 [B, 1, H, W] in [-1, 1] with mean ~0.

    `cell_size` (pixels, int or (h, w)) is the lattice spacing of the first octave; each further
    octave halves it (min 1 px) and multiplies the amplitude by `persistence`. The sum is divided
    by the total amplitude so the range stays [-1, 1]. All randomness comes from `generator`,
    which must live on `device` (default: the generator's device).
    """
    if octaves < 1:
        raise ValueError(f"octaves must be >= 1, got {octaves}")
    device = torch.device(device) if device is not None else generator.device
    ch, cw = _cell_sizes(cell_size)
    total = torch.zeros(batch, height, width, device=device)
    amplitude, norm = 1.0, 0.0
    for k in range(octaves):
        step_h, step_w = max(1, ch >> k), max(1, cw >> k)
        total = total + amplitude * _octave(batch, height, width, step_h, step_w, generator,
                                            device)
        norm += amplitude
        amplitude *= persistence
    return (total / norm).unsqueeze(1)
