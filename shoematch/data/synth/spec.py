"""What to generate (SynthSpec), and the seeding that makes every piece independent of chunking."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shoematch.data.schema import Canvas
from shoematch.errors import ConfigError

# Stream tags: each kind of random draw has its own SeedSequence branch, keyed by index, so a
# model, instance or query is the same whichever chunk (or Ray task) generates it.
TAG_PATTERN = 1
TAG_MODEL = 2
TAG_POSE = 3
TAG_LOOK = 4
TAG_QUERY = 5
TAG_PATTERN_SIZES = 6
TAG_SPLIT = 7
TAG_SHEET = 8

MIN_CANVAS = (32, 64)


@dataclass(frozen=True)
class SynthSpec:
    """A synthetic dataset: `models` shoe models × `instances` reference instances, `queries`
    crime-scene-like queries, all derived from `seed`.

    Models are grouped into patterns of 1..`models_per_pattern` models (drawn); a
    `holdout_pattern_fraction` of patterns is test-only. The first `val_query_fraction` of the
    queries form the "val" split; `partial_query_fraction` of queries show only part of the sole.
    """

    models: int
    instances: int
    queries: int
    seed: int
    canvas: Canvas = Canvas()
    models_per_pattern: int = 2
    holdout_pattern_fraction: float = 0.2
    val_query_fraction: float = 0.3
    partial_query_fraction: float = 0.6

    def __post_init__(self) -> None:
        checks = [
            (self.models >= 1, f"models must be >= 1, got {self.models}"),
            (self.instances >= 1, f"instances must be >= 1, got {self.instances}"),
            (self.queries >= 0, f"queries must be >= 0, got {self.queries}"),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (self.models_per_pattern >= 1,
             f"models_per_pattern must be >= 1, got {self.models_per_pattern}"),
            (self.canvas.height >= MIN_CANVAS[0] and self.canvas.width >= MIN_CANVAS[1],
             f"canvas must be at least {MIN_CANVAS[1]}×{MIN_CANVAS[0]} (w×h), got "
             f"{self.canvas.width}×{self.canvas.height}"),
        ]
        for name in ("holdout_pattern_fraction", "val_query_fraction", "partial_query_fraction"):
            value = getattr(self, name)
            checks.append((0.0 <= value <= 1.0, f"{name} must be in [0, 1], got {value}"))
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"SynthSpec: {message}")


def rng_for(seed: int, tag: int, *index: int) -> np.random.Generator:
    """The generator of one independent stream (seed, tag, index...)."""
    return np.random.default_rng(np.random.SeedSequence([seed, tag, *index]))


def model_id(index: int) -> str:
    return f"M{index:05d}"


def pattern_id(index: int) -> str:
    return f"P{index:04d}"


def instance_id(model: int, instance: int) -> str:
    return f"{model_id(model)}-i{instance:02d}"


def query_id(index: int) -> str:
    return f"Q{index:06d}"
