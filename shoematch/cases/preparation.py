"""Preparing a crime-scene photo for search: the examiner's manual steps as one pure function.

The page sends the original upload plus these parameters, never a prepared image, so a case file
holds everything needed to reproduce a search exactly (`prepare` is deterministic). Order:
crop (in the original's pixels, where the examiner sees it) → polarity → levels → rotate →
flip → rescale to the index's px/cm → place on the sole canvas (toe to the right).
"""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import Field, model_validator

from shoematch.config import StrictModel
from shoematch.errors import BlankPrintError, QueryError

MIN_PX_PER_CM, MAX_PX_PER_CM = 2.0, 50.0
# Placement search: the centred print shifted along the sole by these fractions of the canvas
# width (the scale is measured, so unlike jobs.evaluate's --placement no scales are tried).
PLACEMENT_SHIFTS = (0.0, -0.15, 0.15, -0.3, 0.3)
MAX_CANVAS_MULTIPLE = 64  # a rescaled photo over this × the canvas's pixels: a wrong scale


class Levels(StrictModel):
    """Linear black/white points then gamma, on the polarity-corrected grey (255 = ink)."""

    black: int = Field(0, ge=0, le=254)
    white: int = Field(255, ge=1, le=255)
    gamma: float = Field(1.0, ge=0.1, le=10.0)

    @model_validator(mode="after")
    def _ordered(self) -> Levels:
        if self.white <= self.black:
            raise ValueError(f"levels: white ({self.white}) must be above black ({self.black})")
        return self


class Placement(StrictModel):
    """Centre of the prepared print on the canvas, in canvas pixels."""

    x: float
    y: float


class Preparation(StrictModel):
    """Every parameter of the preparation; recorded verbatim in the case file."""

    crop: tuple[int, int, int, int] | None = Field(
        None, description="left, top, right, bottom in the original's pixels")
    ink: str = Field("dark", pattern="^(dark|light)$",
                     description="dark ink on light ground is inverted (the index: 255 = ink)")
    levels: Levels = Field(default_factory=Levels)
    rotate_deg: float = Field(0.0, ge=-360.0, le=360.0, description="counter-clockwise")
    flip_horizontal: bool = False
    flip_vertical: bool = False
    px_per_cm: float = Field(description="scale of the original photo")
    placement: Placement | Literal["search"] | None = Field(
        None, description="None: centred; 'search': the server tries PLACEMENT_SHIFTS")

    @model_validator(mode="after")
    def _scale_in_range(self) -> Preparation:
        if not MIN_PX_PER_CM <= self.px_per_cm <= MAX_PX_PER_CM:
            raise ValueError(f"px_per_cm must be between {MIN_PX_PER_CM:g} and "
                             f"{MAX_PX_PER_CM:g}, got {self.px_per_cm:g}")
        return self


def parse_preparation(raw: str | dict) -> Preparation:
    """Validate preparation parameters (JSON text or dict); errors name the bad field."""
    from pydantic import ValidationError

    try:
        if isinstance(raw, str):
            return Preparation.model_validate_json(raw)
        return Preparation.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'preparation'}: {e['msg']}"
                             for e in exc.errors())
        raise QueryError(f"bad preparation parameters: {problems}") from exc


def _grey(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.convert("L")


def _crop(image: Image.Image, crop: tuple[int, int, int, int] | None) -> Image.Image:
    if crop is None:
        return image
    left, top, right, bottom = crop
    if not (0 <= left < right <= image.width and 0 <= top < bottom <= image.height):
        raise QueryError(f"crop {list(crop)} is not inside the {image.width}x{image.height} "
                         "image (left < right, top < bottom)")
    return image.crop(crop)


def _tone(image: Image.Image, ink: str, levels: Levels) -> Image.Image:
    grey = np.asarray(image, dtype=np.float32)
    if ink == "dark":
        grey = 255.0 - grey
    span = float(levels.white - levels.black)
    scaled = np.clip((grey - levels.black) / span, 0.0, 1.0) ** (1.0 / levels.gamma)
    return Image.fromarray(np.round(scaled * 255.0).astype(np.uint8))


def _orient(image: Image.Image, params: Preparation) -> Image.Image:
    if params.rotate_deg % 360:
        image = image.rotate(params.rotate_deg, resample=Image.Resampling.BICUBIC, expand=True,
                             fillcolor=0)
    if params.flip_horizontal:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if params.flip_vertical:
        image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    return image


def _rescale(image: Image.Image, factor: float, canvas: tuple[int, int]) -> Image.Image:
    width = max(1, round(image.width * factor))
    height = max(1, round(image.height * factor))
    if width * height > MAX_CANVAS_MULTIPLE * canvas[0] * canvas[1]:
        raise QueryError(f"at this px/cm the photo would be {width}x{height} px, more than "
                         f"{MAX_CANVAS_MULTIPLE}x the pixels of the {canvas[1]}x{canvas[0]} "
                         "canvas: crop it or check the scale")
    if (width, height) == image.size:
        return image
    return image.resize((width, height), Image.Resampling.LANCZOS)


def _place(image: Image.Image, canvas: tuple[int, int], placement: Placement | str | None
           ) -> np.ndarray:
    height, width = canvas
    centre_x = placement.x if isinstance(placement, Placement) else width / 2
    centre_y = placement.y if isinstance(placement, Placement) else height / 2
    out = Image.new("L", (width, height), 0)
    out.paste(image, (round(centre_x - image.width / 2), round(centre_y - image.height / 2)))
    return np.asarray(out, dtype=np.uint8).copy()


def prepare(data: bytes, params: Preparation, canvas: tuple[int, int],
            index_px_per_cm: float) -> np.ndarray:
    """uint8 [H, W] print (255 = ink) on the index canvas (height, width) from the original
    upload's bytes. Deterministic: the same bytes and parameters give the same pixels."""
    image = _crop(_grey(data), params.crop)
    image = _orient(_tone(image, params.ink, params.levels), params)
    image = _rescale(image, index_px_per_cm / params.px_per_cm, canvas)
    placed = _place(image, canvas, params.placement)
    if not placed.any():
        raise BlankPrintError("the prepared print is blank on the canvas: check the placement, "
                         "crop and polarity")
    return placed


def placement_candidates(canvas: tuple[int, int]) -> list[tuple[Placement, int]]:
    """The placements a placement search tries, centre first, each with its shift in px."""
    height, width = canvas
    out = []
    for fraction in PLACEMENT_SHIFTS:
        shift = round(fraction * width)
        out.append((Placement(x=width / 2 + shift, y=height / 2), shift))
    return out


def shift_mask(mask: np.ndarray, shift: int) -> np.ndarray:
    """The visible region moved `shift` px along the width with the print (zeros enter)."""
    out = np.zeros_like(mask)
    if shift >= 0:
        out[:, shift:] = mask[:, :mask.shape[1] - shift]
    else:
        out[:, :shift] = mask[:, -shift:]
    return out


def describe(params: Preparation, index_px_per_cm: float) -> list[str]:
    """The preparation as ordered, human-readable steps for the case report."""
    levels = params.levels
    placement = params.placement
    if placement is None:
        placed = "centred on the canvas"
    elif placement == "search":
        placed = (f"searched by the server over {len(PLACEMENT_SHIFTS)} positions along the "
                  "sole (the mask moves with the print)")
    else:
        placed = f"centre at x={placement.x:.1f}, y={placement.y:.1f} px"
    return [
        f"crop: {list(params.crop) if params.crop else 'none (whole image)'}",
        f"polarity: ink {params.ink}" + (" → inverted" if params.ink == "dark" else ""),
        f"levels: black {levels.black}, white {levels.white}, gamma {levels.gamma:g}",
        f"rotate: {params.rotate_deg:g}° counter-clockwise",
        f"flip: horizontal {'yes' if params.flip_horizontal else 'no'}, "
        f"vertical {'yes' if params.flip_vertical else 'no'}",
        f"scale: {params.px_per_cm:g} px/cm → index {index_px_per_cm:g} px/cm "
        f"(× {index_px_per_cm / params.px_per_cm:.4f})",
        f"placement: {placed}",
    ]


def index_px_per_cm(refdb_params: dict, canvas_width: int, sole_length_cm: float = 30.0
                    ) -> float:
    """The physical scale of an index's canvas: the reader's recorded px/cm (FID-300), else a
    sole of `sole_length_cm` spanning the canvas width (the folder reader's convention)."""
    recorded = refdb_params.get("px_per_cm")
    return float(recorded) if recorded else canvas_width / sole_length_cm
