"""The attribute model's `TrainJob`: every worker trains the shared backbone and its heads on
all training shoes; afterwards street → catalogue top-k and per-attribute accuracy on the
evaluation split are logged to the MLflow run."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from shoematch.attributes.config import AttributeTrainConfig
from shoematch.attributes.data import check_attribute_data
from shoematch.attributes.predict import build_model, load_attribute_model, save_attribute_model
from shoematch.attributes.report import score_model, training_shoes
from shoematch.attributes.training import train_steps
from shoematch.data.dataset import open_dataset
from shoematch.training.job import Batches, StepHook, TrainJob


class AttributeJob(TrainJob):
    name = "train_attributes"
    model_dir = "attribute_model"
    config: AttributeTrainConfig
    vocabulary: dict[str, list[str]]  # attribute → values of the training split (check_inputs)

    def check_inputs(self) -> dict[str, Any]:
        provenance = check_attribute_data(self.config.data, self.config.optim.models_per_batch)
        self.vocabulary = provenance.pop("vocabulary")
        return {**provenance, "attributes": ",".join(self.vocabulary)}

    def build_model(self) -> nn.Module:
        return build_model(self.config.model, self.vocabulary)

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.AdamW(model.parameters(), lr=self.config.optim.lr,
                                 weight_decay=self.config.optim.weight_decay)

    def train_steps(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                    device: torch.device, rank: int, world: int, start: int, on_step: StepHook,
                    batches: Batches | None) -> None:
        data = training_shoes(open_dataset(self.config.data.refdb), self.config, self.vocabulary)
        train_steps(model, optimizer, data, self.config, device, start, rank, on_step)

    def save_model(self, directory: str, model: nn.Module, info: dict[str, Any]) -> None:
        save_attribute_model(directory, model, self.config.model, self.vocabulary, info)

    def finish(self, client: Any, run_id: str, model_dir: str, scratch: str
               ) -> tuple[str, dict[str, Any]]:
        predictor = load_attribute_model(model_dir)
        report = score_model(predictor.model, self.config, predictor.vocabulary)
        k = self.config.schedule.k
        client.log_metric(run_id, f"top{k}_street_to_catalogue", report[f"top{k}"])
        for name, value in report["attributes"].items():
            if value == value:  # NaN: no known values in the evaluation split
                client.log_metric(run_id, f"attr_acc_{name}", value)
                client.log_metric(run_id, f"attr_majority_{name}", report["majority"][name])
        client.log_dict(run_id, report, "evaluation/report.json")
        return model_dir, report
