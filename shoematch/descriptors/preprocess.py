"""Learnable preprocessing layers placed before the ResNet body (Budka et al.): each maps the
three resampled channels to three channels, so the body's stem stays the stock RGB one and
ImageNet weights still load.

- none:  identity;
- cbn_1: 1×1 conv + BatchNorm (a learned per-pixel mix of the filters);
- cbn_3: 3×3 conv + BatchNorm (mixes neighbourhoods too);
- inc:   inception-like — parallel 1×1, 3×3 and 5×5 conv branches, concatenated, 1×1 back to 3;
- inc_d: dense inception-like — as inc, but the input is concatenated with the branches.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Preprocess = Literal["none", "cbn_1", "cbn_3", "inc", "inc_d"]
PREPROCESS: tuple[str, ...] = ("none", "cbn_1", "cbn_3", "inc", "inc_d")
CHANNELS = 3
_BRANCH = 8  # channels per inception branch


def _conv_bn(in_ch: int, out_ch: int, kernel: int, relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False),
                               nn.BatchNorm2d(out_ch)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Inception(nn.Module):
    """1×1, 3×3 and 5×5 branches side by side; `dense` also passes the input through."""

    def __init__(self, dense: bool) -> None:
        super().__init__()
        self.branches = nn.ModuleList([_conv_bn(CHANNELS, _BRANCH, k, relu=True)
                                       for k in (1, 3, 5)])
        self.dense = dense
        merged = 3 * _BRANCH + (CHANNELS if dense else 0)
        self.merge = _conv_bn(merged, CHANNELS, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [branch(x) for branch in self.branches]
        if self.dense:
            parts.append(x)
        return self.merge(torch.cat(parts, dim=1))


def build_preprocess(kind: str) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    if kind == "cbn_1":
        return _conv_bn(CHANNELS, CHANNELS, 1, relu=False)
    if kind == "cbn_3":
        return _conv_bn(CHANNELS, CHANNELS, 3, relu=False)
    if kind in ("inc", "inc_d"):
        return Inception(dense=kind == "inc_d")
    raise ValueError(f"unknown preprocessing layer {kind!r}; expected one of {PREPROCESS}")
