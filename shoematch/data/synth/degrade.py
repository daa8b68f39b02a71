"""Crime-scene-like query prints from held-out instances.

Deliberately not the training augmentation (occlusion / erasure / noise): a print forms where
the posed sole presses hard enough (pressure falling off toward heel or toe), then takes the
intensity profile of its medium (blood: dark, pooled, edge-darkened; dust: faint, granular,
speckled; soil: clumpy), may smear or slip, is cut to a partial region, and lies on a substrate
(paper, tile, concrete, wood). Output follows the print convention: 255 = ink.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shoematch.data.schema import Canvas
from shoematch.data.synth.fields import box_blur, smooth_noise, smoothstep, to_uint8
from shoematch.data.synth.render import Posed
from shoematch.data.synth.spec import TAG_QUERY, SynthSpec, rng_for
from shoematch.data.synth.tread import CONTACT

CATEGORIES = ("blood", "dust", "soil")
_CATEGORY_WEIGHTS = (0.45, 0.4, 0.15)
SUBSTRATES = ("paper", "tile", "concrete", "wood")
COVERAGES = ("full", "cut", "blob")
# Instances >= spec.instances are held out; queries draw theirs from this many.
HELD_OUT_INSTANCES = 64


@dataclass(frozen=True)
class QueryPlan:
    """What query `index` shows: which model and held-out instance, medium, substrate, extent."""

    index: int
    model: int
    instance: int
    category: str
    substrate: str
    coverage: str
    split: str


def query_plan(spec: SynthSpec, index: int) -> QueryPlan:
    rng = rng_for(spec.seed, TAG_QUERY, index)
    model = int(rng.integers(spec.models))
    instance = spec.instances + int(rng.integers(HELD_OUT_INSTANCES))
    category = CATEGORIES[int(rng.choice(len(CATEGORIES), p=_CATEGORY_WEIGHTS))]
    substrate = SUBSTRATES[int(rng.integers(len(SUBSTRATES)))]
    partial = rng.random() < spec.partial_query_fraction
    coverage = COVERAGES[1 + int(rng.integers(2))] if partial else "full"
    split = "val" if index < round(spec.val_query_fraction * spec.queries) else "test"
    return QueryPlan(index, model, instance, category, substrate, coverage, split)


def _pressure(rng: np.random.Generator, canvas: Canvas) -> np.ndarray:
    """Smooth pressure in [0.25, 1]: heavy at the heel or toe (or a side), falling off."""
    h, w = canvas.shape
    x = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    y = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    along, across = rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.6), rng.uniform(-0.2, 0.2)
    field = rng.uniform(0.65, 0.85) + along * x + across * y
    return np.clip(field + smooth_noise(rng, canvas.shape, (3, 6), 0.15), 0.25, 1.0)


def _shift(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    return np.roll(image, (dy, dx), axis=(0, 1))


def _smear(ink: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Directional blur (the foot sliding while in contact), sometimes with a slip ghost."""
    angle = rng.uniform(0, np.pi)
    steps = int(rng.integers(2, 8) * scale) + 1
    offsets = [(int(round(t * np.cos(angle))), int(round(t * np.sin(angle))))
               for t in np.linspace(0, steps, steps + 1)]
    out = sum((_shift(ink, dx, dy) for dx, dy in offsets), np.zeros_like(ink)) / len(offsets)
    if rng.random() < 0.3:
        t = rng.uniform(6, 15) * scale
        ghost = _shift(out, int(t * np.cos(angle)), int(t * np.sin(angle)))
        out = np.maximum(out, rng.uniform(0.25, 0.5) * ghost)
    return out


def _blood(ink: np.ndarray, sole: np.ndarray, rng: np.random.Generator,
           canvas: Canvas) -> np.ndarray:
    """Dark, saturated; pools fill the grooves in blotches; edges of contacts darken."""
    pools = smoothstep(smooth_noise(rng, canvas.shape, (10, 20)), 0.5, 0.9) * sole
    ink = np.maximum(ink, rng.uniform(0.5, 0.8) * pools)
    rim = np.clip(ink - box_blur(ink, 2), 0.0, 1.0)
    voids = 1.0 - 0.5 * smoothstep(smooth_noise(rng, canvas.shape, (12, 24)), 0.3, 0.8)
    ink = np.clip(ink * voids * rng.uniform(0.8, 1.0) + 1.5 * rim, 0.0, 1.0)
    return ink**0.6


def _spatter(ink: np.ndarray, sole: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A few drops of blood around the print."""
    near = box_blur(sole, max(2, sole.shape[1] // 40)) > 0.05
    drops = (rng.random(ink.shape, dtype=np.float32) < rng.uniform(0.0, 0.0015)) & near
    return np.maximum(ink, np.clip(box_blur(drops.astype(np.float32), 1) * 4.0, 0.0, 1.0))


def _dust(ink: np.ndarray, rng: np.random.Generator, canvas: Canvas) -> np.ndarray:
    """Faint, low contrast, granular: grains of dust pick up only part of each contact."""
    grains = rng.random(canvas.shape, dtype=np.float32) < rng.uniform(0.45, 0.8)
    mottle = 0.75 + 0.25 * smooth_noise(rng, canvas.shape, (8, 16))
    ink = ink * grains * mottle * rng.uniform(0.5, 0.75)
    specks = rng.random(canvas.shape, dtype=np.float32) < rng.uniform(0.01, 0.04)
    return np.maximum(ink, specks * rng.uniform(0.1, 0.25))


def _soil(ink: np.ndarray, sole: np.ndarray, rng: np.random.Generator,
          canvas: Canvas) -> np.ndarray:
    """Clumpy, mid-dark: clods drop out of contacts and pack into some grooves."""
    h, w = canvas.shape
    clods = smoothstep(smooth_noise(rng, canvas.shape, (max(h // 6, 2), max(w // 6, 2))),
                       -0.3, 0.3)
    packed = smoothstep(smooth_noise(rng, canvas.shape, (5, 10)), 0.3, 0.7) * sole * clods
    ink = np.maximum(ink * (0.4 + 0.6 * clods), 0.7 * packed)
    return ink * rng.uniform(0.55, 0.85)


def _visible(coverage: str, sole: np.ndarray, rng: np.random.Generator,
             canvas: Canvas) -> np.ndarray:
    """0..1 visible region: everything, one side of a wavy cut, or a blob; keeps 35–75 % of the
    sole."""
    if coverage == "full":
        return np.ones(canvas.shape, dtype=np.float32)
    h, w = canvas.shape
    if coverage == "cut":
        angle = rng.uniform(0, 2 * np.pi)
        x = np.arange(w, dtype=np.float32)[None, :] - w / 2
        y = np.arange(h, dtype=np.float32)[:, None] - h / 2
        field = x * np.cos(angle) + y * np.sin(angle)
        field = field + smooth_noise(rng, canvas.shape, (3, 6), 0.03 * w)
    else:
        field = -smooth_noise(rng, canvas.shape, (3, 5), 0.25 * w)  # ~px units, like the cut
    keep = rng.uniform(0.35, 0.75)
    level = np.quantile(field[sole > 0.5], keep)
    softness = 0.006 * w
    return np.clip((level - field) / softness + 0.5, 0.0, 1.0)


def _substrate(kind: str, rng: np.random.Generator, canvas: Canvas) -> np.ndarray:
    """Background intensity (ink convention, 0 = clean) of the surface the print lies on."""
    h, w = canvas.shape
    if kind == "paper":
        return (rng.uniform(0.02, 0.08) + smooth_noise(rng, canvas.shape, (16, 32), 0.02)
                + (rng.random(canvas.shape, dtype=np.float32) - 0.5) * 0.03)
    if kind == "tile":
        pitch = rng.uniform(0.18, 0.35) * w
        angle = rng.uniform(-0.1, 0.1)
        x = np.arange(w, dtype=np.float32)[None, :]
        y = np.arange(h, dtype=np.float32)[:, None]
        u, v = x * np.cos(angle) + y * np.sin(angle), y * np.cos(angle) - x * np.sin(angle)
        half = rng.uniform(1.0, 2.0) * w / 384
        du = np.abs(u - pitch * np.round(u / pitch))
        dv = np.abs(v - pitch * np.round(v / pitch))
        grout = np.clip(half + 0.5 - np.minimum(du, dv), 0.0, 1.0)
        tiles = rng.uniform(0.04, 0.12) + smooth_noise(rng, canvas.shape, (6, 12), 0.03)
        return tiles + grout * rng.uniform(0.12, 0.3)
    if kind == "concrete":
        grit = (rng.random(canvas.shape, dtype=np.float32) - 0.5) * 0.12
        pits = (rng.random(canvas.shape, dtype=np.float32) < 0.006) * 0.3
        return (rng.uniform(0.12, 0.25) + smooth_noise(rng, canvas.shape, (8, 16), 0.06)
                + grit + pits)
    grain_pitch = rng.uniform(0.015, 0.03) * w
    y = np.arange(h, dtype=np.float32)[:, None]
    warp = smooth_noise(rng, canvas.shape, (3, 4), 1.5 * grain_pitch)
    grain = 0.5 + 0.5 * np.sin(2 * np.pi * (y + warp) / grain_pitch)
    board = rng.uniform(0.25, 0.5) * h
    seams = np.abs(y - board * np.round(y / board)) < 1.0
    return (rng.uniform(0.1, 0.2) + 0.04 * grain + 0.03 * smooth_noise(rng, canvas.shape, (4, 16))
            + 0.15 * seams)


def render_query(posed: Posed, plan: QueryPlan, rng: np.random.Generator,
                 canvas: Canvas) -> tuple[np.ndarray, np.ndarray]:
    """(print, mask) uint8 images of a crime-scene-like print of `posed` per `plan`."""
    scale = canvas.width / 384
    sole = np.clip(posed.sd + 0.5, 0.0, 1.0)
    pressure = _pressure(rng, canvas)
    threshold = CONTACT - 0.12 + 0.25 * (1.0 - pressure)
    ink = smoothstep(posed.height, threshold - 0.03, threshold + 0.03) * (0.5 + 0.5 * pressure)
    if plan.category == "blood":
        ink = _blood(ink, sole, rng, canvas)
    elif plan.category == "dust":
        ink = _dust(ink, rng, canvas)
    else:
        ink = _soil(ink, sole, rng, canvas)
    if rng.random() < 0.6:
        ink = _smear(ink, rng, scale)
    if plan.category == "blood":
        ink = _spatter(ink, sole, rng)
    visible = _visible(plan.coverage, sole, rng, canvas)
    ink = ink * visible
    background = _substrate(plan.substrate, rng, canvas)
    image = 1.0 - (1.0 - np.clip(background, 0.0, 1.0)) * (1.0 - ink)
    image = image + (rng.random(canvas.shape, dtype=np.float32) - 0.5) * 0.03
    mask = (visible > 0.5) & (posed.sd > -3 * scale)
    return to_uint8(image), np.where(mask, 255, 0).astype(np.uint8)
