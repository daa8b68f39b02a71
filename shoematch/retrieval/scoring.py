"""CriSp scoring exactly as docs/scoring-and-metrics.md: per-cell L2 normalisation, query cells
outside the (dilated) visible region zeroed, score = Σ over cells of q_cell · d_cell.

References are never masked, so their features are computed once and indexed; a query's mask
only changes its own features. Because every cell is unit length (or zero), the score is a plain
dot product of the flattened features — one matmul for a whole batch of queries.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DILATE_KERNEL = 8
DILATE_ITERATIONS = 5
# cv2.dilate with an even k×k kernel and the default anchor (-1, -1) anchors at (k//2, k//2):
# dst(y, x) = max src(y + i, x + j) for i, j in -k//2 .. k//2 - 1, i.e. offsets -4..+3 for k = 8.
# Five iterations compose to offsets -20..+15: one 36x36 kernel anchored at 20, as cv2 merges
# them (a box dilated by a box is a box, and the image is convex, so clipping to the image between
# iterations changes nothing).


def normalize_cells(features: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """L2-normalise each spatial cell over channels ([B, C, h, w]); all-zero cells stay zero."""
    return F.normalize(features, p=2, dim=1, eps=eps)


def dilate_mask(mask: torch.Tensor, kernel: int = DILATE_KERNEL,
                iterations: int = DILATE_ITERATIONS) -> torch.Tensor:
    """Binary dilation of float {0, 1} masks [B, 1, H, W], equal to cv2.dilate(mask,
    np.ones((kernel, kernel)), iterations=iterations) including its even-kernel anchor.

    Outside the image counts as 0. Done as the one merged square, separably, each axis a window
    count from cumulative sums: O(H·W) whatever the kernel (the iterated 8x8 max-pools took
    ~30 ms of a served query's ~80 ms int8 encoder time at 192x384).
    """
    size = iterations * (kernel - 1) + 1
    before = iterations * (kernel // 2)
    out = _window_any(mask > 0.5, -1, size, before)
    return _window_any(out, -2, size, before).to(mask.dtype)


def _window_any(mask: torch.Tensor, dim: int, size: int, before: int) -> torch.Tensor:
    """Whether any of mask[i - before .. i - before + size - 1] along `dim` (-1 or -2) is set."""
    pad = (before + 1, size - 1 - before)  # + 1: a leading zero for the cumulative sums
    padded = F.pad(mask.to(torch.int32), pad if dim == -1 else (0, 0, *pad))
    counts = padded.cumsum(dim)
    length = mask.shape[dim]
    return counts.narrow(dim, size, length) > counts.narrow(dim, 0, length)


def query_cell_mask(visible_mask: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Feature cells that see the query's visible region: bool [B, h, w].

    `visible_mask` is [B, 1, H, W] (or [B, H, W]), bool or float (float: > 0.5 is visible). As
    the released CriSp code: dilate (8x8 kernel, 5 iterations), resize to the feature grid
    bilinearly (align_corners=False, no antialiasing — each cell samples the 2x2 pixels around its
    centre), keep cells > 0.
    """
    if visible_mask.dim() == 3:
        visible_mask = visible_mask.unsqueeze(1)
    if visible_mask.dim() != 4 or visible_mask.shape[1] != 1:
        raise ValueError(f"visible_mask must be [B, 1, H, W] or [B, H, W], "
                         f"got {tuple(visible_mask.shape)}")
    if visible_mask.dtype == torch.bool:
        mask = visible_mask.float()
    else:
        mask = (visible_mask > 0.5).float()
    dilated = dilate_mask(mask)
    resized = F.interpolate(dilated, size=tuple(grid), mode="bilinear", align_corners=False)
    return resized[:, 0] > 0


def masked_query(features: torch.Tensor, cell_mask: torch.Tensor) -> torch.Tensor:
    """Normalise cells, then zero the cells outside `cell_mask` (bool [B, h, w])."""
    if cell_mask.shape != (features.shape[0], *features.shape[2:]):
        raise ValueError(f"cell_mask {tuple(cell_mask.shape)} does not fit features "
                         f"{tuple(features.shape)}")
    return normalize_cells(features) * cell_mask.unsqueeze(1).to(features.dtype)


def score(query_feat: torch.Tensor, ref_feat: torch.Tensor) -> torch.Tensor:
    """[Q, R] scores: Σ over cells of q_cell · d_cell.

    `query_feat` [Q, C, h, w] must already be masked and normalised (`masked_query`),
    `ref_feat` [R, C, h, w] normalised (`normalize_cells`); references are never masked.
    """
    if query_feat.shape[1:] != ref_feat.shape[1:]:
        raise ValueError(f"query features {tuple(query_feat.shape[1:])} and reference features "
                         f"{tuple(ref_feat.shape[1:])} differ in shape (same encoder and canvas?)")
    return query_feat.flatten(1) @ ref_feat.flatten(1).T
