"""The CriSp encoder (docs/decisions.md, "Models and training"): one network embeds both crime-scene
prints and tread depth maps into spatial feature maps that are compared cell by cell.

Input: 2 channels — the print in channel 0, the depth map in channel 1, the other channel zero
(`shoematch.retrieval.inputs.encoder_input` builds it). ResNet body with a stride-2 stem, no
max-pool and four stride-2 stages (total stride 32), then 1x1 conv C→C, ReLU, 1x1 conv
C→embed_dim. A 192x384 canvas gives a [128, 6, 12] map for ResNet-50.

Attribute names follow the released CriSp code (`encoder`, `head`), so converting one of its
checkpoints needs only its block names (`shortcut` → `downsample`) renamed.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from shoematch.config import StrictModel
from shoematch.models.bodies import PRETRAINED_HELP, Backbone, build_body
from shoematch.models.efficientnet_lite import EfficientNetBody
from shoematch.models.resnet import ResNet
from shoematch.retrieval.inputs import IN_CHANNELS

Pooling = Literal["spatial", "global"]


class CrispEncoderConfig(StrictModel):
    """Constructor arguments of `CrispEncoder` (field names match its keyword arguments)."""

    arch: Backbone = Field("resnet50", description="body; the paper uses resnet50")
    embed_dim: int = Field(128, ge=1, description="channels of each spatial cell's feature")
    pooling: Pooling = Field(
        "spatial", description="spatial: [embed_dim, H/32, W/32] map; global: average-pooled "
                               "to 1x1 (the paper's ablation baseline)")
    pretrained: str | None = Field(None, description=PRETRAINED_HELP)


class CrispEncoder(nn.Module):
    """x [B, 2, H, W] → features [B, embed_dim, H/32, W/32] ([B, embed_dim, 1, 1] if global)."""

    def __init__(self, arch: Backbone = "resnet50", embed_dim: int = 128,
                 pooling: Pooling = "spatial", pretrained: str | None = None) -> None:
        super().__init__()
        if pooling not in ("spatial", "global"):
            raise ValueError(f"pooling must be 'spatial' or 'global', got {pooling!r}")
        self.encoder = _body(arch, pretrained)
        channels = self.encoder.out_channels
        self.head = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, embed_dim, kernel_size=1),
        )
        self.arch = arch
        self.embed_dim = embed_dim
        self.pooling: Pooling = pooling
        self.stride = self.encoder.stride  # 32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != IN_CHANNELS:
            raise ValueError(f"CrispEncoder expects [B, {IN_CHANNELS}, H, W] (see encoder_input), "
                             f"got {tuple(x.shape)}")
        features = self.head(self.encoder.forward_features(x))
        if self.pooling == "global":
            features = features.mean(dim=(2, 3), keepdim=True)
        return features


def _body(arch: Backbone, pretrained: str | None) -> ResNet | EfficientNetBody:
    """The stride-32 body on 2-channel input (one channel carries an image at a time)."""
    return build_body(arch, pretrained, in_channels=IN_CHANNELS, stem="grey", stem_stride=2,
                      stem_maxpool=False, stage_strides=(2, 2, 2, 2))
