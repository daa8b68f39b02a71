"""Configuration of the crime-scene augmentation (docs/data-flow.md, "Augmentation"): occlusion,
erasure, noise.

Sizes are fractions of the canvas (height unless stated) so one config fits any canvas; ranges
are (low, high) and drawn uniformly per sample.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from shoematch.config import StrictModel

Range = tuple[float, float]
Mode = Literal["gaussian", "perlin", "random"]


class AugConfig(StrictModel):
    """Which components run and their parameter ranges. All off == identity."""

    occlusion: bool = Field(True, description="self-overlay and random quadrilaterals")
    erasure: bool = Field(True, description="Gaussian- or Perlin-shaped erased regions")
    noise: bool = Field(True, description="ink fading, pixel noise, background clutter")
    # Off by default: a query's mask (synthetic, or an examiner's) marks where the print lies,
    # not each gap in its ink; training on masks that follow erasure taught a mask meaning test
    # queries never have (synthetic ablation: CriSp hit@10 0.369 with it, 0.448 without).
    mask_follows: bool = Field(
        False, description="training's visibility mask also drops ink hidden by occlusion and "
                           "erasure (default: the print's own mask, like the queries')")

    # occlusion (a): a second, partial impression of the same print
    p_self_overlay: float = Field(0.5, ge=0, le=1)
    overlay_max_rotation_deg: float = Field(30.0, ge=0, le=180)
    overlay_max_shift: float = Field(0.25, ge=0, le=1, description="fraction of height / width")
    overlay_scale_range: Range = (0.9, 1.1)
    overlay_strength_range: Range = Field((0.5, 1.0), description="ink of the second impression")
    overlay_partial: bool = Field(True, description="keep the copy on one side of a random line")

    # occlusion (b): random quadrilaterals that hide parts of the print
    p_quads: float = Field(0.5, ge=0, le=1)
    max_quads: int = Field(3, ge=1, le=16)
    quad_radius_range: Range = Field((0.1, 0.35), description="centre-to-vertex, of height")

    # erasure: regions where the print did not transfer
    erasure_mode: Mode = "random"
    p_erasure: float = Field(0.8, ge=0, le=1)
    erasure_fraction_range: Range = Field((0.05, 0.3), description="fraction of the canvas")
    erasure_strength_range: Range = Field((0.75, 1.0), description="1 = erased to background")
    erasure_max_blobs: int = Field(4, ge=1, le=16)
    erasure_blob_sigma_range: Range = Field((0.1, 0.45), description="blob std, of height")
    erasure_perlin_cell: float = Field(0.3, gt=0, le=2, description="lattice cell, of height")

    # noise: faded ink, pixel noise, surface clutter
    noise_mode: Mode = "random"
    p_noise: float = Field(1.0, ge=0, le=1)
    ink_gain_range: Range = Field((0.6, 1.0), description="overall ink intensity")
    gaussian_sigma_range: Range = Field((0.03, 0.15), description="pixel noise std")
    p_gaussian_blur: float = Field(0.5, ge=0, le=1)
    gaussian_blur_sigma_range: Range = Field((0.5, 1.5), description="pixels")
    clutter_amplitude_range: Range = Field((0.1, 0.4), description="background texture")
    clutter_ink_modulation: float = Field(0.15, ge=0, le=1, description="uneven ink pressure")
    clutter_cell: float = Field(0.1, gt=0, le=2, description="first-octave cell, of height")
    clutter_octaves: int = Field(3, ge=1, le=8)
    speckle_density_range: Range = Field((0.0, 0.006), description="fraction of pixels")

    @field_validator(
        "overlay_scale_range", "overlay_strength_range", "quad_radius_range",
        "erasure_fraction_range", "erasure_strength_range", "erasure_blob_sigma_range",
        "ink_gain_range", "gaussian_sigma_range", "gaussian_blur_sigma_range",
        "clutter_amplitude_range", "speckle_density_range",
    )
    @classmethod
    def _ordered_non_negative(cls, value: Range) -> Range:
        low, high = value
        if low < 0 or high < low:
            raise ValueError(f"expected 0 <= low <= high, got {value}")
        return value

    @field_validator("overlay_scale_range", "gaussian_blur_sigma_range", "quad_radius_range",
                     "erasure_blob_sigma_range")
    @classmethod
    def _positive(cls, value: Range) -> Range:
        if value[0] <= 0:
            raise ValueError(f"low end must be > 0, got {value}")
        return value

    @field_validator("erasure_fraction_range", "erasure_strength_range", "ink_gain_range",
                     "overlay_strength_range", "speckle_density_range")
    @classmethod
    def _at_most_one(cls, value: Range) -> Range:
        if value[1] > 1:
            raise ValueError(f"high end must be <= 1, got {value}")
        return value
