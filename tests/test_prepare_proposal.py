"""The proposal as the case file's preparation parameters, and the benchmark's judge of it
(where a hand-made crop lies in its original, which steps failed), on synthetic scenes."""

from __future__ import annotations

import numpy as np
from PIL import Image

from benchmarks.fid300_originals import failures, locate_crop
from shoematch.cases.proposal import propose
from tests.synthetic_scene import scene

CANVAS = (96, 192)  # height, width: a sole canvas at 5 px/cm


def test_proposal_is_a_preparation_with_the_mask_on_the_canvas():
    proposal = propose(scene(20.0, 33.0, seed=1))
    params = proposal.preparation()
    assert params is not None and abs(params.px_per_cm - 20.0) < 0.4
    # the sole lies toe right turned 33° ccw: -33° undoes it (or +147°, heel first)
    assert min(abs(params.rotate_deg + 33), abs(params.rotate_deg - 147)) < 8
    assert params.crop == proposal.region.crop
    other = proposal.preparation(turn=1)
    assert abs((other.rotate_deg - params.rotate_deg) % 360 - 180) < 1e-6
    mask = proposal.canvas_mask(params, CANVAS, 5.0)
    assert mask.shape == CANVAS and mask.dtype == bool
    # the sole is about 21 × 10 cm: at 5 px/cm a blob about 105 × 50 px lying along the width
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    assert cols.size > 1.5 * rows.size
    assert proposal.problems == []


def test_no_ruler_leaves_the_scale_empty():
    proposal = propose(scene(ruler=False, seed=2))
    assert proposal.px_per_cm is None and proposal.preparation() is None
    assert proposal.problems[0].startswith("no ruler found")
    answer = proposal.as_dict()
    assert answer["preparation"] is None and answer["scale"]["px_per_cm"] is None
    assert answer["crop"]["box"] is not None  # the region is still proposed


def test_crop_located_in_its_original_and_steps_judged():
    photo = scene(20.0, 0.0, seed=1)
    box = (150, 180, 450, 330)
    crop = Image.fromarray(photo).crop(box).rotate(90, expand=True)  # toe up, as FID-300's
    place = locate_crop(Image.fromarray(photo), crop)
    # the crop turned back a quarter clockwise is how the print lies in the photo
    assert place.quarter == 3
    assert np.allclose(place.box, box, atol=4)
    assert place.toe_right_deg in (0.0, 180.0)
    failed = failures(propose(photo), place)
    assert not failed["no ruler"] and not failed["wrong scale"]
    assert not failed["wrong orientation"] and not failed["region missing the print"]
