"""Tread elements as signed distances, one primitive per NFRC descriptor.

Every function takes local coordinates in px (float32 arrays, broadcastable) and returns the
signed distance to the element's outline (negative inside). A region is filled by mapping its
pixels into repeating cells (`cells`) and evaluating one primitive on the whole grid at once.
`fill_sdf` maps a region's `Fill` (which element, pitch, angle…) to that distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Fill kind → descriptor codes it realises (hollow adds its shape's code; text and logo are
# stamped separately as D09 / D10).
FILL_CODES: dict[str, tuple[str, ...]] = {
    "bars": ("D01",),
    "wavy": ("D01-01",),
    "curved": ("D01-02",),
    "circles": ("D02",),
    "targets": ("D02-01",),
    "triangles": ("D03",),
    "squares": ("D04",),
    "pentagons": ("D05",),
    "hexagons": ("D06",),
    "complex": ("D07",),
    "zigzag": ("D08",),
    "lattice": ("D11",),
    "texture": ("D12",),
    "hollow": ("D13",),
    "plain": ("D14",),
}
FILL_KINDS: tuple[str, ...] = tuple(FILL_CODES)
# Shapes a hollow fill may outline, and the code of each.
HOLLOW_SHAPES: dict[str, str] = {
    "circle": "D02", "triangle": "D03", "square": "D04", "pentagon": "D05", "hexagon": "D06",
    "star": "D07",
}
COMPLEX_SHAPES = ("star", "cross", "arrow")
_SIDES = {"triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6}
_TAU = np.float32(2 * np.pi)
_SQRT3_2 = np.float32(np.sqrt(3) / 2)


@dataclass(frozen=True)
class Fill:
    """How a region is filled.

    `pitch` is the cell spacing in sole lengths; `size` the element's share of the cell; `angle`
    the cell grid's rotation (radians, 0 = along the sole); `shape` picks the complex / hollow
    shape; `param` is kind-specific (wave amplitude, ring count, jitter).
    """

    kind: str
    pitch: float
    size: float
    angle: float
    shape: str = ""
    param: float = 0.0
    stagger: bool = False
    phase: tuple[float, float] = (0.0, 0.0)

    @property
    def codes(self) -> tuple[str, ...]:
        extra = (HOLLOW_SHAPES[self.shape],) if self.kind == "hollow" else ()
        return FILL_CODES[self.kind] + extra


def cells(x: np.ndarray, y: np.ndarray, pitch_x: float, pitch_y: float | np.floating,
          stagger: bool
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Local coordinates within repeating cells (odd rows shifted half a cell when `stagger`),
    plus each pixel's cell column and row."""
    row = np.floor(y / pitch_y + 0.5)
    if stagger:
        x = x - (0.5 * pitch_x) * np.mod(row, 2)
    col = np.floor(x / pitch_x + 0.5)
    return x - col * pitch_x, y - row * pitch_y, col, row


def circle(x: np.ndarray, y: np.ndarray, r: float) -> np.ndarray:
    return np.hypot(x, y) - r


def box(x: np.ndarray, y: np.ndarray, half_w: float, half_h: float) -> np.ndarray:
    return np.maximum(np.abs(x) - half_w, np.abs(y) - half_h)


def polygon(x: np.ndarray, y: np.ndarray, sides: int, apothem: float,
            rotation: float | np.floating | np.ndarray = 0.0) -> np.ndarray:
    """Regular polygon with an edge normal at `rotation`; exact outside the corners too, so
    hollow outlines do not run on along the edge lines."""
    sector = _TAU / sides
    a = np.mod(np.arctan2(y, x) - rotation + sector / 2, sector) - sector / 2
    d = np.hypot(x, y)
    dx = d * np.cos(a) - apothem
    dy = np.maximum(np.abs(d * np.sin(a)) - apothem * np.tan(np.pi / sides), 0)
    return np.where(dx > 0, np.hypot(dx, dy), dx)


def star(x: np.ndarray, y: np.ndarray, points: int, r: float, inner: float) -> np.ndarray:
    """Star with tips at radius `r`, valleys at `inner`·r, a tip pointing up."""
    sector = _TAU / points
    a = np.abs(np.mod(np.arctan2(x, -y) + sector / 2, sector) - sector / 2)
    d = np.hypot(x, y)
    qx, qy = d * np.cos(a) - r, d * np.sin(a)  # relative to the tip at (r, 0)
    ex, ey = inner * r * np.cos(sector / 2) - r, inner * r * np.sin(sector / 2)
    t = np.clip((qx * ex + qy * ey) / (ex * ex + ey * ey), 0.0, 1.0)
    dist = np.hypot(qx - t * ex, qy - t * ey)
    return np.where(qx * ey - qy * ex > 0, dist, -dist)


def cross(x: np.ndarray, y: np.ndarray, r: float, t: float) -> np.ndarray:
    return np.minimum(box(x, y, r, t), box(x, y, t, r))


def arrow(x: np.ndarray, y: np.ndarray, r: float, t: float) -> np.ndarray:
    """A shaft with a triangular head pointing +x."""
    shaft = box(x + 0.45 * r, y, 0.55 * r, t)
    head = polygon(x - 0.35 * r, y, 3, 0.3 * r, np.float32(np.pi))
    return np.minimum(shaft, head)


def target(x: np.ndarray, y: np.ndarray, r: float, rings: int) -> np.ndarray:
    """Concentric rings around a centre dot, out to radius `r`."""
    pitch = r / (rings + 0.35)
    d = np.hypot(x, y)
    k = np.clip(np.floor(d / pitch + 0.5), 0, rings)
    return np.maximum(np.abs(d - k * pitch) - 0.3 * pitch, d - r)


def shape_sdf(shape: str, x: np.ndarray, y: np.ndarray, r: float,
              rotation: float | np.floating | np.ndarray = 0.0) -> np.ndarray:
    """A named closed shape of radius ~`r` (used for complex and hollow fills)."""
    if shape == "circle":
        return circle(x, y, r)
    if shape in _SIDES:
        sides = _SIDES[shape]
        return polygon(x, y, sides, r * np.cos(np.pi / sides), rotation)
    if shape == "star":
        return star(x, y, 5, r, 0.45)
    if shape == "cross":
        return cross(x, y, r, 0.32 * r)
    if shape == "arrow":
        return arrow(x, y, r, 0.26 * r)
    raise ValueError(f"unknown shape {shape!r}")


def _stripes(y: np.ndarray, pitch: float, half: float, slope: np.ndarray | float = 0.0
             ) -> np.ndarray:
    """Parallel bars across `y`, thickness 2·`half`, corrected for the local slope of waves."""
    ly = y - pitch * np.floor(y / pitch + 0.5)
    return (np.abs(ly) - half) / np.sqrt(1 + slope * slope)


def _triangles(x: np.ndarray, y: np.ndarray, pitch: float, size: float) -> np.ndarray:
    """Staggered rows of triangles (side `size`·`pitch`) all pointing one way, like lugs."""
    radius = size * pitch / np.sqrt(3)
    lx, ly, _, _ = cells(x, y, pitch, 1.5 * radius + 1.5 * (1 - size) * pitch, True)
    # Centre the vertical span [-r, r/2] of an upright triangle on its cell.
    return polygon(lx, ly - 0.25 * radius, 3, 0.5 * radius, np.float32(np.pi / 2))


def fill_sdf(fill: Fill, x: np.ndarray, y: np.ndarray, length: float,
             jitter: np.ndarray) -> np.ndarray:
    """Signed distance of `fill`'s raised surface at local coords (px, region-centred).

    `length` is the sole length (px) the pitch is relative to; `jitter` a (3, n, n) table of
    per-cell random numbers in [0, 1) (used by the stipple texture).
    """
    c, s = np.cos(fill.angle), np.sin(fill.angle)
    p = fill.pitch * length
    gx = x * c + y * s + fill.phase[0] * p
    gy = y * c - x * s + fill.phase[1] * p
    kind, size = fill.kind, fill.size
    if kind == "plain":
        return np.full(np.broadcast(gx, gy).shape, -length, dtype=np.float32)
    if kind == "bars":
        if fill.param <= 0:
            return _stripes(gy, p, 0.5 * size * p)
        lx, ly, _, _ = cells(gx, gy, fill.param * p, p, fill.stagger)
        return box(lx, ly, 0.5 * fill.param * p - 0.5 * (1 - size) * p, 0.5 * size * p)
    if kind == "wavy":
        k = _TAU / (2.5 * p)
        amp = fill.param * p
        return _stripes(gy + amp * np.sin(k * gx), p, 0.5 * size * p, amp * k * np.cos(k * gx))
    if kind == "curved":
        radius = 3.0 * length * (1 + fill.param)
        r = np.hypot(gx, gy + radius)
        wobble = 0.12 * p * np.sin(_TAU * gx / (3.0 * p))
        return _stripes(r + wobble, p, 0.5 * size * p)
    if kind == "zigzag":
        wave = 2.0 * p
        amp = fill.param * p
        tri = 2.0 * np.abs(gx / wave - np.floor(gx / wave + 0.5))
        return _stripes(gy + amp * (2 * tri - 1), p, 0.5 * size * p, 4 * amp / wave)
    if kind == "lattice":
        lx, ly, _, _ = cells(gx, gy, p, p, False)
        return np.minimum(np.abs(lx), np.abs(ly)) - 0.5 * size * p
    if kind == "texture":
        lx, ly, col, row = cells(gx, gy, p, p, True)
        n = jitter.shape[1]
        ci, ri = np.mod(col, n).astype(np.intp), np.mod(row, n).astype(np.intp)
        dx, dy, dr = jitter[0][ri, ci], jitter[1][ri, ci], jitter[2][ri, ci]
        radius = 0.5 * size * p * (0.6 + 0.8 * dr)
        return np.hypot(lx - (dx - 0.5) * 0.5 * p, ly - (dy - 0.5) * 0.5 * p) - radius
    if kind == "triangles":
        return _triangles(gx, gy, p, size)
    hexed = kind in ("circles", "hexagons", "targets") or fill.stagger
    pitch_y = p * _SQRT3_2 if hexed else p
    lx, ly, col, row = cells(gx, gy, p, pitch_y, hexed)
    r = 0.5 * size * p
    if kind == "circles":
        return circle(lx, ly, r)
    if kind == "targets":
        return target(lx, ly, r, max(1, int(fill.param)))
    if kind == "squares":
        return polygon(lx, ly, 4, r * 0.8, fill.param)
    if kind == "pentagons":
        return polygon(lx, ly, 5, r * 0.85, np.float32(np.pi / 2))
    if kind == "hexagons":
        return polygon(lx, ly, 6, r * 0.95, 0.0)
    if kind == "complex":
        return shape_sdf(fill.shape, lx, ly, r)
    if kind == "hollow":
        t = max(0.8, fill.param * p)
        upright = np.float32(np.pi / 2) if fill.shape in ("triangle", "pentagon") else 0.0
        return np.abs(shape_sdf(fill.shape, lx, ly, r - t, upright)) - t
    raise ValueError(f"unknown fill kind {kind!r}")
