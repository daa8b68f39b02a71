"""The attribute model's parts: losses and metrics on hand-worked cases, mining, the network's
outputs, and the predictor API."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from shoematch.attributes.losses import (
    SHOP,
    STREET,
    attribute_loss,
    viewpoint_loss,
    weighted_triplet_loss,
)
from shoematch.attributes.metrics import attribute_accuracy, majority_accuracy, top_k_accuracy
from shoematch.attributes.mining import batch_models, nearest_models
from shoematch.attributes.model import AttributeNetConfig
from shoematch.attributes.predict import (
    build_model,
    load_attribute_model,
    save_attribute_model,
)
from shoematch.errors import ShoematchError
from shoematch.labels import UnknownLabelError

VOCABULARY = {"colour": ["black", "red", "white"], "heel_type": ["block", "flat"]}


def unit(*rows: tuple[float, float]) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=1)


def test_weighted_triplet_loss_on_a_hand_worked_case():
    # Shoe 0: two catalogue views at (1, 0) and a street photo; shoe 1: one catalogue view.
    features = unit((1, 0), (1, 0), (0.8, 0.6), (0.96, 0.28))
    labels = torch.tensor([0, 0, 0, 1])
    domains = torch.tensor([SHOP, SHOP, STREET, SHOP])
    # Same-domain (α): anchor a view, positive the other (d 0), negative shoe 1 (d 0.04):
    # 0.2 − 0.04 = 0.16, twice. Cross-domain (β): street anchor, positives d 0.2, negative
    # d 0.064: 0.2 + 0.2 − 0.064 = 0.336, twice.
    full = weighted_triplet_loss(features, labels, domains, margin=0.2, alpha=1, beta=2,
                                 hard_fraction=1.0)
    assert float(full) == pytest.approx((2 * 0.16 * 1 + 2 * 0.336 * 2) / 6, abs=1e-5)
    hardest = weighted_triplet_loss(features, labels, domains, margin=0.2, alpha=1, beta=2,
                                    hard_fraction=0.5)
    assert float(hardest) == pytest.approx(0.336, abs=1e-5)
    apart = unit((1, 0), (1, 0), (1, 0.01), (-1, 0))
    assert float(weighted_triplet_loss(apart, labels, domains)) == 0.0


def test_viewpoint_loss_pulls_catalogue_views_of_one_shoe_together():
    features = unit((1, 0), (0, 1), (0.6, 0.8), (-1, 0))
    labels = torch.tensor([0, 0, 1, 0])
    domains = torch.tensor([SHOP, SHOP, SHOP, STREET])  # the street photo does not count
    # Shoe 0's views sit 0.5 (squared) from their mean (0.5, 0.5); shoe 1 has one view.
    assert float(viewpoint_loss(features, labels, domains)) == pytest.approx(1 / 3)


def test_attribute_loss_ignores_unknown_values():
    logits = {"colour": torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 5.0]])}
    known = attribute_loss(logits, {"colour": torch.tensor([0, -1])})
    expected = torch.nn.functional.cross_entropy(logits["colour"][:1], torch.tensor([0]))
    assert torch.isclose(known, expected)
    assert float(attribute_loss(logits, {"colour": torch.tensor([-1, -1])})) == 0.0


def test_top_k_accuracy_ranks_shoes_by_their_best_catalogue_image():
    gallery = np.array([[1, 0], [0, 1], [0.6, 0.8], [0.8, 0.6]], np.float32)
    owners = np.array(["A", "B", "B", "C"])
    queries = np.array([[0.7, 0.71], [1, 0]], np.float32)
    truth = np.array(["B", "C"])
    # Query 1 is nearest B's (0.6, 0.8); query 2 ranks A, C, B.
    assert top_k_accuracy(queries, truth, gallery, owners, k=1) == 0.5
    assert top_k_accuracy(queries, truth, gallery, owners, k=2) == 1.0
    assert math.isnan(top_k_accuracy(queries[:0], truth[:0], gallery, owners))


def test_attribute_and_majority_accuracy():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert attribute_accuracy(probs, np.array([0, 0, -1])) == 0.5
    assert majority_accuracy(np.array([1, 1, 0, -1]), np.array([1, 0, 1, 1])) == 0.75


def test_mining_finds_the_closest_shoes_and_batches_hold_them():
    features = unit((1, 0), (0.99, 0.14), (0, 1), (-1, 0))
    assert nearest_models(features.numpy(), 1).ravel().tolist() == [1, 0, 1, 2]
    neighbours = nearest_models(features.numpy(), 2)
    chosen = batch_models(np.random.default_rng(0), 4, 3, neighbours)
    assert len(set(chosen.tolist())) == 3
    assert set(neighbours[chosen[0]]) <= set(chosen.tolist())


def test_network_outputs_unit_features_and_one_head_per_attribute():
    config = AttributeNetConfig(arch="resnet18", input_height=64, input_width=128, fc_dim=32)
    net = build_model(config, VOCABULARY).eval()
    features, logits = net(torch.rand(2, 3, 64, 128))
    assert torch.allclose(features.norm(dim=1), torch.ones(2), atol=1e-5)
    assert features.shape[1] == 2 * 5 * 512 + 32  # two pyramids (2×2 + 1×1) and fc1
    assert {k: v.shape[1] for k, v in logits.items()} == {"colour": 3, "heel_type": 2}
    with pytest.raises(ValueError, match="crop"):
        AttributeNetConfig(crop=(0.5, 0, 0.4, 1))


def test_predictor_round_trip_and_unknown_attributes(tmp_path):
    config = AttributeNetConfig(arch="resnet18", input_height=64, input_width=128, fc_dim=32)
    save_attribute_model(str(tmp_path / "m"), build_model(config, VOCABULARY), config,
                         VOCABULARY, {"step": 0})
    predictor = load_attribute_model(str(tmp_path / "m"))
    photos = [np.random.default_rng(i).integers(0, 256, (96, 192, 3), dtype=np.uint8)
              for i in range(3)]
    predictions = predictor.predict(photos)
    assert len(predictions) == 3
    value, score = predictions[0]["colour"]
    assert value in VOCABULARY["colour"] and 0 < score <= 1
    assert predictor.predict(photos, names=["heel_type"])[2].keys() == {"heel_type"}
    features = predictor.embed(photos)
    assert features.shape[0] == 3 and features.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1, atol=1e-5)
    assert predictor.embed([]).shape[0] == 0
    with pytest.raises(UnknownLabelError, match="'sole_colour'"):
        predictor.predict(photos, names=["sole_colour"])
    with pytest.raises(UnknownLabelError, match="'brand'"):
        predictor.check_filters({"colour": "red", "brand": "Apex"})
    with pytest.raises(UnknownLabelError, match="'purple'"):
        predictor.check_filters({"colour": "purple"})
    assert predictor.check_filters({"colour": "red"}) == {"colour": "red"}
    with pytest.raises(ShoematchError, match="photo #0"):
        predictor.embed([photos[0][..., 0]])
