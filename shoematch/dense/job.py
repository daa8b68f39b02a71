"""The dense matcher's `TrainJob`: fine-tuning on references only (`shoematch.dense.finetune`);
the registered model is the weights file the matcher loads, also copied to `export` if set."""

from __future__ import annotations

import os
import shutil
from typing import Any, cast

import torch
from torch import nn

from shoematch.data.dataset import open_dataset
from shoematch.data.schema import REFERENCE_KIND
from shoematch.dense.finetune import TrainableMatcher, train_steps
from shoematch.dense.matcher import require_scale
from shoematch.dense.references import reference_prints
from shoematch.dense.train_config import MatcherTrainConfig
from shoematch.training.job import Batches, StepHook, TrainJob

WEIGHTS = "matcher.pt"


class MatcherJob(TrainJob):
    name = "train_matcher"
    model_dir = "dense_matcher"
    config: MatcherTrainConfig

    @property
    def steps(self) -> int:
        return self.config.finetune.steps

    @property
    def seed(self) -> int:
        return self.config.finetune.seed

    def check_inputs(self) -> dict[str, Any]:
        refdb = open_dataset(self.config.data.refdb, REFERENCE_KIND)
        require_scale(refdb.manifest.params.get("px_per_cm"), self.config.data.refdb)
        return {"refdb_digest": refdb.manifest.digest()}

    def build_model(self) -> nn.Module:
        return TrainableMatcher(self.config.dense, self.config.finetune.channel_weights)

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam([p for p in model.parameters() if p.requires_grad],
                                lr=self.config.finetune.lr)

    def train_steps(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                    device: torch.device, rank: int, world: int, start: int, on_step: StepHook,
                    batches: Batches | None) -> None:
        config = self.config
        prints = reference_prints(open_dataset(config.data.refdb), config.dense.px_per_cm,
                                  rank, world).to(device)
        train_steps(model, optimizer, prints, config.finetune, start,
                    config.finetune.seed + 1000 * rank, on_step)

    def save_model(self, directory: str, model: nn.Module, info: dict[str, Any]) -> None:
        os.makedirs(directory, exist_ok=True)
        matcher = cast(TrainableMatcher, getattr(model, "module", model))  # DDP unwrapped
        torch.save(matcher.export(), os.path.join(directory, WEIGHTS))

    def finish(self, client: Any, run_id: str, model_dir: str, scratch: str
               ) -> tuple[str, dict[str, Any]]:
        exported = None
        if self.config.export:
            os.makedirs(os.path.dirname(self.config.export) or ".", exist_ok=True)
            exported = shutil.copy(os.path.join(model_dir, WEIGHTS), self.config.export)
        return model_dir, {"weights": exported}
