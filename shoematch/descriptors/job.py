"""The descriptor classifier's `TrainJob`: two-phase training on each worker's share of the
prints, then thresholds on held-out training patterns, PR-AUC, the confusion matrix and Grad-CAM
examples on the evaluation split, logged to the MLflow run."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
from torch import nn

from shoematch.data.dataset import open_dataset
from shoematch.data.schema import DESCRIPTOR_CODES
from shoematch.descriptors.config import DescriptorTrainConfig
from shoematch.descriptors.data import check_descriptor_data, load_part
from shoematch.descriptors.model import DescriptorNet
from shoematch.descriptors.predict import load_descriptor_model, save_descriptor_model
from shoematch.descriptors.report import (
    DEFAULT_THRESHOLD,
    confusion_csv,
    gradcam_examples,
    pr_auc_table,
    score_model,
)
from shoematch.descriptors.training import make_optimizer, train_steps
from shoematch.training.job import Batches, StepHook, TrainJob


class DescriptorJob(TrainJob):
    name = "train_descriptors"
    model_dir = "descriptor_model"
    config: DescriptorTrainConfig
    pos_weight: list[float]  # class weights from every training label (set by check_inputs)

    def check_inputs(self) -> dict[str, Any]:
        provenance = check_descriptor_data(self.config.data, self.config.ray.num_workers)
        self.pos_weight = provenance.pop("pos_weight")
        return provenance

    def build_model(self) -> nn.Module:
        return DescriptorNet(**self.config.model.model_dump())

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        # The driver passes build_model's own net here, before any DDP wrapper.
        return make_optimizer(cast(DescriptorNet, model), self.config.optim)

    def train_steps(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                    device: torch.device, rank: int, world: int, start: int, on_step: StepHook,
                    batches: Batches | None) -> None:
        config = self.config
        data = load_part(open_dataset(config.data.refdb), config.data, "train",
                         config.model.input_size, config.model.channels, rank, world)
        pos_weight = torch.as_tensor(np.asarray(self.pos_weight, dtype=np.float32))
        train_steps(model, optimizer, data, config.optim, pos_weight, device, start, rank,
                    on_step)

    def save_model(self, directory: str, model: nn.Module, info: dict[str, Any]) -> None:
        save_descriptor_model(directory, model, self.config.model,
                              [DEFAULT_THRESHOLD] * len(DESCRIPTOR_CODES), info)

    def finish(self, client: Any, run_id: str, model_dir: str, scratch: str
               ) -> tuple[str, dict[str, Any]]:
        """Thresholds on val, PR-AUC / confusion / Grad-CAM on eval, all logged to the run; the
        model is saved again with its thresholds."""
        config = self.config
        predictor = load_descriptor_model(model_dir)
        refdb = open_dataset(config.data.refdb)
        size, channels = config.model.input_size, config.model.channels
        val = load_part(refdb, config.data, "val", size, channels)
        test = load_part(refdb, config.data, "eval", size, channels)
        scored = score_model(predictor.model, val, test)
        for code, value in scored["pr_auc"].items():
            if value == value:  # NaN: no positives in the evaluation split
                client.log_metric(run_id, f"pr_auc_{code}", value)
        client.log_text(run_id, pr_auc_table({config.ray.run_name: scored["pr_auc"]}),
                        "evaluation/pr_auc.md")
        client.log_text(run_id, confusion_csv(scored["confusion"]), "evaluation/confusion.csv")
        for name, image in gradcam_examples(predictor.model, test, scored["scores"],
                                            config.schedule.gradcam_descriptors):
            client.log_image(run_id, image, f"evaluation/{name}")
        save_descriptor_model(scratch, predictor.model, config.model, scored["thresholds"],
                              {**predictor.info, "pr_auc_mean": scored["pr_auc"]["mean"]})
        load_descriptor_model(scratch)  # fail here, not at serving time, if it does not load
        return scratch, scored["pr_auc"]
