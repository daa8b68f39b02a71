"""The print's region, mask and long axis in synthetic scene photographs, and the answers on
images holding no print: a ruler only, a blank frame, a grainy ground, a tiny image."""

from __future__ import annotations

import numpy as np
import pytest

from shoematch.prepare.region import find_region, ruler_mask
from shoematch.prepare.ruler import find_ruler
from tests.synthetic_scene import scene

SOLE_BOX = (90, 157, 510, 360)  # where `scene` pastes the sole at angle 0 (600 × 450)


def _sole_extent(angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Centre and (width, height) of the sole's ellipse turned like the scene, in the frame."""
    x0, y0, x1, y1 = SOLE_BOX
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2]) - (300, 225)
    rad = np.deg2rad(angle)
    # y points down: a counter-clockwise turn as seen maps (x, y) to (x cos + y sin, -x sin + y cos)
    centre = np.array([centre[0] * np.cos(rad) + centre[1] * np.sin(rad),
                       -centre[0] * np.sin(rad) + centre[1] * np.cos(rad)]) + (300, 225)
    a, b = (x1 - x0) / 2, (y1 - y0) / 2
    half = np.array([np.hypot(a * np.cos(rad), b * np.sin(rad)),
                     np.hypot(a * np.sin(rad), b * np.cos(rad))])
    low, high = np.maximum(centre - half, 0), np.minimum(centre + half, (600, 450))
    return (low + high) / 2, high - low


def _axis_error(rotate_deg: float, expected: float) -> float:
    """Degrees between two axis turns, up to the toe/heel sense."""
    diff = abs((rotate_deg - expected) % 180.0)
    return min(diff, 180.0 - diff)


@pytest.mark.parametrize("angle", [0.0, 90.0, 33.0])
def test_region_and_long_axis_of_a_turned_print(angle):
    image = scene(20.0, angle, seed=1)
    ruler = find_ruler(image)
    assert ruler.found, ruler.reason
    region = find_region(image, ruler.px_per_cm, ruler.corners)
    assert region.found, region.reason
    centre, size = _sole_extent(angle)
    left, top, right, bottom = region.crop
    assert np.allclose(((left + right) / 2, (top + bottom) / 2), centre, atol=0.1 * size.max())
    assert np.allclose((right - left, bottom - top), size, rtol=0.2), (region.crop, size)
    assert region.mask.shape == image.shape and region.mask.dtype == bool
    # Nothing of the ruler's band is in the mask.
    assert not (region.mask & ruler_mask(image.shape, ruler.corners, 0)).any()
    # Two turns, toe up and toe down, both bringing the long axis upright.
    first, second = region.orientations
    assert _axis_error(first.rotate_deg, 90.0 - angle) < 8, region.orientations
    assert abs(abs(first.rotate_deg - second.rotate_deg) - 180.0) < 1e-6
    assert first.score >= second.score and abs(first.score + second.score - 1) < 1e-3
    assert region.elongation > 1.5
    assert 0 < region.confidence <= 1


def test_ruler_only_has_a_scale_but_no_print():
    image = scene(20.0, 0.0, print_=False, seed=4)
    ruler = find_ruler(image)
    assert ruler.found and abs(ruler.px_per_cm - 20.0) < 0.4, ruler.reason
    region = find_region(image, ruler.px_per_cm, ruler.corners)
    assert not region.found
    assert region.reason.startswith("no print region")
    assert region.crop is None and region.mask is None and region.orientations == ()


@pytest.mark.parametrize(("image", "words"), [
    (np.full((450, 600), 128, np.uint8), "nothing in the image is textured"),
    (np.zeros((12, 14), np.uint8), "smaller than"),
    (scene(ruler=False, print_=False, noise=12.0, seed=5), "stands out"),
])
def test_no_print_is_an_answer_not_an_exception(image, words):
    region = find_region(image, 20.0)
    assert not region.found
    assert words in region.reason, region.reason


def test_grainy_ground_is_refused_rather_than_cropped_wrong():
    """A limit of the texture threshold (the textured half of the image): on a ground as
    grainy as the tread the whole frame comes out textured; the finder says so instead of
    proposing the whole frame as the print."""
    region = find_region(scene(20.0, 0.0, ruler=False, noise=12.0, seed=6), 20.0)
    assert not region.found
    assert "no print stands out" in region.reason
