"""Pattern recipes and shoe models.

A pattern is a recipe (outline family, region layout, one element fill per region, extras such as
a rim, text or a logo). Every model of a pattern uses the same recipe and differs only slightly:
outline scale / width and element size by a few percent, brand (the logo letter) and colour.
Which models share a pattern, and which patterns are held out, depend only on the seed, never on
how many models are generated or how they are chunked.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from shoematch.data.synth.elements import COMPLEX_SHAPES, FILL_KINDS, HOLLOW_SHAPES, Fill
from shoematch.data.synth.outline import (
    FAMILIES,
    HEEL_TYPES,
    TOE_SHAPES,
    OutlineParams,
    draw_outline,
)
from shoematch.data.synth.spec import (
    TAG_MODEL,
    TAG_PATTERN,
    TAG_PATTERN_SIZES,
    TAG_SPLIT,
    SynthSpec,
    model_id,
    pattern_id,
    rng_for,
)

HEEL, ARCH, FOREFOOT, TOE = range(4)  # regions, heel to toe
WORDS = ("GRIP", "NON SLIP", "FLEX", "TRAIL", "PRO", "AIR", "SPORT", "42", "EVA", "XL")
BRANDS = ("Apex", "Borealis", "Cirrus", "Delta", "Ember", "Fjord", "Granite", "Halo", "Ion",
          "Juniper", "Kestrel", "Lumen", "Mistral", "Nimbus", "Orca", "Pike", "Quartz", "Ridge",
          "Strider", "Tundra", "Umbra", "Vega", "Wren", "Xeno", "Yeti", "Zephyr")
# Sole colours (name → sRGB).
COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (38, 38, 40), "white": (226, 223, 214), "grey": (122, 124, 128),
    "brown": (104, 68, 44), "tan": (184, 140, 96), "navy": (42, 52, 88), "red": (150, 38, 36),
    "olive": (96, 100, 56), "beige": (210, 196, 166), "gum": (176, 122, 62),
}
_TOE_WEIGHTS = {  # round, pointed, square
    "running": (0.9, 0.0, 0.1), "boot": (0.55, 0.0, 0.45), "casual": (0.6, 0.1, 0.3),
    "formal": (0.2, 0.45, 0.35), "sandal": (0.8, 0.0, 0.2),
}
_BLOCK_HEEL = {"running": 0.05, "boot": 0.6, "casual": 0.25, "formal": 0.85, "sandal": 0.1}
_RIM = {"running": 0.3, "boot": 0.45, "casual": 0.5, "formal": 0.7, "sandal": 0.3}
# Element size multiplier: boots have chunky lugs, formal shoes fine detail.
_FAMILY_SCALE = {"running": 1.0, "boot": 1.25, "casual": 0.95, "formal": 0.85, "sandal": 1.05}
# Preferences multiply near-uniform weights, so every fill kind stays common in every dataset.
_FAMILY_PREFS: dict[str, dict[str, float]] = {
    "running": {"hexagons": 2.0, "triangles": 1.6, "bars": 1.3, "wavy": 1.3, "plain": 0.4},
    "boot": {"bars": 1.8, "zigzag": 1.6, "complex": 1.4, "squares": 1.5, "texture": 0.5,
             "plain": 0.4},
    "casual": {"circles": 1.5, "zigzag": 1.5, "wavy": 1.3, "lattice": 1.3, "texture": 1.3},
    "formal": {"plain": 2.5, "texture": 2.0, "lattice": 1.3, "hollow": 1.2, "bars": 1.2},
    "sandal": {"wavy": 1.8, "curved": 1.8, "circles": 1.4, "targets": 1.4},
}
_REGION_PREFS: dict[int, dict[str, float]] = {
    HEEL: {"texture": 0.7},
    ARCH: {"plain": 1.6, "texture": 1.5, "lattice": 1.4, "bars": 1.2, "targets": 0.5,
           "complex": 0.6},
    FOREFOOT: {"plain": 0.6},
    TOE: {"bars": 1.5, "plain": 0.7, "targets": 0.5},
}
# Per kind: pitch range (sole lengths, before the family scale), size range.
_FILL_SHAPES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "bars": ((0.035, 0.055), (0.4, 0.6)),
    "wavy": ((0.035, 0.05), (0.35, 0.5)),
    "curved": ((0.035, 0.05), (0.35, 0.5)),
    "circles": ((0.04, 0.065), (0.55, 0.8)),
    "targets": ((0.085, 0.12), (0.82, 0.92)),
    "triangles": ((0.045, 0.07), (0.8, 0.95)),
    "squares": ((0.04, 0.07), (0.6, 0.85)),
    "pentagons": ((0.05, 0.075), (0.7, 0.85)),
    "hexagons": ((0.045, 0.07), (0.75, 0.9)),
    "complex": ((0.06, 0.09), (0.8, 0.95)),
    "zigzag": ((0.035, 0.055), (0.35, 0.5)),
    "lattice": ((0.04, 0.07), (0.16, 0.28)),
    "texture": ((0.012, 0.02), (0.45, 0.7)),
    "hollow": ((0.06, 0.09), (0.75, 0.9)),
    "plain": ((0.05, 0.05), (1.0, 1.0)),
}
_SIZE_BLOCK = 1024


@dataclass(frozen=True)
class Recipe:
    """One tread pattern. Region boundaries are at u = bound + slant·v + bow·v²."""

    seed: int
    index: int
    category: str
    toe_shape: str
    heel_type: str
    outline: OutlineParams
    bounds: tuple[float, ...]  # three each
    slants: tuple[float, ...]
    bows: tuple[float, ...]
    fills: tuple[Fill, ...]  # one per region
    rim: float  # raised border width in sole lengths (0 = none)
    groove: float  # groove between regions, sole lengths
    text: str  # "" = none
    text_region: int
    logo: str  # "", "ring" or "chevron"
    logo_region: int

    @property
    def descriptors(self) -> list[str]:
        """Codes of every element this recipe draws (identical for all its models)."""
        codes = {code for fill in self.fills for code in fill.codes}
        codes |= {"D09"} if self.text else set()
        codes |= {"D10"} if self.logo else set()
        return sorted(codes)


@dataclass(frozen=True)
class Model:
    """A shoe model: its pattern's recipe plus a few-percent jitter, a brand and a colour."""

    index: int
    pattern: int
    recipe: Recipe
    scale: float
    width: float
    element_scale: float
    brand: str
    colour: str
    split: str

    @property
    def model_id(self) -> str:
        return model_id(self.index)

    @property
    def pattern_id(self) -> str:
        return pattern_id(self.pattern)

    @property
    def attributes(self) -> dict[str, str]:
        r = self.recipe
        return {"brand": self.brand, "category": r.category, "toe_shape": r.toe_shape,
                "heel_type": r.heel_type, "colour": self.colour}


@functools.lru_cache(maxsize=16)
def _pattern_starts(seed: int, per_pattern: int, models: int) -> np.ndarray:
    """First model index of every pattern covering `models` (pattern sizes drawn in blocks,
    so a prefix never depends on the total)."""
    sizes: list[np.ndarray] = []
    total, block = 0, 0
    while total < models:
        drawn = rng_for(seed, TAG_PATTERN_SIZES, block).integers(1, per_pattern + 1, _SIZE_BLOCK)
        sizes.append(drawn)
        total += int(drawn.sum())
        block += 1
    return np.concatenate([[0], np.cumsum(np.concatenate(sizes))])


def pattern_of(spec: SynthSpec, model: int) -> int:
    starts = _pattern_starts(spec.seed, spec.models_per_pattern, spec.models)
    return int(np.searchsorted(starts, model, side="right") - 1)


def pattern_members(spec: SynthSpec, pattern: int) -> range:
    """The models (within `spec.models`) that share `pattern`."""
    starts = _pattern_starts(spec.seed, spec.models_per_pattern, spec.models)
    return range(int(starts[pattern]), min(int(starts[pattern + 1]), spec.models))


def is_held_out(spec: SynthSpec, pattern: int) -> bool:
    """Evenly spread hold-out: pattern p is held out when the running count of
    `holdout_pattern_fraction`·p (from a seeded phase) steps up at p."""
    f = spec.holdout_pattern_fraction
    phase = rng_for(spec.seed, TAG_SPLIT).random()
    return int(np.floor((pattern + 1) * f + phase)) > int(np.floor(pattern * f + phase))


def _choose(rng: np.random.Generator, options: tuple[str, ...], weights) -> str:
    w = np.asarray(weights, dtype=float)
    return options[int(rng.choice(len(options), p=w / w.sum()))]


def _draw_fill(rng: np.random.Generator, family: str, region: int) -> Fill:
    prefs = _FAMILY_PREFS[family]
    region_prefs = _REGION_PREFS[region]
    kind = _choose(rng, FILL_KINDS, [prefs.get(k, 1.0) * region_prefs.get(k, 1.0)
                                     for k in FILL_KINDS])
    (p_lo, p_hi), (s_lo, s_hi) = _FILL_SHAPES[kind]
    scale = _FAMILY_SCALE[family] if kind != "texture" else 1.0
    pitch = rng.uniform(p_lo, p_hi) * scale
    size = rng.uniform(s_lo, s_hi)
    across = np.pi / 2 + rng.uniform(-0.45, 0.45)
    angle = across if rng.random() < 0.7 else rng.uniform(-0.35, 0.35)
    shape, param, stagger = "", 0.0, False
    if kind == "bars" and rng.random() < 0.5:
        param, stagger = rng.uniform(2.0, 4.0), True  # segmented, brick-laid bars
    elif kind in ("wavy", "zigzag"):
        param = rng.uniform(0.2, 0.45)
    elif kind == "curved":
        param = rng.uniform(0.0, 1.0)
    elif kind == "targets":
        param = float(rng.integers(2, 4))
    elif kind == "squares":
        param, stagger = float(rng.choice([0.0, np.pi / 4])), bool(rng.random() < 0.4)
        angle = rng.uniform(-0.3, 0.3)
    elif kind == "lattice":
        angle = float(rng.choice([0.0, np.pi / 4])) + rng.uniform(-0.2, 0.2)
    elif kind == "complex":
        shape = COMPLEX_SHAPES[int(rng.integers(len(COMPLEX_SHAPES)))]
    elif kind == "hollow":
        shape = tuple(HOLLOW_SHAPES)[int(rng.integers(len(HOLLOW_SHAPES)))]
        param = rng.uniform(0.08, 0.13)
    elif kind in ("triangles", "pentagons", "hexagons", "circles", "targets"):
        angle = rng.uniform(-0.3, 0.3)
    phase = (float(rng.random()), float(rng.random()))
    return Fill(kind=kind, pitch=float(pitch), size=float(size), angle=float(angle), shape=shape,
                param=float(param), stagger=stagger, phase=phase)


def draw_recipe(seed: int, index: int) -> Recipe:
    """The recipe of pattern `index` (deterministic in (seed, index))."""
    rng = rng_for(seed, TAG_PATTERN, index)
    family = FAMILIES[int(rng.integers(len(FAMILIES)))]
    toe = _choose(rng, TOE_SHAPES, _TOE_WEIGHTS[family])
    heel_type = HEEL_TYPES[1] if rng.random() < _BLOCK_HEEL[family] else HEEL_TYPES[0]
    outline = draw_outline(rng, family, toe)
    bounds = (rng.uniform(0.25, 0.3), rng.uniform(0.44, 0.5), rng.uniform(0.78, 0.85))
    slants = tuple(float(x) for x in rng.uniform(-0.35, 0.35, 3))
    bows = tuple(float(x) for x in rng.uniform(-1.2, 1.2, 3))
    if heel_type == "block":
        bows = (rng.uniform(1.0, 2.0), *bows[1:])  # the breast of a heel block is curved
    fills = [_draw_fill(rng, family, region) for region in range(4)]
    if rng.random() < 0.35:
        fills[TOE] = fills[FOREFOOT]  # the forefoot pattern runs on into the toe
    rim = rng.uniform(0.012, 0.02) if rng.random() < _RIM[family] else 0.0
    groove = rng.uniform(0.008, 0.014)
    text, text_region = "", -1
    if rng.random() < 0.35:
        text = WORDS[int(rng.integers(len(WORDS)))]
        text_region = int(rng.choice([HEEL, ARCH, FOREFOOT], p=[0.35, 0.4, 0.25]))
    logo, logo_region = "", -1
    if rng.random() < 0.35:
        logo = "ring" if rng.random() < 0.6 else "chevron"
        options = [r for r in (HEEL, FOREFOOT, ARCH) if r != text_region]
        logo_region = options[int(rng.integers(len(options)))]
    return Recipe(seed=seed, index=index, category=family, toe_shape=toe, heel_type=heel_type,
                  outline=outline, bounds=tuple(float(b) for b in bounds), slants=slants,
                  bows=tuple(float(b) for b in bows), fills=tuple(fills), rim=float(rim),
                  groove=float(groove), text=text, text_region=text_region, logo=logo,
                  logo_region=logo_region)


@functools.lru_cache(maxsize=256)
def _recipe(seed: int, index: int) -> Recipe:
    return draw_recipe(seed, index)


def make_model(spec: SynthSpec, index: int) -> Model:
    """Model `index`: its pattern's recipe, jittered by a few percent, with brand and colour."""
    pattern = pattern_of(spec, index)
    rng = rng_for(spec.seed, TAG_MODEL, index)
    return Model(
        index=index, pattern=pattern, recipe=_recipe(spec.seed, pattern),
        scale=float(rng.uniform(0.975, 1.025)), width=float(rng.uniform(0.97, 1.03)),
        element_scale=float(rng.uniform(0.97, 1.03)),
        brand=BRANDS[int(rng.integers(len(BRANDS)))],
        colour=tuple(COLOURS)[int(rng.integers(len(COLOURS)))],
        split="test" if is_held_out(spec, pattern) else "train",
    )
