"""Fine-tuning the dense matcher's backbone on references only, for MCNCC.

Why this objective: the matcher scores a probe by the channel-averaged NCC of feature maps at the
best alignment. Training therefore cuts a window out of a reference, turns it into a crime-scene
view (the project's occlusion / erasure / noise augmentation), and asks that its NCC with the
same window of the clean reference beat its NCC with the windows of the other references in the
batch (InfoNCE over the batch, both directions). Each reference is its own class; no probe is
ever seen. Optional per-channel weights learn which channels to trust (MCNCC's fine-tuned
variant); BatchNorm statistics stay frozen (small batches of crops would corrupt them).

The loop is Ray-free (`train_steps(..., on_step)`); `MatcherJob` (`shoematch/dense/job.py`) runs
it under the shared Ray Train driver.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from shoematch.augment.config import AugConfig
from shoematch.augment.crime_scene import augment_prints
from shoematch.config import StrictModel
from shoematch.dense.matcher import DenseConfig, feature_net
from shoematch.training.job import StepHook

EPS = 1e-6


class FinetuneConfig(StrictModel):
    """What is trained and how (steps, batch, window, loss temperature)."""

    steps: int = Field(300, ge=1)
    batch: int = Field(16, ge=2, description="references per step (each its own class)")
    lr: float = Field(1e-4, gt=0)
    window: tuple[int, int] = Field((96, 128), description="crop (h, w) px at matching scale")
    min_ink: float = Field(0.05, ge=0, le=1, description="least ink share of a window")
    temperature: float = Field(0.05, gt=0)
    channel_weights: bool = Field(True, description="learn per-channel weights of the mean")
    seed: int = 0
    aug: AugConfig = Field(default_factory=AugConfig)


class TrainableMatcher(nn.Module):
    """The matcher's feature network plus (optionally) learned channel weights."""

    def __init__(self, dense: DenseConfig, channel_weights: bool) -> None:
        super().__init__()
        self.features = feature_net(dense)
        channels = self.features.out_channels
        self.channel_logits = nn.Parameter(torch.zeros(channels),
                                           requires_grad=channel_weights)

    def channel_weights(self) -> torch.Tensor:
        """Positive weights with mean 1 (all ones before training)."""
        weights = F.softplus(self.channel_logits) / F.softplus(torch.zeros(()))
        return weights / weights.mean()

    def train(self, mode: bool = True) -> TrainableMatcher:
        super().train(mode)
        for module in self.modules():  # frozen BatchNorm statistics
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Feature maps and channel weights (both inside forward, so DDP syncs both)."""
        return self.features(images), self.channel_weights()

    def export(self) -> dict[str, dict[str, Any] | torch.Tensor]:
        """What the matcher loads: the body's state_dict and the channel weights."""
        body = getattr(self.features, "body", self.features)
        return {"body": body.state_dict(), "channel_weights": self.channel_weights().detach()}


def sample_windows(prints: torch.Tensor, config: FinetuneConfig, generator: torch.Generator
                   ) -> torch.Tensor:
    """[B, 1, h, w] clean crops (0..1, 1 = ink) of `config.batch` distinct references, each with
    at least `min_ink` of its pixels inked (the best of a few tries otherwise)."""
    count, _, height, width = prints.shape
    crop_h, crop_w = min(config.window[0], height), min(config.window[1], width)
    picks = torch.randperm(count, generator=generator)[: config.batch]
    crops = []
    for index in picks.tolist():
        best: torch.Tensor | None = None
        best_ink = -1.0
        for _ in range(8):
            y = int(torch.randint(0, height - crop_h + 1, (1,), generator=generator))
            x = int(torch.randint(0, width - crop_w + 1, (1,), generator=generator))
            crop = prints[index, :, y:y + crop_h, x:x + crop_w]
            ink = float((crop > 0.25).float().mean())
            if ink > best_ink:
                best, best_ink = crop, ink
            if ink >= config.min_ink:
                break
        assert best is not None  # the first try always beats an ink share of -1
        crops.append(best)
    return torch.stack(crops)


def ncc_matrix(a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """[B, B] weighted channel mean of NCC between every a_i and b_j ([B, C, h, w], aligned)."""

    def standardise(x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(dim=(2, 3), keepdim=True)
        return centred / torch.sqrt(centred.pow(2).sum(dim=(2, 3), keepdim=True) + EPS)

    per_channel = torch.einsum("ichw,jchw->ijc", standardise(a), standardise(b))
    return (per_channel * weights).sum(-1) / weights.sum()


def info_nce(scores: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric cross-entropy with the matching pairs on the diagonal."""
    target = torch.arange(scores.shape[0], device=scores.device)
    logits = scores / temperature
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, prints: torch.Tensor,
                config: FinetuneConfig, start: int, seed: int, on_step: StepHook) -> None:
    """Steps `start+1 .. config.steps` on `prints` [N, 1, H, W] (0..1, 1 = ink, on the model's
    device, already at the matching scale). `model` may be DDP-wrapped."""
    device = prints.device
    generator = torch.Generator().manual_seed(seed + start)
    aug_generator = torch.Generator(device=device).manual_seed(seed + start)
    model.train()
    for step in range(start + 1, config.steps + 1):
        clean = sample_windows(prints, config, generator).to(device)
        views = augment_prints(clean, config.aug, aug_generator)
        features, weights = model(torch.cat([views, clean]) * 255.0)
        view_maps, clean_maps = features.split(clean.shape[0])
        loss = info_nce(ncc_matrix(view_maps, clean_maps, weights), config.temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        on_step(step, {"loss": float(loss.detach())}, 2 * clean.shape[0])
