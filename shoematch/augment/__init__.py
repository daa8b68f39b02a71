"""Crime-scene augmentation of clean shoeprints as batched, device-agnostic torch ops; every
operation's draws are sampled apart from their application (inspectable, replayable)."""

from shoematch.augment.config import AugConfig
from shoematch.augment.crime_scene import (
    AugParams,
    apply_augmentation,
    augment_prints,
    sample_augmentation,
)
from shoematch.augment.perlin import perlin_noise

__all__ = ["AugConfig", "AugParams", "apply_augmentation", "augment_prints", "perlin_noise",
           "sample_augmentation"]
