"""Putting real images onto the canonical canvas, and deriving masks the sources do not ship.

Every reader funnels its images through these helpers so that one dataset shares one convention:
the sole lies horizontally with the toe to the right, the background (and any padding) is 0, and
prints have 255 = ink.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from shoematch.data.schema import Canvas

RESAMPLE = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR}


def resize(image: np.ndarray, height: int, width: int, resample: str = "bilinear") -> np.ndarray:
    """Resize to exactly height × width (PIL's bilinear filter antialiases when shrinking)."""
    if image.shape[:2] == (height, width):
        return image
    resized = Image.fromarray(image).resize((width, height), RESAMPLE[resample])
    return np.asarray(resized, dtype=np.uint8)


def scale(image: np.ndarray, factor: float, resample: str = "bilinear") -> np.ndarray:
    """Scale both sides by `factor` (keeps physical scale consistent across a source)."""
    height = max(1, round(image.shape[0] * factor))
    width = max(1, round(image.shape[1] * factor))
    return resize(image, height, width, resample)


def rotate_clockwise(image: np.ndarray, degrees: int) -> np.ndarray:
    """Rotate by a multiple of 90° clockwise (exact, no resampling)."""
    if degrees % 90:
        raise ValueError(f"rotation must be a multiple of 90°, got {degrees}")
    return np.ascontiguousarray(np.rot90(image, k=-(degrees // 90)))


def toe_up_to_toe_right(image: np.ndarray) -> np.ndarray:
    """Rotate an upright sole (toe at the top) 90° clockwise so the toe points right."""
    return rotate_clockwise(image, 90)


def place_centred(image: np.ndarray, canvas: Canvas) -> tuple[np.ndarray, np.ndarray]:
    """Centre `image` on a zero canvas, cropping whatever lies beyond it.

    Returns the placed image and the 0/255 mask of the canvas area the image covers (the
    visible region of a query print).
    """
    height, width = image.shape[:2]
    out = np.zeros((canvas.height, canvas.width, *image.shape[2:]), dtype=np.uint8)
    covered = np.zeros(canvas.shape, dtype=np.uint8)
    # Offsets of the image's top-left corner on the canvas (negative = cropped on that side).
    top = (canvas.height - height) // 2
    left = (canvas.width - width) // 2
    dst_r = slice(max(top, 0), min(top + height, canvas.height))
    dst_c = slice(max(left, 0), min(left + width, canvas.width))
    src_r = slice(dst_r.start - top, dst_r.stop - top)
    src_c = slice(dst_c.start - left, dst_c.stop - left)
    out[dst_r, dst_c] = image[src_r, src_c]
    covered[dst_r, dst_c] = 255
    return out, covered


def overflows(height: int, width: int, canvas: Canvas) -> bool:
    """Whether an image of this size would be cropped by `place_centred`."""
    return height > canvas.height or width > canvas.width


def fit(image: np.ndarray, canvas: Canvas, resample: str = "bilinear"
        ) -> tuple[np.ndarray, np.ndarray]:
    """Scale to fit the canvas with the aspect ratio kept, then centre and zero-pad.

    Returns the placed image and the 0/255 mask of the canvas area it covers.
    """
    height, width = image.shape[:2]
    factor = min(canvas.height / height, canvas.width / width)
    fitted = resize(image, min(canvas.height, max(1, round(height * factor))),
                    min(canvas.width, max(1, round(width * factor))), resample)
    return place_centred(fitted, canvas)


def ink_is_dark(image: np.ndarray, mask: np.ndarray) -> bool:
    """Guess whether a grey print shows ink darker than its background.

    The background is sampled outside `mask` when the mask leaves at least 5% of the image
    out, otherwise along the image border (prints are cropped with a margin around them).
    Ink is dark when that background is brighter than the region inside the mask.
    """
    outside = mask < 128
    if outside.mean() >= 0.05:
        background = image[outside]
        foreground = image[~outside]
    else:
        border = np.ones(image.shape[:2], dtype=bool)
        border[2:-2, 2:-2] = False
        background = image[border]
        foreground = image
    if foreground.size == 0:
        return bool(background.mean() > 127)
    return bool(background.mean() > foreground.mean())


def _max_filter(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Rectangular max filter (odd sizes), done separably (rows then columns) for speed."""
    padded = np.pad(image, ((height // 2, height // 2), (width // 2, width // 2)), mode="edge")
    rows = sliding_window_view(padded, height, axis=0).max(axis=-1)
    return sliding_window_view(rows, width, axis=1).max(axis=-1)


def _closing(region: np.ndarray, height: int, width: int) -> np.ndarray:
    return ~_max_filter(~_max_filter(region, height, width), height, width)


def _box_mean(region: np.ndarray, size: int) -> np.ndarray:
    """Mean of a boolean image over a size × size window (edges replicated), via cumsums."""
    pad = size // 2
    padded = np.pad(region.astype(np.float32), pad, mode="edge")
    sums = np.pad(padded.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    window = sums[size:, size:] - sums[:-size, size:] - sums[size:, :-size] + sums[:-size, :-size]
    return window / (size * size)


def sole_mask(print_ink: np.ndarray, px_per_cm: float, threshold: int = 64,
              density: float = 0.2) -> np.ndarray:
    """The sole region of a clean print (255 = ink) lying horizontally on the canvas.

    Sized in centimetres so the result does not depend on resolution: pixels count as sole
    where at least `density` of the 1 cm square around them is ink (tread texture passes,
    paper grain and specks do not); a 1 cm closing smooths the outline; a 5 cm closing along
    the length bridges the gap a separate heel leaves at the arch; finally each column is
    filled between its outermost sole pixels, since every cross-section of a sole is one
    interval (closing holes such as a plain arch without a connected-component pass).
    """
    close = int(round(px_per_cm)) | 1
    bridge = int(round(5 * px_per_cm)) | 1
    region = _box_mean(print_ink > threshold, close) >= density
    region = _closing(_closing(region, close, close), 1, bridge)
    first = np.argmax(region, axis=0)
    last = region.shape[0] - 1 - np.argmax(region[::-1], axis=0)
    rows = np.arange(region.shape[0])[:, None]
    filled = (rows >= first) & (rows <= last) & region.any(axis=0)
    return filled.astype(np.uint8) * 255


def binary_mask(mask: np.ndarray) -> np.ndarray:
    """Clean a grey mask to 0/255 (JPEG and resizing leave in-between values; 0/1 masks too)."""
    threshold = 127 if mask.max() > 1 else 0
    return (mask > threshold).astype(np.uint8) * 255


def ink_up(print_grey: np.ndarray, mask: np.ndarray, invert: bool | None) -> np.ndarray:
    """Return the print with 255 = ink: inverted when `invert`, or when None and ink is dark."""
    if invert is None:
        invert = ink_is_dark(print_grey, mask)
    return 255 - print_grey if invert else print_grey
