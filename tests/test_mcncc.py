"""MCNCC against a direct loop over translations: masks, overlap rule, offsets, flat channels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from shoematch.dense.mcncc import ReferenceSpectra, channel_evidence, mcncc_scores


def direct_mcncc(probe: np.ndarray, mask: np.ndarray, ref: np.ndarray, min_overlap: float
                 ) -> tuple[float, tuple[int, int]]:
    """The definition, one translation at a time (reference cell under the probe's (0, 0))."""
    channels, h, w = probe.shape
    _, big_h, big_w = ref.shape
    area = min(mask.sum(), big_h * big_w)
    best, where = -math.inf, (0, 0)
    for dy in range(-(h - 1), big_h):
        for dx in range(-(w - 1), big_w):
            ys = [y for y in range(h) if 0 <= y + dy < big_h]
            xs = [x for x in range(w) if 0 <= x + dx < big_w]
            cells = [(y, x) for y in ys for x in xs if mask[y, x]]
            if len(cells) < max(min_overlap * area, 1):
                continue
            total = 0.0
            for c in range(channels):
                p = np.array([probe[c, y, x] for y, x in cells])
                r = np.array([ref[c, y + dy, x + dx] for y, x in cells])
                p, r = p - p.mean(), r - r.mean()
                total += (p @ r) / math.sqrt((p @ p) * (r @ r) + 1e-6)
            if total / channels > best:
                best, where = total / channels, (dy, dx)
    return best, where


@pytest.mark.parametrize("probe_hw", [(3, 4), (6, 9)])  # inside, and larger than the reference
def test_scores_and_offsets_equal_the_definition(probe_hw: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    refs = rng.random((5, 3, 5, 7)).astype(np.float32)
    probe = rng.random((3, *probe_hw)).astype(np.float32)
    mask = rng.random(probe_hw) > 0.3
    scores, offsets = mcncc_scores(torch.from_numpy(probe), torch.from_numpy(mask),
                                   ReferenceSpectra(torch.from_numpy(refs), chunk=2),
                                   min_overlap=0.5, return_offsets=True)
    for i, ref in enumerate(refs):
        expected, where = direct_mcncc(probe, mask, ref, 0.5)
        assert scores[i].item() == pytest.approx(expected, abs=1e-4)
        assert tuple(offsets[i].tolist()) == where


def test_a_planted_crop_is_found_at_its_offset() -> None:
    rng = np.random.default_rng(1)
    refs = torch.from_numpy(rng.random((8, 4, 12, 10)).astype(np.float32))
    probe = refs[5, :, 3:9, 2:7].clone()
    scores, offsets = mcncc_scores(probe, torch.ones(6, 5, dtype=torch.bool),
                                   ReferenceSpectra(refs), return_offsets=True)
    assert int(scores.argmax()) == 5
    assert scores[5].item() == pytest.approx(1.0, abs=1e-4)
    assert offsets[5].tolist() == [3, 2]


def test_flat_channels_score_zero_not_nan() -> None:
    refs = torch.zeros(2, 2, 4, 4)
    refs[1, 0] = torch.arange(16.0).reshape(4, 4)
    probe = torch.zeros(2, 3, 3)
    scores = mcncc_scores(probe, torch.ones(3, 3, dtype=torch.bool), ReferenceSpectra(refs))
    assert torch.isfinite(scores).all()
    assert scores.abs().max().item() < 1e-3


def test_no_valid_translation_scores_minus_infinity() -> None:
    refs = torch.rand(1, 2, 4, 4)
    probe = torch.rand(2, 2, 2)
    mask = torch.zeros(2, 2, dtype=torch.bool)
    mask[0, 0] = True
    # Nothing visible: no translation has any overlap.
    scores = mcncc_scores(probe, torch.zeros(2, 2, dtype=torch.bool), ReferenceSpectra(refs))
    assert scores[0].item() == -math.inf
    assert torch.isfinite(mcncc_scores(probe, mask, ReferenceSpectra(refs))).all()


def test_shapes_are_checked() -> None:
    refs = ReferenceSpectra(torch.rand(1, 2, 4, 4))
    with pytest.raises(ValueError, match="channels"):
        mcncc_scores(torch.rand(3, 2, 2), torch.ones(2, 2), refs)
    with pytest.raises(ValueError, match="mask"):
        mcncc_scores(torch.rand(2, 2, 2), torch.ones(3, 2), refs)


@pytest.mark.parametrize("box", [(0, 4, 0, 5), (1, 3, 2, 5)])  # whole grid; a padded rectangle
def test_rectangular_masks_equal_the_definition(box) -> None:
    rng = np.random.default_rng(3)
    refs = rng.random((4, 2, 6, 7)).astype(np.float32)
    probe = rng.random((2, 4, 5)).astype(np.float32)
    mask = np.zeros((4, 5), dtype=bool)
    mask[box[0]:box[1], box[2]:box[3]] = True
    scores, offsets = mcncc_scores(torch.from_numpy(probe), torch.from_numpy(mask),
                                   ReferenceSpectra(torch.from_numpy(refs)), min_overlap=0.5,
                                   return_offsets=True)
    for i, ref in enumerate(refs):
        expected, where = direct_mcncc(probe, mask, ref, 0.5)
        assert scores[i].item() == pytest.approx(expected, abs=1e-4)
        assert tuple(offsets[i].tolist()) == where


def test_maps_far_from_zero_keep_their_precision() -> None:
    """Post-activation features sit on a large offset; the window variance must not drown in
    float32 rounding (the reference maps are centred before their spectra are taken)."""
    rng = np.random.default_rng(5)
    refs = (500.0 + rng.random((3, 2, 6, 7))).astype(np.float32)
    probe = rng.random((2, 3, 4)).astype(np.float32)
    mask = np.ones((3, 4), dtype=bool)
    scores = mcncc_scores(torch.from_numpy(probe), torch.from_numpy(mask),
                          ReferenceSpectra(torch.from_numpy(refs)), min_overlap=0.5)
    for i, ref in enumerate(refs):
        expected, _ = direct_mcncc(probe, mask, ref.astype(np.float64), 0.5)
        assert scores[i].item() == pytest.approx(expected, abs=1e-3)


def test_channel_evidence_holds_each_channel_at_the_best_translations() -> None:
    rng = np.random.default_rng(3)
    refs = rng.random((4, 3, 6, 7)).astype(np.float32)
    probe = rng.random((3, 4, 5)).astype(np.float32)
    mask = rng.random((4, 5)) > 0.2
    spectra = ReferenceSpectra(torch.from_numpy(refs), chunk=3)
    evidence = channel_evidence(torch.from_numpy(probe), torch.from_numpy(mask), spectra,
                                top_k=3)
    scores = mcncc_scores(torch.from_numpy(probe), torch.from_numpy(mask), spectra)
    assert evidence.shape == (4, 3, 3)
    # The first kept translation is the best one: its channel mean is the score.
    assert torch.allclose(evidence[:, 0].mean(dim=-1), scores, atol=1e-5)
    means = evidence.mean(dim=-1)
    assert (means[:, :-1] >= means[:, 1:] - 1e-6).all()  # best first
    # Equal weights through the kernel's weighted path give the same scores.
    weighted = mcncc_scores(torch.from_numpy(probe), torch.from_numpy(mask), spectra,
                            channel_weights=torch.full((3,), 2.0))
    assert torch.allclose(weighted, scores, atol=1e-6)


def test_channel_evidence_is_nan_where_no_translation_scores() -> None:
    refs = torch.rand(2, 2, 3, 3)
    evidence = channel_evidence(torch.rand(2, 2, 2), torch.zeros(2, 2, dtype=torch.bool),
                                ReferenceSpectra(refs), top_k=4)
    assert evidence.shape == (2, 4, 2) and torch.isnan(evidence).all()
    # A tiny probe on a tiny reference has fewer valid translations than asked: NaN-padded.
    few = channel_evidence(torch.rand(2, 3, 3), torch.ones(3, 3, dtype=torch.bool),
                           ReferenceSpectra(refs), top_k=50, min_overlap=1.0)
    assert torch.isfinite(few[:, 0]).all() and torch.isnan(few[:, 1:]).all()
