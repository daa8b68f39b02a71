"""CriSp scoring: cell normalisation, the query mask (cv2-equivalent dilation, bilinear resize),
masking and the cell-sum score."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shoematch.retrieval.scoring import (
    dilate_mask,
    masked_query,
    normalize_cells,
    query_cell_mask,
    score,
)


def cv2_dilate_reference(src: np.ndarray, ksize: int, anchor: int, iterations: int) -> np.ndarray:
    """cv2.dilate's definition with a ksize×ksize ones kernel, written out:
    dst(y, x) = max over the kernel of src(y + i - anchor, x + j - anchor), outside ignored."""
    out = src.copy()
    height, width = src.shape
    for _ in range(iterations):
        prev, out = out, np.zeros_like(out)
        for y in range(height):
            for x in range(width):
                y0, y1 = max(0, y - anchor), min(height, y - anchor + ksize)
                x0, x1 = max(0, x - anchor), min(width, x - anchor + ksize)
                out[y, x] = prev[y0:y1, x0:x1].max()
    return out


def test_normalize_cells_unit_length_and_zero_safe() -> None:
    features = torch.randn(2, 5, 3, 4)
    features[0, :, 1, 2] = 0
    out = normalize_cells(features)
    norms = out.norm(dim=1)
    assert torch.isfinite(out).all()
    assert norms[0, 1, 2] == 0
    norms[0, 1, 2] = 1
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-6)


def test_dilation_matches_cv2_definition_with_even_kernel_anchor() -> None:
    rng = np.random.default_rng(0)
    src = (rng.random((23, 31)) > 0.97).astype(np.float32)
    once = dilate_mask(torch.from_numpy(src)[None, None], iterations=1)[0, 0].numpy()
    # cv2's default anchor for an 8x8 kernel is (4, 4): offsets -4..+3.
    assert np.array_equal(once, cv2_dilate_reference(src, 8, 4, 1))
    assert not np.array_equal(once, cv2_dilate_reference(src, 8, 3, 1))
    five = dilate_mask(torch.from_numpy(src)[None, None])[0, 0].numpy()
    assert np.array_equal(five, cv2_dilate_reference(src, 8, 4, 5))
    # cv2 merges the iterations of a rectangular kernel into one 36x36 kernel anchored at 20.
    assert np.array_equal(five, cv2_dilate_reference(src, 36, 20, 1))


@pytest.mark.parametrize(("kernel", "iterations", "shape"), [
    (8, 5, (11, 7)), (3, 2, (19, 26)), (8, 1, (1, 40)), (5, 3, (30, 2))])
def test_dilation_equals_the_iterated_definition_on_any_shape(kernel, iterations, shape) -> None:
    """The merged separable dilation against cv2's iterated definition, with kernels longer
    than the image and masks of many small blobs."""
    rng = np.random.default_rng(kernel * 100 + iterations)
    for density in (0.02, 0.3):
        src = (rng.random(shape) < density).astype(np.float32)
        got = dilate_mask(torch.from_numpy(src)[None, None], kernel, iterations)[0, 0].numpy()
        assert np.array_equal(got, cv2_dilate_reference(src, kernel, kernel // 2, iterations))


def test_single_pixel_dilates_three_up_left_four_down_right() -> None:
    mask = torch.zeros(1, 1, 40, 40)
    mask[0, 0, 20, 20] = 1
    once = dilate_mask(mask, iterations=1)[0, 0]
    rows, cols = torch.nonzero(once, as_tuple=True)
    assert (int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())) == (17, 24, 17, 24)
    five = dilate_mask(mask)[0, 0]
    rows, cols = torch.nonzero(five, as_tuple=True)
    assert (int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())) == (5, 39, 5, 39)


def pixel_mask(row: int, col: int, shape: tuple[int, int] = (64, 128)) -> torch.Tensor:
    mask = torch.zeros(1, 1, *shape, dtype=torch.bool)
    mask[0, 0, row, col] = True
    return mask


def test_query_cell_mask_hand_worked_cells() -> None:
    # 64x128 → grid 2x4: cell (i, j) samples pixels 32i+15..32i+16 and 32j+15..32j+16.
    # Five dilations spread a pixel at p over p-15..p+20.
    assert query_cell_mask(pixel_mask(0, 0), (2, 4))[0].nonzero().tolist() == [[0, 0]]
    # col 27 reaches 47 (cell 1's left sample) only thanks to cv2's +4 side of the anchor.
    assert query_cell_mask(pixel_mask(0, 27), (2, 4))[0].nonzero().tolist() == [[0, 0], [0, 1]]
    assert query_cell_mask(pixel_mask(0, 26), (2, 4))[0].nonzero().tolist() == [[0, 0]]
    # col 63 reaches back to 48 (cell 1), col 64 only to 49.
    assert query_cell_mask(pixel_mask(0, 63), (2, 4))[0, 0].tolist() == [False, True, True, False]
    assert query_cell_mask(pixel_mask(0, 64), (2, 4))[0, 0].tolist() == [False, False, True, False]


def test_query_cell_mask_full_empty_float_and_batch() -> None:
    full = torch.ones(2, 1, 192, 384, dtype=torch.bool)
    full[1] = False
    cells = query_cell_mask(full, (6, 12))
    assert cells.dtype == torch.bool and cells.shape == (2, 6, 12)
    assert cells[0].all() and not cells[1].any()
    as_float = query_cell_mask(full.float()[:, 0], (6, 12))  # [B, H, W] float accepted
    assert torch.equal(as_float, cells)
    # the left half visible (cols 0..191): dilated to col 211, which reaches cell 6's samples
    # (cols 207-208) but not cell 7's (239-240)
    half = torch.zeros(1, 1, 192, 384, dtype=torch.bool)
    half[..., :192] = True
    assert query_cell_mask(half, (6, 12))[0].sum(dim=0).tolist() == [6] * 7 + [0] * 5


def test_masked_query_zeroes_cells_and_normalises_the_rest() -> None:
    features = torch.randn(2, 4, 2, 3)
    mask = torch.tensor([[[True, False, True], [False, False, True]]] * 2)
    out = masked_query(features, mask)
    norms = out.norm(dim=1)
    assert torch.allclose(norms[mask], torch.ones(int(mask.sum())), atol=1e-6)
    assert not out.permute(0, 2, 3, 1)[~mask].any()
    with pytest.raises(ValueError):
        masked_query(features, mask[:, :1])


def test_score_is_sum_of_cell_dot_products() -> None:
    torch.manual_seed(0)
    refs = normalize_cells(torch.randn(5, 8, 2, 3))
    raw = torch.randn(3, 8, 2, 3)
    mask = torch.rand(3, 2, 3) > 0.4
    queries = masked_query(raw, mask)
    scores = score(queries, refs)
    assert scores.shape == (3, 5)
    for q in range(3):
        for r in range(5):
            expected = sum(float(queries[q, :, y, x] @ refs[r, :, y, x])
                           for y in range(2) for x in range(3))
            assert scores[q, r].item() == pytest.approx(expected, abs=1e-5)
    # a query equal to an unmasked reference scores the number of cells
    self_score = score(masked_query(refs[:1], torch.ones(1, 2, 3, dtype=torch.bool)), refs[:1])
    assert self_score.item() == pytest.approx(6.0, abs=1e-5)
    with pytest.raises(ValueError, match="differ in shape"):
        score(queries, refs[:, :, :1])
