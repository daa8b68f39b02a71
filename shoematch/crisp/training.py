"""The CriSp training loop, Ray-free: the optimizer and learning-rate warm-up, one step's loss,
and `train_steps` over passes of paired batches (the Ray Train worker and the tests run it)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from shoematch.crisp.config import CrispTrainConfig, MaskingConfig
from shoematch.crisp.losses import crisp_contrastive_loss, random_rectangle_mask
from shoematch.errors import DatasetError
from shoematch.retrieval.inputs import encoder_input
from shoematch.retrieval.scoring import query_cell_mask
from shoematch.training.job import Batches, StepHook

TEMPERATURE = 0.07


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 [n,1,H,W] → float in [0, 1]."""
    return images.float() / 255.0


def step_inputs(batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor,
                                                            torch.Tensor, int]:
    """Stack a paired batch into encoder inputs, labels and print visibility masks.

    Rows are [prints a, prints b, depths a, depths b (where present)]; returns
    (inputs, labels, print_masks, number of print rows).
    """
    prints = torch.cat([to_unit(batch["print_a"]), to_unit(batch["print_b"])])
    masks = torch.cat([batch["mask_a"], batch["mask_b"]]) > 127
    labels = torch.cat([batch["label"], batch["label"]])
    has_depth = torch.cat([batch["has_depth_a"], batch["has_depth_b"]]).bool()
    depths = torch.cat([to_unit(batch["depth_a"]), to_unit(batch["depth_b"])])[has_depth]
    inputs = torch.cat([encoder_input(prints=prints), encoder_input(depths=depths)])
    labels = torch.cat([labels, labels[has_depth]])
    return inputs, labels, masks, prints.shape[0]


def _draw(generator: torch.Generator) -> float:
    """A uniform [0, 1) draw from the step's generator (keeps masking reproducible)."""
    return float(torch.rand((), generator=generator, device=generator.device).item())


def crisp_loss(model: torch.nn.Module, batch: Mapping[str, torch.Tensor], masking: MaskingConfig,
               generator: torch.Generator) -> tuple[torch.Tensor, int]:
    """Supervised contrastive loss (τ = 0.07) over masked spatial features; returns
    (loss, images encoded)."""
    inputs, labels, print_masks, n_prints = step_inputs(batch)
    features = model(inputs)
    grid = tuple(features.shape[-2:])
    cells = None
    if grid != (1, 1):
        cells = torch.ones((features.shape[0], *grid), dtype=torch.bool, device=features.device)
        if masking.feature_masking and (masking.rect_probability >= 1
                                        or _draw(generator) < masking.rect_probability):
            rect = random_rectangle_mask(grid, generator, min_frac=masking.min_rect_fraction)
            cells &= rect.to(features.device)
        if masking.query_masking:
            cells[:n_prints] &= query_cell_mask(print_masks, grid)
    return crisp_contrastive_loss(features, labels, cells, temperature=TEMPERATURE), len(inputs)


def make_optimizer(config: CrispTrainConfig, params) -> torch.optim.Optimizer:
    optim = config.optim
    if optim.optimizer == "sgd":
        return torch.optim.SGD(params, lr=optim.lr, momentum=0.9, weight_decay=optim.weight_decay)
    cls = torch.optim.AdamW if optim.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=optim.lr, weight_decay=optim.weight_decay)


def learning_rate(config: CrispTrainConfig, step: int) -> float:
    warmup = config.optim.warmup_steps
    return config.optim.lr * (min(1.0, (step + 1) / warmup) if warmup else 1.0)


def train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Batches,
                config: CrispTrainConfig, start: int = 0, rank: int = 0,
                on_step: StepHook | None = None) -> None:
    """Steps `start`..`optim.steps` over as many passes of `batches` as it takes;
    `on_step(step, {"loss": …}, images)` after each."""
    generator = torch.Generator().manual_seed(config.optim.seed * 100003 + rank * 997 + start)
    step, steps = start, config.optim.steps
    model.train()
    while step < steps:
        pass_start = step
        for batch in batches():
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, step)
            loss, images = crisp_loss(model, batch, config.masking, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if on_step is not None:
                on_step(step, {"loss": float(loss.detach())}, images)
            if step >= steps:
                break
        if step == pass_start:
            raise DatasetError(f"{config.data.refdb}: a pass gave worker {rank} no full batch "
                               f"of {config.optim.batch_models} classes")
