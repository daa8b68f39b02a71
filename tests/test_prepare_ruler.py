"""Ruler scale detection on synthetic photographs with a drawn ruler at a known scale and
rotation, and on input holding no ruler at all."""

from __future__ import annotations

import numpy as np
import pytest

from shoematch.prepare.ruler import find_ruler
from tests.synthetic_scene import scene


@pytest.mark.parametrize(("px_per_cm", "angle", "ruler_at"), [
    (20.0, 0.0, 0.08), (14.0, 90.0, 0.08), (26.0, 180.0, 0.08), (18.0, 33.0, 0.25)])
def test_scale_of_a_drawn_ruler(px_per_cm, angle, ruler_at):
    found = find_ruler(scene(px_per_cm, angle, seed=int(px_per_cm), ruler_at=ruler_at))
    assert found.found, found.reason
    assert abs(found.px_per_cm / px_per_cm - 1) < 0.02, found
    assert found.uncertainty < 0.02 * px_per_cm
    assert 0 < found.confidence <= 1
    # The ruler's direction, up to its sense (the ticks read the same both ways).
    assert min(abs(found.angle_deg - angle % 180), 180 - abs(found.angle_deg - angle % 180)) < 3


def test_no_ruler_says_so():
    found = find_ruler(scene(ruler=False, seed=3))
    assert not found.found
    assert found.reason.startswith("no ruler found")
    assert found.px_per_cm is None


@pytest.mark.parametrize(("image", "words"), [
    (np.full((450, 600), 128, np.uint8), "blank"),
    (np.zeros((10, 12), np.uint8), "smaller than"),
    (np.zeros((5, 5, 3), np.uint8), "grey"),
])
def test_bad_input_is_an_answer_not_an_exception(image, words):
    found = find_ruler(image)
    assert not found.found
    assert words in found.reason
