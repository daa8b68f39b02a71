"""Crime-scene augmentation of clean shoeprints as batched, device-agnostic torch ops."""

from shoematch.augment.config import AugConfig
from shoematch.augment.crime_scene import augment_prints
from shoematch.augment.perlin import perlin_noise

__all__ = ["AugConfig", "augment_prints", "perlin_noise"]
