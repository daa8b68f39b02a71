"""ResNet-18/34/50 written from scratch (torchvision is not available here), with the knobs the
shoematch models need: input channels, stem stride, optional stem max-pool and per-stage strides.

Module and parameter names follow torchvision exactly (`conv1`, `bn1`, `layer1.0.conv1`,
`layer1.0.downsample.0`, ..., `fc`), so an ImageNet state_dict saved by torchvision loads with
`load_torchvision_weights` — the only way to get pretrained weights without torchvision.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Literal

import torch
from torch import nn

from shoematch.errors import ShoematchError

Arch = Literal["resnet18", "resnet34", "resnet50"]


class PretrainedWeightsNotFound(ShoematchError, FileNotFoundError):
    """A pretrained weights file is missing (a FileNotFoundError that jobs report in one line)."""


class WeightsMismatchError(ShoematchError, ValueError):
    """A weights file does not fit the model (other architecture, unexpected or missing keys)."""


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs + identity (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 → 3x3 (carries the stride, as torchvision's "v1.5") → 1x1 ×4, + identity (ResNet-50)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


Block = type[BasicBlock] | type[Bottleneck]

_SPECS: dict[str, tuple[Block, tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


class ResNet(nn.Module):
    """A torchvision-compatible ResNet.

    Defaults give the stock ImageNet network (stride 2 stem, max-pool, stages 1/2/2/2). With
    `num_classes=None` there is no `fc` (a feature body); `out_channels` is the channel count of
    the last stage and `stride` the total downsampling of `forward_features`.
    """

    def __init__(self, block: Block, layers: tuple[int, int, int, int], in_channels: int = 3,
                 stem_stride: int = 2, stem_maxpool: bool = True,
                 stage_strides: tuple[int, int, int, int] = (1, 2, 2, 2),
                 num_classes: int | None = None) -> None:
        super().__init__()
        if len(layers) != 4 or len(stage_strides) != 4:
            raise ValueError("a ResNet has four stages: layers and stage_strides need 4 entries")
        if in_channels < 1 or stem_stride < 1 or min(stage_strides) < 1:
            raise ValueError("in_channels and all strides must be >= 1")
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=stem_stride, padding=3,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        # Identity has no parameters, so the state_dict keys are the same either way.
        self.maxpool: nn.Module = (nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
                                   if stem_maxpool else nn.Identity())
        self.layer1 = self._make_layer(block, 64, layers[0], stage_strides[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stage_strides[1])
        self.layer3 = self._make_layer(block, 256, layers[2], stage_strides[2])
        self.layer4 = self._make_layer(block, 512, layers[3], stage_strides[3])
        self.in_channels = in_channels
        self.out_channels = 512 * block.expansion
        self.stride = stem_stride * (2 if stem_maxpool else 1) * math.prod(stage_strides)
        self.avgpool: nn.Module | None = None
        self.fc: nn.Linear | None = None
        if num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(self.out_channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)

    def _make_layer(self, block: Block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers: list[nn.Module] = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's map [B, out_channels, H/stride, W/stride] (before any pooling)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits when built with `num_classes`, else the feature map."""
        features = self.forward_features(x)
        if self.fc is None or self.avgpool is None:
            return features
        return self.fc(torch.flatten(self.avgpool(features), 1))


def build_resnet(arch: Arch, *, in_channels: int = 3, stem_stride: int = 2,
                 stem_maxpool: bool = True,
                 stage_strides: tuple[int, int, int, int] = (1, 2, 2, 2),
                 num_classes: int | None = None) -> ResNet:
    """A ResNet body (no `fc` unless `num_classes` is given) of the named depth."""
    if arch not in _SPECS:
        raise ValueError(f"unknown arch {arch!r}; expected one of {sorted(_SPECS)}")
    block, layers = _SPECS[arch]
    return ResNet(block, layers, in_channels=in_channels, stem_stride=stem_stride,
                  stem_maxpool=stem_maxpool, stage_strides=stage_strides,
                  num_classes=num_classes)


def adapt_stem_weight(weight: torch.Tensor, in_channels: int,
                      active_channels: int = 1) -> torch.Tensor:
    """Turn an RGB stem kernel [64, 3, k, k] into one for `in_channels` inputs.

    Every new channel gets the mean RGB kernel scaled by 3 / `active_channels`: when
    `active_channels` of the inputs carry a gray image (CriSp fills exactly one of its two
    channels, hence the default 1), the stem's response equals the RGB network's response to that
    gray image replicated over R, G and B — activations keep their ImageNet magnitude.
    """
    if weight.shape[1] == in_channels:
        return weight
    if weight.shape[1] != 3:
        raise WeightsMismatchError(f"conv1.weight has {weight.shape[1]} input channels; "
                                   f"cannot adapt to {in_channels} (expected 3 or {in_channels})")
    if not 1 <= active_channels <= in_channels:
        raise ValueError(f"active_channels must be in 1..{in_channels}, got {active_channels}")
    gray = weight.mean(dim=1, keepdim=True) * (3.0 / active_channels)
    return gray.repeat(1, in_channels, 1, 1).contiguous()


def _identity_downsample_(downsample: nn.Sequential) -> None:
    """Make a square 1x1 conv + BN shortcut an identity map (subsampled by its stride)."""
    conv, norm = downsample[0], downsample[1]
    assert isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(conv.out_channels).view_as(conv.weight))
    norm.reset_parameters()  # weight 1, bias 0, running mean 0 / var 1


def load_torchvision_weights(model: ResNet, path: str, in_channels: int, *,
                             active_channels: int = 1) -> list[str]:
    """Load a torchvision ResNet state_dict file into a ResNet body.

    `fc.*` is dropped, `conv1.weight` is adapted from 3 to `in_channels` inputs (see
    `adapt_stem_weight`); every other key must be present with the same shape. Two exceptions:
    `num_batches_tracked` may be missing (old torchvision files predate it), and a whole
    `layerN.0.downsample` that the stock network lacks — a BasicBlock stage made strided (CriSp's
    ResNet-18/34 `layer1`) — is initialised as an identity 1x1 conv + BN, i.e. the stock identity
    shortcut subsampled by the new stride. Returns the names of those initialised modules.
    Weights are loaded with `weights_only=True`, never unpickled as code.
    """
    if not os.path.isfile(path):
        raise PretrainedWeightsNotFound(f"pretrained weights file {path} does not exist")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or non-tensor files
        raise WeightsMismatchError(f"{path}: not a loadable torch state_dict ({exc})") from exc
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor)
                                                  for v in loaded.values()):
        raise WeightsMismatchError(f"{path}: expected a state_dict (name -> tensor), "
                                   f"got {type(loaded).__name__}")
    state = {k: v for k, v in loaded.items() if not k.startswith("fc.")}
    if "conv1.weight" in state:
        state["conv1.weight"] = adapt_stem_weight(state["conv1.weight"], in_channels,
                                                  active_channels)
    expected = model.state_dict()
    for key, value in state.items():
        if key not in expected:
            raise WeightsMismatchError(f"{path}: unexpected key {key!r} {tuple(value.shape)} "
                                       "(not in the model: a different architecture?)")
        if value.shape != expected[key].shape:
            raise WeightsMismatchError(
                f"{path}: key {key!r} has shape {tuple(value.shape)} in the file but "
                f"{tuple(expected[key].shape)} in the model (a different architecture?)")
    initialised: list[str] = []
    for name, module in model.named_modules():
        if (not name.endswith(".downsample") or not isinstance(module, nn.Sequential)
                or any(k.startswith(name + ".") for k in state)):
            continue
        conv = module[0]
        if conv.in_channels != conv.out_channels:  # the stock network has this one too
            continue
        _identity_downsample_(module)
        state.update({f"{name}.{k}": v for k, v in module.state_dict().items()})
        initialised.append(name)
    for key, value in expected.items():
        if key not in state:
            if key.endswith("num_batches_tracked"):
                state[key] = value.clone()
                continue
            raise WeightsMismatchError(f"{path}: missing key {key!r} {tuple(value.shape)} "
                                       "(a different architecture?)")
    model.load_state_dict(state, strict=True)
    return initialised
