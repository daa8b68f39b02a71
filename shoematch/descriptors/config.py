"""Configs of the descriptor jobs: training (jobs.train_descriptors) and the preprocessing ×
channel sweep (jobs.sweep_descriptors), YAML + overrides through shoematch.config."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from shoematch.config import StrictModel
from shoematch.descriptors.channels import check_channels
from shoematch.descriptors.model import DescriptorNetConfig
from shoematch.descriptors.preprocess import Preprocess
from shoematch.training.config import (
    TrainConfig,
    TrainMlflowConfig,
    TrainRayConfig,
    TrainScheduleConfig,
)


class DescriptorDataConfig(StrictModel):
    refdb: str = Field(description="reference dataset (dir or s3://) with descriptor labels")
    train_split: str = "train"
    eval_split: str = Field("test", description="held-out patterns for PR-AUC and confusion")
    val_fraction: float = Field(
        0.15, ge=0, lt=1, description="training patterns held out to pick per-descriptor "
                                      "thresholds (by a stable hash of pattern_id)")
    max_records: int | None = Field(None, ge=1, description="cap per part (train/val/eval)")


class DescriptorOptimConfig(StrictModel):
    """AdamW in two phases: body frozen (learning rate 0) for `frozen_steps`, then
    discriminative rates: head `lr`, the body's upper half `lr`/√ratio, its lower half
    `lr`/ratio."""

    loss: Literal["bce", "soft_f1"] = Field("bce", description="bce is class-weighted")
    batch_size: int = Field(8, ge=2, description="per worker (BatchNorm needs 2+)")
    steps: int = Field(100, ge=1, description="total, both phases")
    frozen_steps: int = Field(20, ge=0)
    lr: float = Field(1e-3, gt=0, description="head and preprocessing layer, phase 1")
    unfrozen_lr: float = Field(5e-4, gt=0, description="head rate in phase 2")
    discriminative_ratio: float = Field(10.0, ge=1)
    weight_decay: float = Field(0.01, ge=0)
    flips: bool = Field(True, description="random horizontal/vertical flips (labels unchanged)")
    seed: int = 0


class DescriptorScheduleConfig(TrainScheduleConfig):
    gradcam_descriptors: int = Field(3, ge=0, description="Grad-CAM PNGs logged at the end")


class DescriptorTrainConfig(TrainConfig):
    job_defaults = {"ray": {"run_name": "descriptors"},
                    "mlflow": {"experiment": "descriptors", "registered_model": "shoe-descriptors"}}

    data: DescriptorDataConfig
    model: DescriptorNetConfig = DescriptorNetConfig()
    optim: DescriptorOptimConfig = DescriptorOptimConfig()
    schedule: DescriptorScheduleConfig = DescriptorScheduleConfig()
    ray: TrainRayConfig
    mlflow: TrainMlflowConfig

    @model_validator(mode="after")
    def _phases_fit(self) -> DescriptorTrainConfig:
        if self.optim.frozen_steps > self.optim.steps:
            raise ValueError(f"optim.frozen_steps ({self.optim.frozen_steps}) exceeds "
                             f"optim.steps ({self.optim.steps})")
        return self


class SweepConfig(StrictModel):
    """The grid: every preprocessing layer × every channel composition, one Ray Tune trial each;
    ASHA stops settings whose validation PR-AUC falls behind at its rungs."""

    preprocess: list[Preprocess] = ["none", "cbn_1", "cbn_3", "inc", "inc_d"]
    channels: list[str] = ["BHN", "NBH", "HNB"]
    trial_cpus: float = Field(1.0, gt=0, description="CPUs per trial")
    run_name: str = "descriptor-sweep"
    scheduler: Literal["asha", "fifo"] = Field("asha", description="fifo: every trial finishes")
    report_every: int = Field(10, ge=0, description="steps between validation reports "
                                                    "(0: only at the end)")
    grace_reports: int = Field(2, ge=1, description="reports before ASHA may stop a trial")

    @field_validator("channels")
    @classmethod
    def _compositions(cls, value: list[str]) -> list[str]:
        return [check_channels(order) for order in value]


class DescriptorSweepConfig(DescriptorTrainConfig):
    sweep: SweepConfig = SweepConfig()
