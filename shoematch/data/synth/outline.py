"""Sole outlines: a shape family's width profile along the sole, rasterised as a signed distance.

The sole lies horizontally, heel on the left, toe on the right. `u` runs 0 → 1 from heel to toe;
`v` is the across position in sole lengths (+ = lateral side, drawn upward). Widths come from a
few control points, smoothed, and capped at both ends by superellipses whose exponent gives the
toe shape (pointed < round < square).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shoematch.data.schema import Canvas
from shoematch.data.synth.fields import box_blur

FAMILIES = ("running", "boot", "casual", "formal", "sandal")
TOE_SHAPES = ("round", "pointed", "square")
HEEL_TYPES = ("flat", "block")  # a block heel is separated from the forefoot by a recessed waist

# Half-widths (sole lengths) at heel, waist, ball; medial arch concavity.
_FAMILY_WIDTHS = {
    "running": (0.124, 0.098, 0.172, 0.030),
    "boot": (0.134, 0.118, 0.180, 0.014),
    "casual": (0.121, 0.102, 0.166, 0.022),
    "formal": (0.110, 0.084, 0.154, 0.026),
    "sandal": (0.127, 0.112, 0.168, 0.010),
}
# Toe cap: superellipse exponent, where the cap starts, medial shift of the tip.
_TOE_CAPS = {"round": (2.2, 0.79, 0.01), "square": (5.0, 0.86, 0.0), "pointed": (1.6, 0.73, 0.03)}
# Where the sole fits in the canvas: this share of the width, at most this share of the height.
_FIT_LENGTH = 0.86
_FIT_WIDTH = 0.74
_MAX_HALF_WIDTH = 0.19
_MAX_SLOPE = 8.0


@dataclass(frozen=True)
class OutlineParams:
    """One outline: widths in sole lengths, cap exponents, centre-line bend."""

    heel: float
    waist: float
    ball: float
    arch: float
    toe_exponent: float
    toe_start: float
    toe_shift: float
    heel_exponent: float
    bend: float


@dataclass(frozen=True)
class Sole:
    """A rasterised outline: geometry every later stage (regions, wear, masks) is built on."""

    length: float  # sole length in px
    u: np.ndarray  # (1, W) position along the sole, 0 = heel end, 1 = toe end
    v: np.ndarray  # (H, W) across position in sole lengths, + = lateral
    sd: np.ndarray  # (H, W) signed distance to the outline in px, + inside


def draw_outline(rng: np.random.Generator, family: str, toe_shape: str) -> OutlineParams:
    """Family widths and toe cap, each jittered by a few percent."""
    heel, waist, ball, arch = _FAMILY_WIDTHS[family]
    exponent, start, shift = _TOE_CAPS[toe_shape]
    jitter = rng.uniform(0.95, 1.05, size=4)
    return OutlineParams(
        heel=heel * jitter[0], waist=waist * jitter[1], ball=ball * jitter[2],
        arch=arch * jitter[3], toe_exponent=exponent * rng.uniform(0.92, 1.08),
        toe_start=start + rng.uniform(-0.02, 0.02), toe_shift=shift * rng.uniform(0.5, 1.5),
        heel_exponent=rng.uniform(2.0, 2.6 if family == "boot" else 2.3),
        bend=rng.uniform(0.0, 0.06),
    )


def sole_length(canvas: Canvas) -> float:
    """The nominal sole length (px) on `canvas`: fits the width, and the height across."""
    return min(_FIT_LENGTH * canvas.width,
               _FIT_WIDTH * canvas.height / (2 * _MAX_HALF_WIDTH))


def _cap(t: np.ndarray, exponent: float) -> np.ndarray:
    """Superellipse end cap: 1 at t = 0 falling to 0 at t = 1."""
    t = np.clip(t, 0.0, 1.0)
    return (1.0 - t**exponent) ** (1.0 / exponent)


def _profiles(p: OutlineParams, u: np.ndarray, smooth: int) -> tuple[np.ndarray, np.ndarray]:
    """Lateral and medial half-widths (sole lengths) at positions `u` (1-D).

    The medial side is concave at the arch and its toe cap starts later (the big toe), so the
    toe leans medially like a real foot.
    """
    sides = (
        ([-0.1, 0.12, 0.43, 0.65, 0.9, 1.1],
         [p.heel, p.heel, p.waist, p.ball, 0.94 * p.ball, 0.9 * p.ball], p.toe_start - 0.04),
        ([-0.1, 0.14, 0.40, 0.72, 0.9, 1.1],
         [p.heel, p.heel, p.waist - p.arch, p.ball, 0.97 * p.ball, 0.95 * p.ball],
         p.toe_start + 0.03),
    )
    widths = []
    for xp, fp, toe_start in sides:
        w = np.interp(u, xp, fp).astype(np.float32)[None, :]
        w = box_blur(box_blur(w, smooth), smooth)[0]
        heel_cap = _cap((0.14 - u) / 0.14, p.heel_exponent)
        toe_cap = _cap((u - toe_start) / (1.0 - toe_start), p.toe_exponent)
        widths.append(np.where((u < 0) | (u > 1), 0.0, w * heel_cap * toe_cap))
    return widths[0], widths[1]


def rasterise(p: OutlineParams, canvas: Canvas, scale: float = 1.0, width: float = 1.0) -> Sole:
    """The outline centred on `canvas`, `scale` × the nominal length, `width` × its widths."""
    h, w = canvas.shape
    length = sole_length(canvas) * scale
    x = np.arange(w, dtype=np.float32) + 0.5
    x0 = (w - length) / 2
    u = (x - x0) / length
    lateral, medial = _profiles(p, u, smooth=max(1, int(0.06 * length)))
    lateral, medial = lateral * width, medial * width
    toe = np.clip((u - p.toe_start) / (1.0 - p.toe_start), 0.0, 1.0)
    centre = h / 2 + length * (p.bend * (u - 0.5) ** 2 + p.toe_shift * toe**2 - 0.01)
    top = centre - length * lateral
    bottom = centre + length * medial
    # Capped: where a toe or heel cap ends, the width drops to 0 between two columns, and an
    # unbounded slope would put every pixel of that column at distance ~0 from the outline.
    slope_top = np.clip(np.gradient(top), -_MAX_SLOPE, _MAX_SLOPE)
    slope_bottom = np.clip(np.gradient(bottom), -_MAX_SLOPE, _MAX_SLOPE)
    y = (np.arange(h, dtype=np.float32) + 0.5)[:, None]
    vertical = np.minimum((y - top) / np.sqrt(1 + slope_top**2),
                          (bottom - y) / np.sqrt(1 + slope_bottom**2))
    ends = np.minimum(x - x0, x0 + length - x)[None, :]
    sd = np.minimum(vertical, ends).astype(np.float32)
    v = ((centre - y) / length).astype(np.float32)
    return Sole(length=length, u=u[None, :].astype(np.float32), v=v, sd=sd)
