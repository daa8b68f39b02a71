"""Occlusion: a second, partial impression of the print, then random quadrilaterals hiding
parts of it. `sample_occlusion` draws everything random, `apply_occlusion` only computes."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from kornia.geometry.transform import get_rotation_matrix2d, warp_affine
from torch import Tensor

from shoematch.augment.config import AugConfig
from shoematch.augment.draws import coin, col, grid, per_sample, uniform


@dataclass
class OcclusionParams:
    """One batch's occlusion draws (per sample, on the prints' device)."""

    angle: Tensor  # [B] degrees: rotation of the second impression
    scale: Tensor  # [B]
    shift: Tensor  # [B, 2] pixels (x, y)
    strength: Tensor  # [B] ink of the second impression relative to the first
    point: Tensor  # [B, 2] a point of the line limiting the second impression (canvas fraction)
    theta: Tensor  # [B] direction of that line
    overlay: Tensor  # [B] bool: a second impression at all
    cover: Tensor  # [B, 1, H, W] float, 1 where a quadrilateral hides the print


def quad_mask(batch: int, height: int, width: int, cfg: AugConfig, gen: torch.Generator,
              device: torch.device) -> Tensor:
    """[B, 1, H, W] float, 1 where one of 1..max_quads random quadrilaterals covers the pixel.

    Each quad is star-shaped around its centre (4 vertices at increasing angles, random radii),
    rasterised as a fan of 4 triangles by half-plane tests. Edge functions are linear in x, y, so
    each is one [B, H, 1] + [B, 1, W] broadcast add."""
    q = cfg.max_quads
    size = torch.tensor([width, height], device=device, dtype=torch.float32)
    centre = torch.rand(batch, q, 2, generator=gen, device=device) * size
    radius = uniform(gen, (batch, q, 4), cfg.quad_radius_range, device) * height
    jitter = (torch.rand(batch, q, 4, generator=gen, device=device) * 2 - 1) * (0.2 * math.pi)
    spin = torch.rand(batch, q, 1, generator=gen, device=device) * (2 * math.pi)
    count = torch.rand(batch, generator=gen, device=device) * q  # floor(count) + 1 quads
    apply = coin(gen, batch, cfg.p_quads, device)

    angles = torch.arange(4, device=device) * (math.pi / 2) + jitter + spin
    vx = centre[..., 0:1] + radius * torch.cos(angles)  # [B, q, 4]
    vy = centre[..., 1:2] + radius * torch.sin(angles)
    active = (torch.arange(q, device=device) < count[:, None]) & apply[:, None]  # [B, q]
    ys, xs = grid(height, width, device)

    def edge(ax: Tensor, ay: Tensor, bx: Tensor, by: Tensor) -> Tensor:
        """Cross((b - a), (p - a)) for every pixel p: > 0 left of a->b."""
        return col(bx - ax) * ys - col((bx - ax) * ay) + (col(ax * (by - ay)) -
                                                          col(by - ay) * xs)

    covered = torch.zeros(batch, height, width, dtype=torch.bool, device=device)
    for j in range(q):
        cx, cy = centre[:, j, 0], centre[:, j, 1]
        spokes = [edge(cx, cy, vx[:, j, i], vy[:, j, i]) >= 0 for i in range(4)]
        inside = torch.zeros_like(covered)
        for i in range(4):
            k = (i + 1) % 4
            rim = edge(vx[:, j, i], vy[:, j, i], vx[:, j, k], vy[:, j, k]) >= 0
            inside |= spokes[i] & ~spokes[k] & rim
        covered |= inside & col(active[:, j])
    return covered.unsqueeze(1).float()


def sample_occlusion(shape: torch.Size, cfg: AugConfig, gen: torch.Generator,
                     device: torch.device) -> OcclusionParams:
    b, _, h, w = shape
    angle = uniform(gen, (b,), (-cfg.overlay_max_rotation_deg, cfg.overlay_max_rotation_deg),
                    device)
    scale = uniform(gen, (b,), cfg.overlay_scale_range, device)
    shift = (torch.rand(b, 2, generator=gen, device=device) * 2 - 1) * cfg.overlay_max_shift
    shift = shift * torch.tensor([w, h], device=device, dtype=torch.float32)
    strength = uniform(gen, (b,), cfg.overlay_strength_range, device)
    point = (torch.rand(b, 2, generator=gen, device=device) - 0.5) * 0.6 + 0.5
    theta = torch.rand(b, generator=gen, device=device) * (2 * math.pi)
    overlay = coin(gen, b, cfg.p_self_overlay, device)
    cover = quad_mask(b, h, w, cfg, gen, device)
    return OcclusionParams(angle, scale, shift, strength, point, theta, overlay, cover)


def self_overlay(prints: Tensor, p: OcclusionParams, cfg: AugConfig) -> Tensor:
    """A second, partial impression: the print max-combined with a rotated, shifted, rescaled
    and fainter copy of itself (a double step at the scene), kept on one side of a line."""
    b, _, h, w = prints.shape
    dev = prints.device
    centre = torch.tensor([(w - 1) / 2, (h - 1) / 2], device=dev).expand(b, 2)
    matrix = get_rotation_matrix2d(centre, p.angle, p.scale[:, None].expand(b, 2))
    matrix = matrix + torch.cat([torch.zeros(b, 2, 2, device=dev), p.shift[:, :, None]], dim=2)
    copy = warp_affine(prints, matrix, (h, w), mode="bilinear", padding_mode="zeros",
                       align_corners=True)
    if cfg.overlay_partial:
        ys, xs = grid(h, w, dev)
        side = (xs - col(p.point[:, 0] * w)) * col(torch.cos(p.theta)) \
            + (ys - col(p.point[:, 1] * h)) * col(torch.sin(p.theta))
        copy = copy * (side > 0).unsqueeze(1)
    overlaid = torch.maximum(prints, copy * per_sample(p.strength))
    return torch.where(per_sample(p.overlay), overlaid, prints)


def apply_occlusion(prints: Tensor, p: OcclusionParams, cfg: AugConfig) -> Tensor:
    return self_overlay(prints, p, cfg) * (1 - p.cover)
