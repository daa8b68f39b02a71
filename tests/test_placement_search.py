"""The placement search of a case query (`shoematch.cases.placement_search`), without a server:
which prints a search ranks, that the drawn mask moves with the print, and which ranking is
kept."""

from __future__ import annotations

import numpy as np
import pytest

from shoematch.cases.placement_search import Try, best_try, placement_tries
from shoematch.cases.preparation import (
    Preparation,
    placement_candidates,
    prepare,
    shift_mask,
)
from shoematch.data.images import encode_png
from shoematch.errors import QueryError

CANVAS = (64, 128)


def photo() -> bytes:
    """A dark L-shaped bar on a light ground, 80×40 px: centred it spans columns 24…103."""
    grey = np.full((40, 80), 230, np.uint8)
    grey[5:35, 10:20] = 20
    grey[25:35, 10:70] = 20
    return encode_png(grey)


def ink(image: np.ndarray) -> np.ndarray:
    return image > 127


def test_a_placed_print_is_searched_once_with_its_mask():
    params = Preparation(px_per_cm=10, placement={"x": 50, "y": 32})
    drawn, tries = placement_tries(photo(), params, ink, CANVAS, 10.0)
    image = prepare(photo(), params, CANVAS, 10.0)
    assert len(tries) == 1 and tries[0].placement is None
    assert np.array_equal(tries[0].image, image) and np.array_equal(drawn, ink(image))
    assert np.array_equal(tries[0].visible, drawn)


def test_a_searched_placement_moves_the_mask_drawn_on_the_centred_print():
    params = Preparation(px_per_cm=10, placement="search")
    centred = prepare(photo(), Preparation(px_per_cm=10), CANVAS, 10.0)
    drawn, tries = placement_tries(photo(), params, ink, CANVAS, 10.0)
    assert np.array_equal(drawn, ink(centred))
    candidates = placement_candidates(CANVAS)
    assert [t.placement for t in tries] == [p for p, _ in candidates]
    for t, (placement, shift) in zip(tries, candidates, strict=True):
        moved = params.model_copy(update={"placement": placement})
        assert np.array_equal(t.image, prepare(photo(), moved, CANVAS, 10.0))
        assert np.array_equal(t.visible, shift_mask(drawn, shift))


def test_placements_that_lose_the_mask_are_not_searched():
    def left_edge(image: np.ndarray) -> np.ndarray:  # a mask over columns 24…29 only
        mask = np.zeros(image.shape, bool)
        mask[:, 24:30] = True
        return mask

    params = Preparation(px_per_cm=10, placement="search")
    _, tries = placement_tries(photo(), params, left_edge, CANVAS, 10.0)
    # Shifted 38 px left the mask leaves the canvas; every other placement keeps some of it.
    assert [t.placement.x for t in tries if t.placement] == [64, 45, 83, 102]


def test_no_usable_placement_is_a_clear_error():
    params = Preparation(px_per_cm=10, placement="search")
    with pytest.raises(QueryError, match="place it by hand"):
        placement_tries(photo(), params, lambda image: np.zeros(image.shape, bool), CANVAS,
                        10.0)


def test_the_placement_whose_best_match_scores_highest_is_kept():
    params = Preparation(px_per_cm=10, placement="search")
    _, tries = placement_tries(photo(), params, ink, CANVAS, 10.0)
    rankings = [{"results": [{"score": s}]} if s is not None else {"results": []}
                for s in (0.4, None, 0.9, 0.1, 0.5)]
    best, record = best_try(tries, rankings)
    assert best == 2
    assert record == {"chosen": {"x": 83.0, "y": 32.0}, "tried": [
        {"x": 64.0, "y": 32.0, "top_score": 0.4}, {"x": 45.0, "y": 32.0, "top_score": -np.inf},
        {"x": 83.0, "y": 32.0, "top_score": 0.9}, {"x": 26.0, "y": 32.0, "top_score": 0.1},
        {"x": 102.0, "y": 32.0, "top_score": 0.5}]}
    placed = [Try(None, tries[0].image, tries[0].visible)]
    assert best_try(placed, [{"results": [{"score": 0.3}]}]) == (0, None)
