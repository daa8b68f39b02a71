"""The print's region, visibility mask and orientation in a scene photograph.

Why texture and not ink: a scene print is not darker than its ground (dust on tiles, a cast, a
gel lift), but its tread is dense structure at the 1–5 mm scale, while redaction boxes are flat,
the ruler is a thin band found separately, and paper margins are smooth. So the mask is where
the local contrast at a few mm stands out, minus flat boxes and the ruler, as the largest
connected blob; the sole's long axis is that blob's principal axis. Toe or heel first stays a
guess (a forefoot is wider than a heel, but scene prints are often partial), so both turns are
returned with scores and the matcher may try both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

FLAT_STD = 3.0  # grey levels: a 5×5 neighbourhood this flat is a redaction box or paper
FLAT_MIN_SHARE = 0.005  # flat blobs smaller than this share of the image are left in
TEXTURE_CM = 0.4  # local contrast window: a few tread elements
CLOSE_CM = 1.0  # gaps in the tread bridged when forming the blob
RULER_MARGIN_CM = 0.5  # the ruler band grown by this before it is cut out
# Textured half / plain half mean contrast below this: one texture throughout, no print (the
# 100 dev originals lie at 1.56 and above; sensor noise on a plain ground at about 1.3).
MIN_SEPARATION = 1.4
# A blob over this share of the usable image is the ground's own texture taken for a print.
MAX_SHARE = 0.9


@dataclass(frozen=True)
class Orientation:
    """A turn that brings the sole's long axis upright, with its score in [0, 1]."""

    rotate_deg: float  # counter-clockwise, as `Preparation.rotate_deg`
    score: float


@dataclass(frozen=True)
class RegionFinding:
    found: bool
    reason: str
    crop: tuple[int, int, int, int] | None = None  # left, top, right, bottom
    mask: np.ndarray | None = None  # bool, the photograph's size: the print's visible area
    confidence: float = 0.0  # the blob's share of textured pixels: a score, not a probability
    orientations: tuple[Orientation, ...] = ()  # best first
    elongation: float = 1.0  # long / short principal axis: near 1, the axis is a guess


def _local_std(grey: np.ndarray, size: int) -> np.ndarray:
    mean = ndimage.uniform_filter(grey, size)
    square = ndimage.uniform_filter(grey * grey, size)
    return np.sqrt(np.maximum(square - mean * mean, 0.0))


def flat_boxes(grey: np.ndarray) -> np.ndarray:
    """Large flat areas (redaction boxes, blank paper, saturated backdrop): never the print."""
    flat = _local_std(grey, 5) < FLAT_STD
    labels, count = ndimage.label(flat)
    if count == 0:
        return flat
    sizes = ndimage.sum(flat, labels, np.arange(1, count + 1))
    keep = np.flatnonzero(sizes >= FLAT_MIN_SHARE * flat.size) + 1
    return ndimage.binary_dilation(np.isin(labels, keep), iterations=2)


def ruler_mask(shape: tuple[int, int], corners, margin_px: float) -> np.ndarray:
    """The ruler's band (four corners in image pixels), grown by `margin_px`."""
    image = Image.new("L", (shape[1], shape[0]), 0)
    ImageDraw.Draw(image).polygon([tuple(c) for c in corners], fill=255)
    band = np.asarray(image) > 0
    return ndimage.binary_dilation(band, iterations=max(1, round(margin_px)))


def _orientations(mask: np.ndarray) -> tuple[tuple[Orientation, ...], float]:
    """Turns that bring the blob's long axis upright (toe up / toe down), with a score: the
    wider end taken as the toe (forefoot wider than heel)."""
    ys, xs = np.nonzero(mask)
    coords = np.stack([xs - xs.mean(), ys - ys.mean()])
    values, vectors = np.linalg.eigh(np.cov(coords))
    long_axis = vectors[:, 1]
    elongation = float(np.sqrt(values[1] / max(values[0], 1e-9)))
    # Angle of the long axis in image coordinates (y down), counter-clockwise from +x.
    axis_deg = float(np.degrees(np.arctan2(-long_axis[1], long_axis[0])))
    # Rotating counter-clockwise by (90 - axis) makes the axis point up.
    up = (90.0 - axis_deg) % 360.0
    along = long_axis @ coords
    across = np.array([-long_axis[1], long_axis[0]]) @ coords
    head = np.abs(across[along > 0]).std() if (along > 0).any() else 0.0
    tail = np.abs(across[along < 0]).std() if (along < 0).any() else 0.0
    # `up` puts the +long_axis end at the top; that end is the toe if it is the wider one.
    share = float(head / (head + tail)) if head + tail > 0 else 0.5
    turns = (Orientation(round(_wrap(up), 2), round(share, 3)),
             Orientation(round(_wrap(up + 180.0), 2), round(1 - share, 3)))
    return tuple(sorted(turns, key=lambda o: -o.score)), elongation


def _wrap(degrees: float) -> float:
    """Into (-180, 180]."""
    out = degrees % 360.0
    return out - 360.0 if out > 180.0 else out


def find_region(grey: np.ndarray, px_per_cm: float, ruler_corners=None) -> RegionFinding:
    """The print's box, mask and orientation candidates in a grey photograph (uint8 H×W) at
    `px_per_cm` (measured or assumed); `found=False` with the reason when nothing is textured."""
    image = grey.astype(np.float32)
    window = max(3, round(TEXTURE_CM * px_per_cm) | 1)
    if min(grey.shape) < 2 * window:
        return RegionFinding(False, f"no print region: the image ({grey.shape[1]}×"
                                    f"{grey.shape[0]} px) is smaller than two texture windows")
    excluded = flat_boxes(image)
    if ruler_corners is not None:
        excluded |= ruler_mask(grey.shape, ruler_corners, RULER_MARGIN_CM * px_per_cm)
    contrast = _local_std(image, window)
    usable = contrast[~excluded]
    if usable.size == 0 or float(usable.max()) < FLAT_STD:
        return RegionFinding(False, "no print region: nothing in the image is textured")
    threshold = float(np.median(usable))
    plain, rough = usable[usable <= threshold], usable[usable > threshold]
    separation = float(rough.mean() / max(plain.mean(), 1e-6)) if rough.size else 1.0
    if separation < MIN_SEPARATION:
        return RegionFinding(False, "no print region: no area's texture stands out of the rest "
                                    f"(contrast ratio {separation:.2f} < {MIN_SEPARATION})")
    textured = (contrast > threshold) & ~excluded
    close = max(1, round(CLOSE_CM * px_per_cm / 2))
    blob = ndimage.binary_closing(textured, iterations=close)
    blob = ndimage.binary_opening(blob, iterations=close) & ~excluded
    labels, count = ndimage.label(blob)
    if count == 0:
        return RegionFinding(False, "no print region: no textured area survives the cleaning")
    sizes = ndimage.sum(blob, labels, np.arange(1, count + 1))
    mask = ndimage.binary_fill_holes(labels == int(np.argmax(sizes)) + 1) & ~excluded
    if mask.sum() < (2 * window) ** 2:
        return RegionFinding(False, "no print region: the textured area is too small")
    if mask.sum() > MAX_SHARE * (~excluded).sum():
        return RegionFinding(False, "no print region: the whole image is textured alike, no "
                                    "print stands out of its ground")
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    crop = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    confidence = float(textured[mask].mean())
    orientations, elongation = _orientations(mask)
    return RegionFinding(True, f"print region {crop[2] - crop[0]}×{crop[3] - crop[1]} px, "
                               f"long axis {elongation:.2f}× the short one", crop, mask,
                         round(confidence, 3), orientations, round(elongation, 3))
