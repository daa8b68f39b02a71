"""The dense matcher on small synthetic treads: planted crops found across scale and rotation,
clear refusals for bad input, fine-tuning and its weights file, ranks and calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shoematch.dense.finetune import (
    FinetuneConfig,
    TrainableMatcher,
    info_nce,
    ncc_matrix,
    train_steps,
)
from shoematch.dense.matcher import DenseConfig, DenseMatcher, crop_to_mask
from shoematch.dense.ranking import first_target_rank, pessimistic_rank
from shoematch.errors import QueryError
from shoematch.models.resnet import WeightsMismatchError
from shoematch.retrieval.calibration import (
    TopTenCalibrator,
    cross_validated,
    evidence,
    expected_calibration_error,
    reliability,
    z_scores,
)

CANVAS = (64, 128)


def treads(count: int, seed: int = 0) -> list[np.ndarray]:
    """Distinct blocky tread patterns (255 = ink) on one canvas."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        cells = rng.random((CANVAS[0] // 8, CANVAS[1] // 8)) > 0.5
        out.append((np.kron(cells, np.ones((8, 8))) * 255).astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def matcher() -> DenseMatcher:
    return DenseMatcher(DenseConfig(block=2, px_per_cm=10.0, rotations=(-6.0, 0.0, 6.0)))


def probe_from(reference: np.ndarray, box: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
    image = np.zeros_like(reference)
    image[box] = reference[box]
    mask = np.zeros(reference.shape, dtype=bool)
    mask[box] = True
    return image, mask


@pytest.mark.parametrize("crop", [False, True])
def test_a_crop_is_found_at_its_own_scale_and_at_twice_the_resolution(matcher, crop) -> None:
    refs = treads(6)
    for ref in refs:  # a blank canvas margin, which a cropped gallery leaves out
        ref[:, -24:] = 0
    gallery = matcher.gallery(refs, px_per_cm=10.0, crop=crop)
    full = matcher.gallery(refs, px_per_cm=10.0)
    assert (gallery.maps.shape[-1] < full.maps.shape[-1]) == crop
    image, mask = probe_from(refs[3], (slice(8, 56), slice(24, 96)))
    assert int(np.argmax(matcher.scores(image, mask, 10.0, gallery))) == 3
    big = np.kron(image, np.ones((2, 2), dtype=np.uint8))
    big_mask = np.kron(mask, np.ones((2, 2), dtype=bool))
    assert int(np.argmax(matcher.scores(big, big_mask, 20.0, gallery))) == 3


def test_padding_probe_grids_changes_no_score() -> None:
    refs = treads(4, seed=1)
    image, mask = probe_from(refs[1], (slice(5, 50), slice(10, 83)))
    results = []
    for grid in ((1, 1), (40, 50)):
        m = DenseMatcher(DenseConfig(block=2, px_per_cm=10.0, probe_grid=grid))
        results.append(m.scores(image, mask, 10.0, m.gallery(refs, 10.0)))
    np.testing.assert_allclose(results[0], results[1], atol=1e-4)


def test_bad_input_is_refused_with_a_clear_error(matcher) -> None:
    refs = treads(2)
    gallery = matcher.gallery(refs, 10.0)
    image, mask = probe_from(refs[0], (slice(0, 32), slice(0, 32)))
    with pytest.raises(QueryError, match="physical scale"):
        matcher.scores(image, mask, None, gallery)
    with pytest.raises(QueryError, match="physical scale"):
        matcher.gallery(refs, None)
    with pytest.raises(QueryError, match="empty"):
        matcher.scores(image, np.zeros_like(mask), 10.0, gallery)
    tiny, tiny_mask = probe_from(refs[0], (slice(0, 3), slice(0, 3)))
    with pytest.raises(QueryError, match="smaller than the feature stride"):
        matcher.scores(tiny, tiny_mask, 10.0, gallery)
    with pytest.raises(QueryError, match="mask is"):
        matcher.scores(image, mask[:10], 10.0, gallery)
    with pytest.raises(QueryError, match="one canvas"):
        matcher.gallery([refs[0], refs[1][:32]], 10.0)


def test_crop_to_mask_cuts_the_visible_box() -> None:
    image = np.arange(20, dtype=np.uint8).reshape(4, 5)
    mask = np.zeros((4, 5), dtype=bool)
    mask[1:3, 2:4] = True
    cropped, cropped_mask = crop_to_mask(image, mask)
    assert cropped.tolist() == [[7, 8], [12, 13]] and cropped_mask.all()


def test_fine_tuning_runs_and_its_weights_load_into_the_matcher(tmp_path) -> None:
    dense = DenseConfig(block=2, px_per_cm=10.0)
    model = TrainableMatcher(dense, channel_weights=True)
    prints = torch.from_numpy(np.stack(treads(6)))[:, None].float() / 255.0
    config = FinetuneConfig(steps=3, batch=4, window=(48, 64), lr=1e-3)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses: list[float] = []
    running_mean = model.features.body._bn0.running_mean.clone()
    train_steps(model, optimizer, prints, config, 0, 0,
                lambda step, parts, images: losses.append(parts["loss"]))
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert torch.equal(model.features.body._bn0.running_mean, running_mean)  # frozen BN
    path = tmp_path / "matcher.pt"
    torch.save(model.export(), path)
    tuned = DenseMatcher(dense.model_copy(update={"weights": str(path)}))
    assert tuned.channel_weights is not None and tuned.channel_weights.shape == (24,)
    refs = treads(3)
    image, mask = probe_from(refs[2], (slice(0, 64), slice(0, 128)))
    assert int(np.argmax(tuned.scores(image, mask, 10.0, tuned.gallery(refs, 10.0)))) == 2
    torch.save({"body": {}}, tmp_path / "bad.pt")
    with pytest.raises(WeightsMismatchError, match="not a fine-tuned"):
        DenseMatcher(dense.model_copy(update={"weights": str(tmp_path / "bad.pt")}))


def test_ncc_matrix_and_info_nce() -> None:
    torch.manual_seed(0)
    maps = torch.rand(3, 4, 5, 6)
    scores = ncc_matrix(maps, maps, torch.ones(4))
    assert torch.allclose(scores.diagonal(), torch.ones(3), atol=1e-4)
    assert info_nce(scores, 0.05) < info_nce(scores.flip(0), 0.05)


def test_ranks_count_ties_and_nan_against_the_method() -> None:
    assert pessimistic_rank(np.array([0.5, 0.9, 0.5]), 0) == 3
    assert pessimistic_rank(np.array([np.nan, 0.2]), 0) == 2
    scores = np.array([0.1, 0.9, 0.3, 0.95])
    assert first_target_rank(scores, ["a", "b", "a", "c"], ["a"]) == 3
    assert first_target_rank(scores, ["a", "b", "a", "c"], ["z"]) is None


def test_calibration_separates_confident_queries_and_is_cross_validated() -> None:
    rng = np.random.default_rng(0)
    z = z_scores(np.array([1.0, 2.0, 3.0, -np.inf]))
    assert np.isneginf(z[-1]) and abs(z[:3].mean()) < 1e-9
    stands_out = evidence(np.r_[10.0, rng.normal(0, 1, 500)])
    blends_in = evidence(rng.normal(0, 1, 501))
    assert stands_out[0] > blends_in[0]
    features = np.stack([evidence(np.r_[rng.normal(3, 1) * hit, rng.normal(0, 1, 300)])
                         for hit in (rng.random(200) > 0.5)])
    hits = (features[:, 0] + rng.normal(0, 0.5, 200) > 3).astype(float)
    calibrator = TopTenCalibrator.fit(features, hits)
    assert calibrator.probability(features[hits == 1]).mean() > \
        calibrator.probability(features[hits == 0]).mean()
    assert TopTenCalibrator.from_dict(calibrator.to_dict()) == calibrator
    probabilities = cross_validated(features, hits)
    assert expected_calibration_error(probabilities, hits) < 0.15
    assert sum(row["queries"] for row in reliability(probabilities, hits)) == 200
    with pytest.raises(QueryError, match="both inside and outside"):
        TopTenCalibrator.fit(features[:5], np.ones(5))
