"""The contract between one model's training code and the shared driver (`shoematch.ray.train`).

A model supplies a `TrainJob`: input checks, model and optimizer, its Ray-free `train_steps`
calling `on_step` after every step, how to save the model into a checkpoint, and the evaluation
after training. The driver does the rest, the same way for every model: MLflow run, DDP workers,
resume, throughput, progress lines, checkpoint cadence, registering the model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from shoematch.training.config import with_absolute_paths

StepHook = Callable[[int, dict[str, float], int], None]
"""`on_step(step, losses, images)` after each optimizer step: `step` counts from 1, `losses`
holds at least "loss", `images` is the number of images this worker encoded in the step."""

Batches = Callable[[], Iterable[Mapping[str, torch.Tensor]]]
"""`batches()`: one pass of this worker's share of a streamed dataset, in batches on its device
(`shoematch.training.passes`: a pass may hold several epochs)."""


@dataclass
class TrainOutcome:
    model_uri: str | None
    checkpoint: str
    metrics: dict[str, float]  # the last step's training (and validation) metrics
    evaluation: dict[str, Any]  # the job's evaluation of the final model


class TrainJob(ABC):
    """One model's training job; its config has `schedule`, `ray` and `mlflow` sections (see
    `shoematch.training.config`) and, unless `steps` and `seed` say otherwise, `optim.steps` and
    `optim.seed`."""

    name: ClassVar[str]  # MLflow `job` tag, e.g. "train_crisp"
    model_dir: ClassVar[str]  # the saved model's folder inside every checkpoint

    def __init__(self, config: Any) -> None:
        self.config = with_absolute_paths(config)

    @property
    def steps(self) -> int:
        return self.config.optim.steps

    @property
    def seed(self) -> int:
        return self.config.optim.seed

    @abstractmethod
    def check_inputs(self) -> dict[str, Any]:
        """On the driver, before any cluster work: raise a ShoematchError on bad data; returns
        provenance logged as MLflow parameters (and may keep what workers need on `self`)."""

    @abstractmethod
    def build_model(self) -> nn.Module:
        """The network, on the CPU (the driver moves and wraps it for DDP)."""

    @abstractmethod
    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """The optimizer over `model` (already on its device, before any state is loaded)."""

    @abstractmethod
    def train_steps(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                    device: torch.device, rank: int, world: int, start: int, on_step: StepHook,
                    batches: Batches | None) -> None:
        """Steps `start`..`optim.steps` on one worker, calling `on_step` after each."""

    @abstractmethod
    def save_model(self, directory: str, model: nn.Module, info: dict[str, Any]) -> None:
        """Write the model in its saved-model format into `directory` (rank 0, per checkpoint)."""

    def validate(self, model: nn.Module, device: torch.device, step: int) -> dict[str, float]:
        """Validation metrics at a checkpoint `step` (rank 0); none by default."""
        return {}

    @abstractmethod
    def finish(self, client: Any, run_id: str, model_dir: str, scratch: str
               ) -> tuple[str, dict[str, Any]]:
        """On the driver after training: evaluate the model saved in `model_dir` and log the
        evaluation to the MLflow run; returns (directory to register — `model_dir`, or a
        rewritten copy in the empty folder `scratch` — and the evaluation)."""
