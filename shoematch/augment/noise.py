"""Noise: a random overall ink gain, then Gaussian pixel noise or Perlin background clutter with
speckles. `sample_noise` draws every random field, `apply_noise` composes them with the print."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from shoematch.augment.config import AugConfig
from shoematch.augment.draws import coin, mode_mask, per_sample, uniform
from shoematch.augment.perlin import perlin_noise


@dataclass
class ClutterParams:
    amplitude: Tensor  # [B] strength of the background texture
    density: Tensor  # [B] speckle density
    field: Tensor  # [B, 1, H, W] multi-octave Perlin texture
    grain: Tensor  # [B, 1, H, W] uniform surface grain (also the speckles' shade)
    dots: Tensor  # [B, 1, H, W] uniform draw choosing speckle kinds


@dataclass
class NoiseParams:
    perlin: Tensor  # [B] bool: clutter (else Gaussian pixel noise)
    apply: Tensor  # [B] bool: this sample gets noise at all
    gain: Tensor  # [B] overall ink gain (fading)
    pixel: Tensor | None  # [B, 1, H, W] zero-mean pixel noise (Gaussian and random modes)
    clutter: ClutterParams | None  # (Perlin and random modes)


def blur_per_sample(images: Tensor, sigma: Tensor, radius: int,
                    normalise_noise: bool = False) -> Tensor:
    """Separable Gaussian blur of [B, 1, H, W] with a per-sample std `sigma` [B] (pixels), as a
    grouped convolution (kornia's per-sample sigma path checks sigma on the host).
    `normalise_noise` scales the kernel so white noise keeps its std (grain, not fading)."""
    b, _, h, w = images.shape
    taps = torch.arange(-radius, radius + 1, device=images.device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps[None, :] / sigma[:, None]) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # [B, K]
    if normalise_noise:  # white noise std shrinks by ||k2d||_2 = sum(k^2) for separable k
        kernel = kernel / (kernel * kernel).sum(dim=1, keepdim=True).sqrt()
    x = torch.nn.functional.pad(images.view(1, b, h, w), (radius, radius, radius, radius),
                                mode="replicate")
    x = torch.nn.functional.conv2d(x, kernel.view(b, 1, 1, -1), groups=b)
    x = torch.nn.functional.conv2d(x, kernel.view(b, 1, -1, 1), groups=b)
    return x.view(b, 1, h, w)


def gaussian_pixel_noise(batch: int, height: int, width: int, cfg: AugConfig,
                         gen: torch.Generator, device: torch.device) -> Tensor:
    """[B, 1, H, W] zero-mean noise with per-sample std in `gaussian_sigma_range`; for some
    samples blurred (grainy rather than per-pixel), renormalised to keep that std."""
    sigma = uniform(gen, (batch,), cfg.gaussian_sigma_range, device)
    blur_sigma = uniform(gen, (batch,), cfg.gaussian_blur_sigma_range, device)
    blur = coin(gen, batch, cfg.p_gaussian_blur, device)
    noise = torch.randn(batch, 1, height, width, generator=gen, device=device)
    radius = math.ceil(3 * cfg.gaussian_blur_sigma_range[1])
    blurred = blur_per_sample(noise, blur_sigma, radius, normalise_noise=True)
    noise = torch.where(per_sample(blur), blurred, noise)
    return noise * per_sample(sigma)


def sample_clutter(batch: int, height: int, width: int, cfg: AugConfig, gen: torch.Generator,
                   device: torch.device) -> ClutterParams:
    amplitude = uniform(gen, (batch,), cfg.clutter_amplitude_range, device)
    density = uniform(gen, (batch,), cfg.speckle_density_range, device)
    cell = max(2, round(cfg.clutter_cell * height))
    field = perlin_noise(batch, height, width, cell, gen, device, octaves=cfg.clutter_octaves)
    grain = torch.rand(batch, 1, height, width, generator=gen, device=device)
    dots = torch.rand(batch, 1, height, width, generator=gen, device=device)
    return ClutterParams(amplitude, density, field, grain, dots)


def apply_clutter(prints: Tensor, p: ClutterParams, cfg: AugConfig) -> Tensor:
    """Background clutter: the Perlin texture where there is no ink (screen blend), the same
    field modulating the ink a little everywhere (uneven pressure), plus sparse speckles: dust
    (ink dots, some 2x2 grains) and holes in the ink."""
    _, _, h, w = prints.shape
    amplitude, density = per_sample(p.amplitude), per_sample(p.density)
    texture = (0.5 + 1.5 * p.field).clamp(0, 1) * (0.5 + 0.5 * p.grain)
    out = prints * (1 + cfg.clutter_ink_modulation * p.field)
    out = out + (1 - out).clamp_min(0) * amplitude * texture
    # one uniform draw picks disjoint speckle kinds: [0, .7d) single-pixel dust, [.5, .5 + d)
    # holes, and (1 - .3d, 1] on the even grid 2x2 dust grains (nearest upsampling)
    grains = (p.dots[:, :, ::2, ::2] > 1 - density * 0.3).repeat_interleave(2, dim=2)
    grains = grains.repeat_interleave(2, dim=3)[:, :, :h, :w]
    dust = (p.dots < density * 0.7) | grains
    holes = (p.dots >= 0.5) & (p.dots < 0.5 + density)
    out = torch.where(dust, torch.maximum(out, 0.4 + 0.6 * p.grain), out)
    return torch.where(holes, out * 0.15, out)


def sample_noise(shape: torch.Size, cfg: AugConfig, gen: torch.Generator,
                 device: torch.device) -> NoiseParams:
    b, _, h, w = shape
    perlin = mode_mask(gen, b, cfg.noise_mode, device)
    apply = coin(gen, b, cfg.p_noise, device)
    gain = uniform(gen, (b,), cfg.ink_gain_range, device)
    pixel = clutter = None
    if cfg.noise_mode != "gaussian":
        clutter = sample_clutter(b, h, w, cfg, gen, device)
    if cfg.noise_mode != "perlin":
        pixel = gaussian_pixel_noise(b, h, w, cfg, gen, device)
    return NoiseParams(perlin, apply, gain, pixel, clutter)


def apply_noise(prints: Tensor, p: NoiseParams, cfg: AugConfig) -> Tensor:
    faded = prints * per_sample(p.gain)
    if p.clutter is None:
        assert p.pixel is not None  # `sample_noise` draws clutter, pixel noise or both
        noisy = faded + p.pixel
    elif p.pixel is None:
        noisy = apply_clutter(faded, p.clutter, cfg)
    else:
        noisy = torch.where(per_sample(p.perlin), apply_clutter(faded, p.clutter, cfg),
                            faded + p.pixel)
    return torch.where(per_sample(p.apply), noisy, prints)
