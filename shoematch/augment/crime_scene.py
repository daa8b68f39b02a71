"""Crime-scene simulation of clean shoeprints (docs/data-flow.md, "Augmentation"): occlusion,
erasure, noise.

Every step is a batched tensor op on the input's device with per-sample random parameters drawn
from one `torch.Generator`: no host syncs (no .item(), no numpy, no data-dependent branching), so
the same code runs in a CPU data pipeline or on the training GPU. Per-sample on/off choices are
drawn as masks and applied with `torch.where`, which keeps the random stream, and therefore the
output, a function of (seed, input shape, config) only.
"""

from __future__ import annotations

import math

import torch
from kornia.geometry.transform import get_rotation_matrix2d, warp_affine
from torch import Tensor

from shoematch.augment.config import AugConfig, Range
from shoematch.augment.perlin import perlin_noise


# ----------------------------------------------------------------------------- random helpers
def _uniform(gen: torch.Generator, shape: tuple[int, ...], bounds: Range,
             device: torch.device) -> Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(shape, generator=gen, device=device)


def _coin(gen: torch.Generator, batch: int, p: float, device: torch.device) -> Tensor:
    """Per-sample booleans, True with probability p."""
    return torch.rand(batch, generator=gen, device=device) < p


def _mode_mask(gen: torch.Generator, batch: int, mode: str, device: torch.device) -> Tensor:
    """Per-sample True = Perlin variant, False = Gaussian; 'random' is a fair coin."""
    if mode == "random":
        return _coin(gen, batch, 0.5, device)
    return torch.full((batch,), mode == "perlin", dtype=torch.bool, device=device)


def _grid(height: int, width: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates, ys [1, H, 1] and xs [1, 1, W], for broadcasting over [B, H, W]."""
    ys = torch.arange(height, device=device, dtype=torch.float32).view(1, height, 1)
    xs = torch.arange(width, device=device, dtype=torch.float32).view(1, 1, width)
    return ys, xs


def _col(t: Tensor) -> Tensor:
    """[B] -> [B, 1, 1] for broadcasting against [B, H, W] (or [B, H, 1], [B, 1, W])."""
    return t.view(-1, 1, 1)


# ----------------------------------------------------------------------------- occlusion
def self_overlay(prints: Tensor, cfg: AugConfig, gen: torch.Generator) -> Tensor:
    """A second, partial impression: the print max-combined with a rotated, shifted, rescaled
    and fainter copy of itself (a double step at the scene), kept on one side of a random line."""
    b, _, h, w = prints.shape
    dev = prints.device
    angle = _uniform(gen, (b,), (-cfg.overlay_max_rotation_deg, cfg.overlay_max_rotation_deg),
                     dev)
    scale = _uniform(gen, (b,), cfg.overlay_scale_range, dev)
    shift = (torch.rand(b, 2, generator=gen, device=dev) * 2 - 1) * cfg.overlay_max_shift
    shift = shift * torch.tensor([w, h], device=dev, dtype=torch.float32)
    strength = _uniform(gen, (b,), cfg.overlay_strength_range, dev)
    # the dividing line: through a point near the centre, random direction
    point = (torch.rand(b, 2, generator=gen, device=dev) - 0.5) * 0.6 + 0.5
    theta = torch.rand(b, generator=gen, device=dev) * (2 * math.pi)
    apply = _coin(gen, b, cfg.p_self_overlay, dev)

    centre = torch.tensor([(w - 1) / 2, (h - 1) / 2], device=dev).expand(b, 2)
    matrix = get_rotation_matrix2d(centre, angle, scale[:, None].expand(b, 2))
    matrix = matrix + torch.cat([torch.zeros(b, 2, 2, device=dev), shift[:, :, None]], dim=2)
    copy = warp_affine(prints, matrix, (h, w), mode="bilinear", padding_mode="zeros",
                       align_corners=True)
    if cfg.overlay_partial:
        ys, xs = _grid(h, w, dev)
        side = (xs - _col(point[:, 0] * w)) * _col(torch.cos(theta)) \
            + (ys - _col(point[:, 1] * h)) * _col(torch.sin(theta))
        copy = copy * (side > 0).unsqueeze(1)
    overlaid = torch.maximum(prints, copy * strength.view(b, 1, 1, 1))
    return torch.where(apply.view(b, 1, 1, 1), overlaid, prints)


def quad_mask(batch: int, height: int, width: int, cfg: AugConfig, gen: torch.Generator,
              device: torch.device) -> Tensor:
    """[B, 1, H, W] float, 1 where one of 1..max_quads random quadrilaterals covers the pixel.

    Each quad is star-shaped around its centre (4 vertices at increasing angles, random radii),
    rasterised as a fan of 4 triangles by half-plane tests. Edge functions are linear in x, y, so
    each is one [B, H, 1] + [B, 1, W] broadcast add."""
    q = cfg.max_quads
    size = torch.tensor([width, height], device=device, dtype=torch.float32)
    centre = torch.rand(batch, q, 2, generator=gen, device=device) * size
    radius = _uniform(gen, (batch, q, 4), cfg.quad_radius_range, device) * height
    jitter = (torch.rand(batch, q, 4, generator=gen, device=device) * 2 - 1) * (0.2 * math.pi)
    spin = torch.rand(batch, q, 1, generator=gen, device=device) * (2 * math.pi)
    count = torch.rand(batch, generator=gen, device=device) * q  # floor(count) + 1 quads
    apply = _coin(gen, batch, cfg.p_quads, device)

    angles = torch.arange(4, device=device) * (math.pi / 2) + jitter + spin
    vx = centre[..., 0:1] + radius * torch.cos(angles)  # [B, q, 4]
    vy = centre[..., 1:2] + radius * torch.sin(angles)
    active = (torch.arange(q, device=device) < count[:, None]) & apply[:, None]  # [B, q]
    ys, xs = _grid(height, width, device)

    def edge(ax: Tensor, ay: Tensor, bx: Tensor, by: Tensor) -> Tensor:
        """Cross((b - a), (p - a)) for every pixel p: > 0 left of a->b."""
        return _col(bx - ax) * ys - _col((bx - ax) * ay) + (_col(ax * (by - ay)) -
                                                            _col(by - ay) * xs)

    covered = torch.zeros(batch, height, width, dtype=torch.bool, device=device)
    for j in range(q):
        cx, cy = centre[:, j, 0], centre[:, j, 1]
        spokes = [edge(cx, cy, vx[:, j, i], vy[:, j, i]) >= 0 for i in range(4)]
        inside = torch.zeros_like(covered)
        for i in range(4):
            k = (i + 1) % 4
            rim = edge(vx[:, j, i], vy[:, j, i], vx[:, j, k], vy[:, j, k]) >= 0
            inside |= spokes[i] & ~spokes[k] & rim
        covered |= inside & _col(active[:, j])
    return covered.unsqueeze(1).float()


def occlude(prints: Tensor, cfg: AugConfig, gen: torch.Generator) -> Tensor:
    """Occlusion: a second partial impression, then quadrilaterals hiding parts of the print."""
    b, _, h, w = prints.shape
    out = self_overlay(prints, cfg, gen)
    return out * (1 - quad_mask(b, h, w, cfg, gen, prints.device))


# ----------------------------------------------------------------------------- erasure
def gaussian_blob_field(batch: int, height: int, width: int, cfg: AugConfig,
                        gen: torch.Generator, device: torch.device) -> Tensor:
    """[B, 1, H, W] sum of 1..max_blobs anisotropic, rotated Gaussians (random amplitudes)."""
    k = cfg.erasure_max_blobs
    size = torch.tensor([width, height], device=device, dtype=torch.float32)
    centre = torch.rand(batch, k, 2, generator=gen, device=device) * size
    sigma = _uniform(gen, (batch, k, 2), cfg.erasure_blob_sigma_range, device) * height
    theta = torch.rand(batch, k, generator=gen, device=device) * math.pi
    amp = _uniform(gen, (batch, k), (0.5, 1.0), device)
    count = torch.rand(batch, generator=gen, device=device) * k
    amp = amp * (torch.arange(k, device=device) < count[:, None])  # blob 0 always on

    ys, xs = _grid(height, width, device)
    field = torch.zeros(batch, height, width, device=device)
    cos, sin = torch.cos(theta), torch.sin(theta)
    for j in range(k):
        dx, dy = xs - _col(centre[:, j, 0]), ys - _col(centre[:, j, 1])
        u = _col(cos[:, j] / sigma[:, j, 0]) * dx + _col(sin[:, j] / sigma[:, j, 0]) * dy
        v = _col(cos[:, j] / sigma[:, j, 1]) * dy - _col(sin[:, j] / sigma[:, j, 1]) * dx
        field = field + _col(amp[:, j]) * torch.exp(-0.5 * (u * u + v * v))
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


def erase(prints: Tensor, cfg: AugConfig, gen: torch.Generator) -> Tensor:
    """Erasure: parts of the print that did not transfer, shaped by Gaussian blobs or by
    thresholded Perlin noise (per sample by `erasure_mode`), faded by a random strength."""
    b, _, h, w = prints.shape
    dev = prints.device
    use_perlin = _mode_mask(gen, b, cfg.erasure_mode, dev)
    fraction = _uniform(gen, (b,), cfg.erasure_fraction_range, dev)
    strength = _uniform(gen, (b,), cfg.erasure_strength_range, dev)
    strength = strength * _coin(gen, b, cfg.p_erasure, dev)
    if cfg.erasure_mode == "gaussian":
        field = gaussian_blob_field(b, h, w, cfg, gen, dev)
    else:
        cell = max(2, round(cfg.erasure_perlin_cell * h))
        field = perlin_noise(b, h, w, cell, gen, dev, octaves=2)
        if cfg.erasure_mode == "random":
            blobs = gaussian_blob_field(b, h, w, cfg, gen, dev)
            field = torch.where(use_perlin.view(b, 1, 1, 1), field, blobs)
    mask = threshold_fraction(field, fraction)
    return prints * (1 - strength.view(b, 1, 1, 1) * mask)


# ----------------------------------------------------------------------------- noise
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
    sigma = _uniform(gen, (batch,), cfg.gaussian_sigma_range, device)
    blur_sigma = _uniform(gen, (batch,), cfg.gaussian_blur_sigma_range, device)
    blur = _coin(gen, batch, cfg.p_gaussian_blur, device)
    noise = torch.randn(batch, 1, height, width, generator=gen, device=device)
    radius = math.ceil(3 * cfg.gaussian_blur_sigma_range[1])
    blurred = blur_per_sample(noise, blur_sigma, radius, normalise_noise=True)
    noise = torch.where(blur.view(batch, 1, 1, 1), blurred, noise)
    return noise * sigma.view(batch, 1, 1, 1)


def perlin_clutter(prints: Tensor, cfg: AugConfig, gen: torch.Generator) -> Tensor:
    """Background clutter: multi-octave Perlin texture where there is no ink (screen blend),
    the same field modulating the ink a little everywhere (uneven pressure), plus sparse
    speckles: dust (ink dots, some 3x3) and holes in the ink."""
    b, _, h, w = prints.shape
    dev = prints.device
    amp = _uniform(gen, (b,), cfg.clutter_amplitude_range, dev).view(b, 1, 1, 1)
    density = _uniform(gen, (b,), cfg.speckle_density_range, dev).view(b, 1, 1, 1)
    cell = max(2, round(cfg.clutter_cell * h))
    field = perlin_noise(b, h, w, cell, gen, dev, octaves=cfg.clutter_octaves)
    grain = torch.rand(b, 1, h, w, generator=gen, device=dev)  # surface grain, speckle shade
    texture = (0.5 + 1.5 * field).clamp(0, 1) * (0.5 + 0.5 * grain)
    out = prints * (1 + cfg.clutter_ink_modulation * field)
    out = out + (1 - out).clamp_min(0) * amp * texture

    # one uniform draw picks disjoint speckle kinds: [0, .7d) single-pixel dust, [.5, .5 + d)
    # holes, and (1 - .3d, 1] on the even grid 2x2 dust grains (nearest upsampling)
    dots = torch.rand(b, 1, h, w, generator=gen, device=dev)
    grains = (dots[:, :, ::2, ::2] > 1 - density * 0.3).repeat_interleave(2, dim=2)
    grains = grains.repeat_interleave(2, dim=3)[:, :, :h, :w]
    dust = (dots < density * 0.7) | grains
    holes = (dots >= 0.5) & (dots < 0.5 + density)
    out = torch.where(dust, torch.maximum(out, 0.4 + 0.6 * grain), out)
    return torch.where(holes, out * 0.15, out)


def add_noise(prints: Tensor, cfg: AugConfig, gen: torch.Generator) -> Tensor:
    """Noise: a random overall ink gain, then Gaussian pixel noise or Perlin background clutter
    (per sample by `noise_mode`)."""
    b, _, h, w = prints.shape
    dev = prints.device
    use_perlin = _mode_mask(gen, b, cfg.noise_mode, dev)
    apply = _coin(gen, b, cfg.p_noise, dev).view(b, 1, 1, 1)
    gain = _uniform(gen, (b,), cfg.ink_gain_range, dev).view(b, 1, 1, 1)
    faded = prints * gain
    if cfg.noise_mode == "gaussian":
        noisy = faded + gaussian_pixel_noise(b, h, w, cfg, gen, dev)
    else:
        noisy = perlin_clutter(faded, cfg, gen)
        if cfg.noise_mode == "random":
            pixel = faded + gaussian_pixel_noise(b, h, w, cfg, gen, dev)
            noisy = torch.where(use_perlin.view(b, 1, 1, 1), noisy, pixel)
    return torch.where(apply, noisy, prints)


# ----------------------------------------------------------------------------- entry point
def _check(prints: Tensor, generator: torch.Generator) -> None:
    if prints.ndim != 4 or prints.shape[1] != 1:
        raise ValueError(f"prints must be [B, 1, H, W], got {tuple(prints.shape)}")
    if not prints.is_floating_point():
        raise TypeError(f"prints must be floating point in [0, 1], got {prints.dtype}")
    if prints.device.type != "meta" and generator.device.type != prints.device.type:
        raise ValueError(f"generator is on {generator.device} but prints are on {prints.device}: "
                         "create it with torch.Generator(device=prints.device)")


@torch.no_grad()
def augment_prints(prints: Tensor, cfg: AugConfig, generator: torch.Generator) -> Tensor:
    """Turn clean prints [B, 1, H, W] in [0, 1] (1 = ink) into crime-scene-like ones: occlusion,
    then erasure, then noise, each switchable in `cfg`. Computes in float32 on the prints'
    device and returns the input dtype, clamped to [0, 1]. Deterministic for a given generator
    state, input shape and config (CPU and CUDA generators give different streams)."""
    _check(prints, generator)
    if not (cfg.occlusion or cfg.erasure or cfg.noise):
        return prints.clone()
    out = prints.float()
    if cfg.occlusion:
        out = occlude(out, cfg, generator)
    if cfg.erasure:
        out = erase(out, cfg, generator)
    if cfg.noise:
        out = add_noise(out, cfg, generator)
    return out.clamp(0, 1).to(prints.dtype)
