"""The automatic preparation of a scene photograph, as the parameters an examiner would set by
hand (`shoematch.cases.preparation.Preparation`) plus the visible region on the sole canvas.

Why a proposal and not a prepared image: the examiner accepts or corrects each value, and the
case file records the parameters, never a derived image, so a search stays reproducible. What
could not be found is said and left empty — no scale is assumed when no ruler is found.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from shoematch.cases.preparation import MAX_PX_PER_CM, MIN_PX_PER_CM, Preparation, prepare
from shoematch.prepare.region import RegionFinding, find_region
from shoematch.prepare.ruler import RulerFinding, find_ruler

# The texture windows of the region search need some scale; without a ruler they use the
# usual scene-photograph scale (FID-300's), and the proposal still has no px/cm.
NOMINAL_PX_PER_CM = 20.0


@dataclass(frozen=True)
class Proposal:
    """What was found in one photograph; scores are in [0, 1] and are not probabilities."""

    ruler: RulerFinding
    region: RegionFinding
    width: int
    height: int
    problems: list[str] = field(default_factory=list)

    @property
    def px_per_cm(self) -> float | None:
        value = self.ruler.px_per_cm if self.ruler.found else None
        return value if value is not None and MIN_PX_PER_CM <= value <= MAX_PX_PER_CM else None

    @property
    def turns(self) -> tuple[float, ...]:
        """Counter-clockwise turns that lay the sole toe to the right (the canvas's way),
        best-scored first; empty without a region."""
        return tuple(_wrap(o.rotate_deg - 90.0) for o in self.region.orientations)

    @property
    def axis_confidence(self) -> float:
        """How elongated the region is: 0 for a round blob (its axis is a guess), → 1."""
        return round(1.0 - 1.0 / self.region.elongation, 3) if self.region.found else 0.0

    def preparation(self, turn: int = 0) -> Preparation | None:
        """The case file's preparation parameters with the `turn`-th orientation, or None
        when the scale is unknown (a preparation needs it)."""
        if self.px_per_cm is None:
            return None
        turns = self.turns
        return Preparation(crop=self.region.crop if self.region.found else None,
                           rotate_deg=turns[turn] if turns else 0.0, px_per_cm=self.px_per_cm)

    def canvas_mask(self, params: Preparation, canvas: tuple[int, int],
                    index_px_per_cm: float) -> np.ndarray | None:
        """The region's mask taken through the same crop, turn, rescale and placement as the
        print, on the sole canvas where the examiner paints it (None without a region)."""
        if self.region.mask is None:
            return None
        png = io.BytesIO()
        Image.fromarray(self.region.mask.astype(np.uint8) * 255).save(png, format="PNG")
        # ink "light": the mask is taken as it is (255 = visible), not inverted like a print
        moved = prepare(png.getvalue(), params.model_copy(update={"ink": "light"}), canvas,
                        index_px_per_cm)
        return moved > 127

    def as_dict(self) -> dict:
        """JSON-ready: each value with its confidence, or the reason it is missing."""
        prep = self.preparation()
        turns = self.turns
        orientations = self.region.orientations
        return {
            "width": self.width, "height": self.height,
            "preparation": prep.model_dump(mode="json") if prep else None,
            "scale": {"px_per_cm": self.px_per_cm, "uncertainty": self.ruler.uncertainty,
                      "confidence": round(self.ruler.confidence, 3),
                      "ruler_corners": [list(c) for c in self.ruler.corners]
                      if self.ruler.found and self.ruler.corners else None,
                      "reason": self.ruler.reason},
            "rotation": {"rotate_deg": turns[0] if turns else None,
                         "alternative_deg": turns[1] if len(turns) > 1 else None,
                         "axis_confidence": self.axis_confidence,
                         "toe_score": orientations[0].score if orientations else None,
                         "reason": ("the sole's long axis laid toe right; toe or heel first "
                                    "is a guess (toe_score near 0.5): try both turns")
                         if turns else self.region.reason},
            "crop": {"box": list(self.region.crop) if self.region.crop else None,
                     "confidence": self.region.confidence, "reason": self.region.reason},
            "problems": list(self.problems),
        }


def _wrap(degrees: float) -> float:
    """Into (-180, 180]."""
    out = degrees % 360.0
    return round(out - 360.0 if out > 180.0 else out, 2)


def propose(grey: np.ndarray) -> Proposal:
    """Ruler, region and orientation of a grey uint8 photograph; never raises on an image
    that holds nothing to find (the problems say what is missing)."""
    ruler = find_ruler(grey)
    problems = []
    measured = ruler.px_per_cm if ruler.found else None
    if measured is None:
        problems.append(ruler.reason)
    elif not MIN_PX_PER_CM <= measured <= MAX_PX_PER_CM:
        problems.append(f"the ruler reads {measured:g} px/cm, outside the "
                        f"{MIN_PX_PER_CM:g}–{MAX_PX_PER_CM:g} px/cm a preparation accepts")
    if grey.ndim != 2:
        region = RegionFinding(False, "no print region: not a grey image")
    else:
        region = find_region(grey, measured or NOMINAL_PX_PER_CM,
                             ruler.corners if measured is not None else None)
    if not region.found:
        problems.append(region.reason)
    height, width = grey.shape[:2]
    return Proposal(ruler, region, width, height, problems)
