"""The descriptor training loop, Ray-free: the Ray Train job runs it on each DDP worker and the
sweep runs it in single-process trials.

Two phases with AdamW: while the body is frozen its learning rate is 0 (weight decay is scaled
by the rate, so the weights stay put) — the preprocessing layer in front still gets gradients
through the body, and DDP keeps one set of parameters throughout. Then discriminative rates:
head `unfrozen_lr`, the upper half of the body a √ratio lower, its lower half `ratio` lower.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from shoematch.data.schema import DESCRIPTOR_CODES
from shoematch.descriptors.config import DescriptorOptimConfig
from shoematch.descriptors.data import DescriptorData
from shoematch.descriptors.losses import descriptor_loss
from shoematch.descriptors.metrics import confusion_matrix, pr_auc
from shoematch.descriptors.model import DescriptorNet
from shoematch.errors import DatasetError
from shoematch.training.job import StepHook


def make_optimizer(model: DescriptorNet, optim: DescriptorOptimConfig) -> torch.optim.AdamW:
    groups = [{"params": params, "lr": 0.0} for params in model.param_groups()]
    optimizer = torch.optim.AdamW(groups, lr=optim.lr, weight_decay=optim.weight_decay)
    set_phase(optimizer, optim, 0)
    return optimizer


def phase_rates(optim: DescriptorOptimConfig, step: int) -> list[float]:
    """[head + preprocessing, upper body, lower body] learning rates at `step`."""
    if step < optim.frozen_steps:
        return [optim.lr, 0.0, 0.0]
    ratio = optim.discriminative_ratio
    return [optim.unfrozen_lr, optim.unfrozen_lr / math.sqrt(ratio),
            optim.unfrozen_lr / ratio]


def set_phase(optimizer: torch.optim.Optimizer, optim: DescriptorOptimConfig, step: int) -> None:
    for group, rate in zip(optimizer.param_groups, phase_rates(optim, step), strict=True):
        group["lr"] = rate


def to_float(inputs: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 channels → float in [0, 1] (the network normalises)."""
    return torch.as_tensor(inputs).float() / 255.0


def sample_batch(data: DescriptorData, size: int, seed: int, rank: int, step: int,
                 flips: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch drawn from (seed, rank, step) alone, so a resumed run draws what it would have."""
    rng = np.random.default_rng([seed, rank, step])
    rows = rng.choice(len(data), size=size, replace=len(data) < size)
    x = to_float(data.inputs[rows])
    if flips:
        horizontal, vertical = rng.random(size) < 0.5, rng.random(size) < 0.5
        x[horizontal] = x[horizontal].flip(-1)
        x[vertical] = x[vertical].flip(-2)
    return x, torch.as_tensor(data.labels[rows])


def train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, data: DescriptorData,
                optim: DescriptorOptimConfig, pos_weight: torch.Tensor, device: torch.device,
                start: int = 0, rank: int = 0, on_step: StepHook | None = None) -> None:
    """Steps `start`..`optim.steps`; `on_step(step, {"loss": …}, images)` after each."""
    if len(data) == 0:
        raise DatasetError(f"worker {rank}: no labelled training records in its share "
                           "(fewer training records than workers, or none labelled)")
    model.train()
    pos_weight = pos_weight.to(device)
    for step in range(start, optim.steps):
        set_phase(optimizer, optim, step)
        x, y = sample_batch(data, optim.batch_size, optim.seed, rank, step, optim.flips)
        loss = descriptor_loss(optim.loss, model(x.to(device)), y.to(device), pos_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if on_step is not None:
            on_step(step + 1, {"loss": float(loss.detach())}, len(x))


@torch.no_grad()
def predict_scores(model: DescriptorNet, inputs: np.ndarray, device: torch.device | None = None,
                   batch_size: int = 32) -> np.ndarray:
    """Sigmoid scores [n, 17] for uint8 inputs [n, 3, h, w]."""
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    out = [torch.sigmoid(model(to_float(inputs[i:i + batch_size]).to(device))).cpu()
           for i in range(0, len(inputs), batch_size)]
    model.train(was_training)
    if not out:
        return np.zeros((0, len(DESCRIPTOR_CODES)), dtype=np.float32)
    return torch.cat(out).numpy()


def evaluate(model: DescriptorNet, data: DescriptorData, thresholds: np.ndarray) -> dict:
    """PR-AUC per descriptor and mean, and the confusion matrix, on `data`."""
    scores = predict_scores(model, data.inputs)
    return {"records": len(data), "pr_auc": pr_auc(data.labels, scores),
            "confusion": confusion_matrix(data.labels, scores, thresholds), "scores": scores}
