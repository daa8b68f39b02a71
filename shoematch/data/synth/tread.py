"""A model's canonical tread: its height field on the canvas, rasterised once per model.

Heights are in [0, 1] (depth = height · 255): 0 outside the sole, the sole base at BASE, raised
elements up to TOP. A block heel's waist is recessed (RECESS_*) so it never touches the ground.
Each region is filled by one vectorised signed-distance evaluation over its bounding box; text
and a logo are stamped on cleared plates afterwards.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from shoematch.data.schema import Canvas
from shoematch.data.synth.elements import fill_sdf
from shoematch.data.synth.fields import ramp
from shoematch.data.synth.outline import Sole, rasterise
from shoematch.data.synth.patterns import ARCH, Model, Recipe
from shoematch.data.synth.spec import TAG_PATTERN, rng_for

BASE = 0.5
TOP = 1.0
RECESS_FLOOR = 0.34
RECESS_TOP = 0.62
# Heights above this touch the ground: the print is `height > CONTACT`.
CONTACT = 0.75
_JITTER_CELLS = 16


@dataclass(frozen=True)
class Tread:
    """The canonical (un-posed) tread of one model."""

    height: np.ndarray  # (H, W) float32 in [0, 1]
    sole: Sole


@functools.lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _region_map(recipe: Recipe, sole: Sole) -> np.ndarray:
    """Region index (0 heel … 3 toe) of every pixel."""
    v = sole.v
    region = np.zeros(v.shape, dtype=np.int8)
    for k in range(3):
        region += sole.u > _boundary(recipe, k, v)
    return region


def _boundary(recipe: Recipe, k: int, v: np.ndarray) -> np.ndarray:
    """u of boundary k (between regions k and k + 1) at across positions `v`."""
    return recipe.bounds[k] + recipe.slants[k] * v + recipe.bows[k] * v * v


def _region_distance(recipe: Recipe, sole: Sole, region: int, sl: tuple[slice, slice],
                     inset: float) -> np.ndarray:
    """Distance (px) inside `region` to its boundaries and to the sole edge less `inset`."""
    u, v, length = sole.u[:, sl[1]], sole.v[sl], sole.length
    d = sole.sd[sl] - inset
    if region > 0:
        d = np.minimum(d, (u - _boundary(recipe, region - 1, v)) * length)
    if region < 3:
        d = np.minimum(d, (_boundary(recipe, region, v) - u) * length)
    return d


def _bbox(mask: np.ndarray) -> tuple[slice, slice] | None:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _levels(model: Model, region: int) -> tuple[float, float]:
    """(floor, top) heights of a region."""
    if region == ARCH and model.recipe.heel_type == "block":
        return RECESS_FLOOR, RECESS_TOP
    return BASE, TOP


def _stamp(height: np.ndarray, centre: tuple[float, float], plate: np.ndarray,
           raised: np.ndarray, floor: float, top: float) -> None:
    """Clear `plate` (0..1 coverage patch) to `floor`, then raise `raised` to `top`, in place."""
    ph, pw = plate.shape
    y0, x0 = int(round(centre[1] - ph / 2)), int(round(centre[0] - pw / 2))
    ys = slice(max(y0, 0), min(y0 + ph, height.shape[0]))
    xs = slice(max(x0, 0), min(x0 + pw, height.shape[1]))
    py, px = slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0)
    target = height[ys, xs]
    covered = target > 0
    cleared = target * (1 - plate[py, px]) + floor * plate[py, px]
    stamped = np.maximum(cleared, floor + (top - floor) * raised[py, px])
    height[ys, xs] = np.where(covered, stamped, target)


def _glyph_patch(text: str, size: int, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Rendered text and its plate (a margin around it), rotated by `angle` degrees."""
    font = _font(size)
    left, top, right, bottom = font.getbbox(text)
    margin = max(2, size // 4)
    # Whole pixels: Pillow types the bitmap fallback font's box as floats.
    w, h = int(right - left) + 2 * margin, int(bottom - top) + 2 * margin
    glyphs = Image.new("L", (w, h))
    ImageDraw.Draw(glyphs).text((margin - left, margin - top), text, fill=255, font=font)
    plate = Image.new("L", (w, h), 255)
    out = [np.asarray(im.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True),
                      dtype=np.float32) / 255.0 for im in (glyphs, plate)]
    return out[0], out[1]


def _stamp_text(model: Model, height: np.ndarray, centre: tuple[float, float],
                extent: tuple[float, float], length: float) -> None:
    """The recipe's word along (or across, if it fits better) the region, sized to fit."""
    word = model.recipe.text
    left, top, right, bottom = _font(100).getbbox(word)
    tw, th = (right - left) / 100, (bottom - top) / 100
    along = min(0.8 * extent[0] / tw, 0.4 * extent[1] / th)
    across = min(0.8 * extent[1] / tw, 0.4 * extent[0] / th)
    size = int(np.clip(max(along, across), 6, 0.08 * length))
    glyphs, plate = _glyph_patch(word, size, 0.0 if along >= across else 90.0)
    _stamp(height, centre, plate, glyphs, *_levels(model, model.recipe.text_region))


def _stamp_logo(model: Model, height: np.ndarray, centre: tuple[float, float],
                extent: tuple[float, float], length: float) -> None:
    """A ring around the brand letter, or around two stacked chevrons."""
    radius = max(3.0, min(0.055 * length, 0.3 * min(extent)))
    half = int(np.ceil(1.3 * radius)) + 1
    y, x = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float32)
    d = np.hypot(x, y)
    plate = ramp(d - 1.22 * radius)
    ring = ramp(np.abs(d - 0.95 * radius) - max(0.6, 0.1 * radius))
    if model.recipe.logo == "ring":
        font = _font(max(6, int(1.15 * radius)))
        letter = Image.new("L", (2 * half + 1, 2 * half + 1))
        ImageDraw.Draw(letter).text((half, half), model.brand[0], fill=255, font=font,
                                    anchor="mm")
        inner = np.asarray(letter, dtype=np.float32) / 255.0
    else:
        t = max(0.6, 0.11 * radius)
        chevrons = [np.maximum(np.abs(y - dy + 0.7 * np.abs(x)) - t, np.abs(x) - 0.55 * radius)
                    for dy in (-0.05 * radius, 0.4 * radius)]
        inner = ramp(np.minimum(*chevrons))
    levels = _levels(model, model.recipe.logo_region)
    _stamp(height, centre, plate, np.maximum(ring, inner), *levels)


def render_tread(model: Model, canvas: Canvas) -> Tread:
    """Rasterise `model`'s tread on `canvas` (about the canvas centre, toe to the right)."""
    recipe = model.recipe
    sole = rasterise(recipe.outline, canvas, model.scale, model.width)
    length = sole.length
    regions = _region_map(recipe, sole)
    inside = sole.sd > -1
    sole_floor = np.where(regions == ARCH, _levels(model, ARCH)[0], BASE)
    height = np.where(inside, sole_floor, 0.0).astype(np.float32)
    jitter = rng_for(recipe.seed, TAG_PATTERN, recipe.index, 1).random(
        (3, _JITTER_CELLS, _JITTER_CELLS)).astype(np.float32)
    groove = max(1.0, recipe.groove * length)
    rim = recipe.rim * length
    inset = rim + groove if rim else 0.5 * groove
    centres: dict[int, tuple[tuple[float, float], tuple[float, float]]] = {}
    for region in range(4):
        sl = _bbox((regions == region) & inside)
        if sl is None:
            continue
        floor, top = _levels(model, region)
        y = (np.arange(sl[0].start, sl[0].stop, dtype=np.float32) + 0.5)[:, None]
        x = (np.arange(sl[1].start, sl[1].stop, dtype=np.float32) + 0.5)[None, :]
        cy, cx = (sl[0].start + sl[0].stop) / 2, (sl[1].start + sl[1].stop) / 2
        centres[region] = ((cx, cy), (sl[1].stop - sl[1].start, sl[0].stop - sl[0].start))
        sdf = fill_sdf(recipe.fills[region], x - cx, y - cy, length * model.element_scale,
                       jitter)
        limit = _region_distance(recipe, sole, region, sl, inset) - 0.5 * groove
        raised = ramp(np.maximum(sdf, -limit))
        sub = height[sl]
        height[sl] = np.where(regions[sl] == region,
                              np.maximum(sub, floor + (top - floor) * raised), sub)
    if rim:
        band = ramp(np.maximum(-sole.sd, sole.sd - rim))
        if recipe.heel_type == "block":
            band = np.where(regions == ARCH, 0.0, band)
        height = np.maximum(height, BASE + (TOP - BASE) * band)
    if recipe.text and recipe.text_region in centres:
        _stamp_text(model, height, *centres[recipe.text_region], length)
    if recipe.logo and recipe.logo_region in centres:
        _stamp_logo(model, height, *centres[recipe.logo_region], length)
    coverage = np.clip(sole.sd + 0.5, 0.0, 1.0)
    return Tread(height=(height * coverage).astype(np.float32), sole=sole)
