"""The per-cell similarity map of a match as a picture: which regions of the print agreed."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from shoematch.data.images import encode_png

MIN_LABEL_CELL_PX = 28  # narrower cells get colour only


def _colours(values: np.ndarray) -> np.ndarray:
    """Blue (disagree) → white → red (agree) for values in [-1, 1]."""
    v = np.clip(values, -1.0, 1.0)[..., None]
    red, white, blue = (np.array(c, np.float32) for c in ((220, 40, 30), (255, 255, 255),
                                                             (40, 80, 220)))
    return np.where(v >= 0, white + (red - white) * v, white + (blue - white) * -v)


def heatmap_rgb(cell_scores: list[list[float]], visible_cells: list[list[bool]],
                print_image: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """uint8 [H, W, 3]: the visible cells' similarity (hidden cells greyed) blended over the
    query print (255 = ink, shown dark on light as an examiner reads it)."""
    cells = np.where(np.asarray(visible_cells, bool), np.asarray(cell_scores, np.float32),
                     np.nan)
    height, width = print_image.shape
    rows = np.minimum(np.arange(height) * cells.shape[0] // height, cells.shape[0] - 1)
    cols = np.minimum(np.arange(width) * cells.shape[1] // width, cells.shape[1] - 1)
    grid = cells[rows][:, cols]
    ground = np.repeat((255.0 - print_image.astype(np.float32))[..., None], 3, axis=2)
    visible = ~np.isnan(grid)
    colour = _colours(np.nan_to_num(grid))
    blended = np.where(visible[..., None], (1 - alpha) * ground + alpha * colour,
                       0.6 * ground + 0.4 * 128.0)
    return np.round(blended).astype(np.uint8)


def heatmap_png(cell_scores: list[list[float]], visible_cells: list[list[bool]],
                print_image: np.ndarray, scale: int = 2) -> bytes:
    """PNG of `heatmap_rgb`, enlarged `scale`× (nearest) so cells read clearly on a page."""
    image = Image.fromarray(heatmap_rgb(cell_scores, visible_cells, print_image))
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale),
                             Image.Resampling.NEAREST)
    _label_cells(image, cell_scores, visible_cells)
    return encode_png(np.asarray(image))


def _label_cells(image: Image.Image, cell_scores: list[list[float]],
                 visible_cells: list[list[bool]]) -> None:
    """Write each visible cell's similarity in it when the cells are big enough to read."""
    rows, cols = len(cell_scores), len(cell_scores[0])
    cell_w, cell_h = image.width / cols, image.height / rows
    if cell_w < MIN_LABEL_CELL_PX or cell_h < MIN_LABEL_CELL_PX / 2:
        return
    draw = ImageDraw.Draw(image)
    for r in range(rows):
        for c in range(cols):
            if visible_cells[r][c]:
                draw.text(((c + 0.5) * cell_w, (r + 0.5) * cell_h), f"{cell_scores[r][c]:.2f}",
                          fill=(0, 0, 0), anchor="mm", stroke_width=2, stroke_fill=(255, 255, 255))
