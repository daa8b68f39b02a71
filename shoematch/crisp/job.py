"""CriSp's `TrainJob`: what the shared driver needs to train, validate and register the encoder."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from shoematch.crisp.config import CrispTrainConfig
from shoematch.crisp.data import check_crisp_data
from shoematch.crisp.model import CrispEncoder
from shoematch.crisp.store import load_encoder, save_encoder
from shoematch.crisp.training import make_optimizer, train_steps
from shoematch.data.dataset import open_dataset
from shoematch.evaluation.evaluation import evaluate_encoder
from shoematch.training.job import Batches, StepHook, TrainJob


class CrispJob(TrainJob):
    name = "train_crisp"
    model_dir = "encoder"
    config: CrispTrainConfig

    def check_inputs(self) -> dict[str, Any]:
        return check_crisp_data(self.config)

    def build_model(self) -> nn.Module:
        return CrispEncoder(**self.config.model.model_dump())

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return make_optimizer(self.config, model.parameters())

    def train_steps(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                    device: torch.device, rank: int, world: int, start: int, on_step: StepHook,
                    batches: Batches | None) -> None:
        assert batches is not None, "CriSp trains on the streamed dataset of shoematch.ray.crisp"
        train_steps(model, optimizer, batches, self.config, start, rank, on_step)

    def save_model(self, directory: str, model: nn.Module, info: dict[str, Any]) -> None:
        save_encoder(directory, model, self.config.model, info)

    def validate(self, model: nn.Module, device: torch.device, step: int) -> dict[str, float]:
        """hit@K / mAP@K on the validation queries at the end (and every `val_every` steps)."""
        config = self.config
        every = config.schedule.val_every
        if not config.data.val_queries or not (step == config.optim.steps
                                               or (every and step % every == 0)):
            return {}
        k = config.schedule.val_k
        report = evaluate_encoder(model, open_dataset(config.data.refdb),
                                  open_dataset(config.data.val_queries), device,
                                  split=config.data.val_split, k=k,
                                  mask_queries=config.model.pooling == "spatial")["overall"]
        model.train()
        return {f"val_hit_at_{k}": report[f"hit@{k}"], f"val_map_at_{k}": report[f"mAP@{k}"]}

    def finish(self, client: Any, run_id: str, model_dir: str, scratch: str
               ) -> tuple[str, dict[str, Any]]:
        """Validation ran in training; only check the encoder loads before registering it."""
        load_encoder(model_dir)  # fail here, not at serving time, if it does not load
        return model_dir, {}
