"""The descriptor classifier's parts: input channels, preprocessing layers, losses, metrics
(hand-worked cases), the two-phase schedule, Grad-CAM, and the predictor API."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from shoematch.data.schema import DESCRIPTOR_CODES
from shoematch.descriptors.channels import resampled_channels
from shoematch.descriptors.config import DescriptorOptimConfig, DescriptorTrainConfig
from shoematch.descriptors.gradcam import gradcam, overlay
from shoematch.descriptors.losses import positive_weights, soft_f1, weighted_bce
from shoematch.descriptors.metrics import best_thresholds, confusion_matrix, pr_auc
from shoematch.descriptors.model import DescriptorNet, DescriptorNetConfig
from shoematch.descriptors.predict import load_descriptor_model, save_descriptor_model
from shoematch.descriptors.preprocess import PREPROCESS, build_preprocess
from shoematch.descriptors.training import phase_rates
from shoematch.errors import ConfigError, ShoematchError
from shoematch.labels import UnknownLabelError, check_descriptor_codes


def stripes(height: int = 192, width: int = 384) -> np.ndarray:
    image = np.zeros((height, width), np.uint8)
    image[:, ::3] = 255
    return image


def test_channels_keep_the_aspect_ratio_and_differ_by_filter():
    out = resampled_channels(stripes(), (144, 352), "NBH")
    assert out.shape == (3, 144, 352) and out.dtype == np.uint8
    # 384×192 scaled by 0.75 is 288×144, centred: 32 empty columns each side.
    assert not out[:, :, :32].any() and not out[:, :, -32:].any() and out[:, :, 32:320].any()
    nearest, bilinear, hamming = out
    assert set(np.unique(nearest)) <= {0, 255}  # nearest never blends
    assert len(np.unique(bilinear)) > 2 and not np.array_equal(bilinear, hamming)
    np.testing.assert_array_equal(resampled_channels(stripes(), (144, 352), "HNB")[1], nearest)


@pytest.mark.parametrize("order", ["BH", "BHX", "bhn"])
def test_bad_channel_compositions_name_themselves(order):
    with pytest.raises(ConfigError, match=repr(order)):
        resampled_channels(stripes(), (144, 352), order)


@pytest.mark.parametrize("kind", PREPROCESS)
def test_preprocessing_layers_map_three_channels_to_three(kind):
    layer = build_preprocess(kind)
    assert layer(torch.rand(2, 3, 24, 40)).shape == (2, 3, 24, 40)
    trainable = sum(p.numel() for p in layer.parameters())
    assert (trainable == 0) == (kind == "none")


def test_network_gives_one_logit_per_descriptor():
    net = DescriptorNet(arch="resnet18", preprocess="inc_d").eval()
    assert net(torch.rand(2, 3, 144, 352)).shape == (2, len(DESCRIPTOR_CODES))
    groups = net.param_groups()
    assert sum(len(g) for g in groups) == len(list(net.parameters()))


def test_config_rejects_small_inputs_and_unknown_keys():
    with pytest.raises(ValueError, match="input_height"):
        DescriptorNetConfig(input_height=64)
    from shoematch.config import load_config

    with pytest.raises(ConfigError, match="unknown config key 'optim.learning_rate'"):
        load_config(DescriptorTrainConfig, None, ["data.refdb=x", "optim.learning_rate=1"])
    with pytest.raises(ConfigError, match="model.channels"):
        load_config(DescriptorTrainConfig, None, ["data.refdb=x", "model.channels=BHQ"])


def test_weighted_bce_counts_positives_by_their_weight():
    logits = torch.tensor([[0.3, -1.2], [2.0, 0.5]])
    targets = torch.tensor([[1, 0], [0, 1]])
    weight = torch.tensor([3.0, 0.5])
    p = torch.sigmoid(logits)
    manual = -(weight * targets * torch.log(p) + (1 - targets) * torch.log(1 - p)).mean()
    assert torch.isclose(weighted_bce(logits, targets, weight), manual)
    weights = positive_weights(np.array([[1, 0], [0, 0], [0, 0], [1, 0]], bool), cap=5)
    np.testing.assert_allclose(weights, [1.0, 4.0])  # 2 neg / 2 pos; 4 neg / (at least) 1


def test_soft_f1_is_zero_when_perfect_and_one_when_all_wrong():
    targets = torch.tensor([[1, 0, 1], [0, 1, 1]])
    right = (targets * 2 - 1) * 20.0
    assert float(soft_f1(right, targets)) < 1e-3
    assert float(soft_f1(-right, targets)) > 0.999


def test_pr_auc_on_a_hand_worked_case():
    labels = np.array([[1, 0], [0, 0], [1, 0], [0, 0]], bool)
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.1, 0.4]])
    result = pr_auc(labels, scores, codes=("A", "B"))
    # Positives at ranks 1 and 3: AP = (1/1 + 2/3) / 2.
    assert result["A"] == pytest.approx(5 / 6)
    assert math.isnan(result["B"]) and result["mean"] == pytest.approx(5 / 6)


def test_confusion_matrix_on_a_hand_worked_case():
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]], bool)
    scores = np.array([[0.9, 0.2, 0.1],   # 0 predicted, nothing above it: diagonal
                       [0.6, 0.3, 0.8],   # false positive 2 outranks both 0 and 1
                       [0.7, 0.4, 0.9],   # false positives 0 and 2 outrank 1: 1/2 each
                       [0.1, 0.1, 0.3]])  # 2 below its threshold, no false positive: missed
    expected = np.array([[1.0, 0.0, 1.0, 0.0],
                         [0.5, 0.0, 1.5, 0.0],
                         [0.0, 0.0, 0.0, 1.0]])
    matrix = confusion_matrix(labels, scores, 0.5)
    np.testing.assert_allclose(matrix, expected)
    np.testing.assert_allclose(matrix.sum(axis=1), labels.sum(axis=0))


def test_best_thresholds_separate_a_separable_class():
    labels = np.array([[1], [1], [0], [0]], bool)
    scores = np.array([[0.7], [0.6], [0.4], [0.3]])
    assert best_thresholds(labels, scores)[0] == pytest.approx(0.6)


def test_two_phases_freeze_the_body_then_discriminate():
    optim = DescriptorOptimConfig(frozen_steps=5, lr=1e-3, unfrozen_lr=4e-4,
                                  discriminative_ratio=16)
    assert phase_rates(optim, 4) == [1e-3, 0.0, 0.0]
    assert phase_rates(optim, 5) == pytest.approx([4e-4, 1e-4, 2.5e-5])


def test_gradcam_gives_a_normalised_map_and_an_overlay():
    torch.manual_seed(0)
    net = DescriptorNet(arch="resnet18")
    x = torch.as_tensor(resampled_channels(stripes(), (144, 352), "BHN")[None]).float() / 255
    heat = gradcam(net, x, 3)
    assert heat.shape == (144, 352) and 0 <= heat.min() and heat.max() <= 1
    image = overlay((x[0, 0].numpy() * 255).astype(np.uint8), heat)
    assert image.shape == (144, 352, 3) and image.dtype == np.uint8
    assert net.training  # left as it was


def test_predictor_round_trip_and_unknown_codes(tmp_path):
    config = DescriptorNetConfig(arch="resnet18", preprocess="cbn_3", channels="HNB")
    net = DescriptorNet(**config.model_dump()).eval()
    thresholds = np.linspace(0.1, 0.9, len(DESCRIPTOR_CODES))
    save_descriptor_model(str(tmp_path / "m"), net, config, thresholds, {"step": 3})
    predictor = load_descriptor_model(str(tmp_path / "m"))
    assert predictor.config.channels == "HNB" and predictor.info == {"step": 3}
    assert predictor.thresholds["D14"] == pytest.approx(0.9)
    images = [stripes(), np.stack([stripes(100, 200)] * 3, axis=-1)]  # any size, grey or RGB
    scores = predictor.predict(images)
    assert len(scores) == 2 and list(scores[0]) == list(DESCRIPTOR_CODES)
    assert all(0 <= v <= 1 for v in scores[0].values())
    with torch.no_grad():
        direct = torch.sigmoid(net(torch.as_tensor(predictor.inputs(images[:1])).float() / 255))
    assert scores[0]["D01"] == pytest.approx(float(direct[0, 0]), abs=1e-5)
    assert predictor.predict(images, codes=["D09"])[1].keys() == {"D09"}
    assert len(predictor.labels(images)) == 2
    assert predictor.explain(stripes(), "D10").shape == (144, 352, 3)
    with pytest.raises(UnknownLabelError, match="'D99'"):
        predictor.predict(images, codes=["D01", "D99"])
    with pytest.raises(ShoematchError, match="'D15'"):
        predictor.explain(stripes(), "D15")
    assert check_descriptor_codes(["D01-01"]) == ["D01-01"]
    with pytest.raises(ShoematchError, match="no such directory"):
        load_descriptor_model(str(tmp_path / "missing"))
