"""The CriSp training job's configuration (YAML + overrides through shoematch.config)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, model_validator

from shoematch.augment.config import AugConfig
from shoematch.config import StrictModel
from shoematch.crisp.model import CrispEncoderConfig
from shoematch.training.config import (
    TrainConfig,
    TrainMlflowConfig,
    TrainRayConfig,
    TrainScheduleConfig,
)


class DataConfig(StrictModel):
    refdb: str = Field(description="reference dataset (dir or s3://); training uses split=train")
    val_queries: str | None = Field(None, description="query dataset for validation metrics")
    val_split: str | None = Field("val", description="query split used for validation (None: all)")
    train_split: str = "train"
    label: Literal["pattern", "model"] = Field(
        "pattern", description="contrastive class: models sharing a pattern are near-identical")


class MaskingConfig(StrictModel):
    """Ablation switches (docs/decisions.md: global < spatial < +masking < +query masking)."""

    feature_masking: bool = Field(True, description="one random rectangle per batch (module M)")
    query_masking: bool = Field(True, description="mask print features by their visible region")
    min_rect_fraction: float = Field(0.3, gt=0, le=1)
    rect_probability: float = Field(
        1.0, ge=0, le=1, description="share of batches masked by the rectangle (paper: every one)")


class OptimConfig(StrictModel):
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    batch_models: int = Field(4, ge=2, description="N/2 models per batch, 2 instances each")
    steps: int = Field(100, ge=1)
    warmup_steps: int = Field(0, ge=0)
    seed: int = 0


class ScheduleConfig(TrainScheduleConfig):
    val_every: int = Field(0, ge=0, description="0: validate only at the end")
    val_k: int = Field(100, ge=1)


class RayConfig(TrainRayConfig):
    gpus_per_worker: float = Field(0.75, gt=0, le=1, description="each DDP worker's share of "
                                   "its GPU when use_gpu: the rest is for augmentation")
    aug_actors: int = Field(1, ge=1, description="actor pool size for augmentation")
    aug_actor_cpus: float = Field(0.5, gt=0, description="fractional CPUs: see docs/decisions.md")
    aug_actor_gpus: float = Field(0.25, ge=0, lt=1, description="each augmentation actor's GPU "
                                  "share when use_gpu (0: augment on CPUs)")
    aug_batch_size: int = Field(16, ge=1)
    epochs_per_pass: int | None = Field(
        None, ge=1, description="epochs of the class table in one pass of the Ray Data "
        "pipeline, whose augmentation actors start once per pass (None: as many as the run's "
        "steps need, up to 2048 blocks in a pass; 1: a pass, and new actors, every epoch)")
    group_partitions: int | None = Field(
        None, ge=1, description="blocks (read tasks) of the one-row-per-class table, each a run "
        "of classes read from the shards they are in (None: one per reference shard)")

    @model_validator(mode="after")
    def _augmentation_fits_beside_the_workers(self) -> RayConfig:
        """Each worker holds one GPU's `gpus_per_worker`; the actors must fit in what is left,
        else they wait for a GPU for ever while the workers wait for their batches."""
        if not self.use_gpu or self.aug_actor_gpus == 0:
            return self
        per_gpu = math.ceil(self.aug_actors / self.num_workers)
        if self.gpus_per_worker + per_gpu * self.aug_actor_gpus > 1 + 1e-9:
            raise ValueError(
                f"ray.gpus_per_worker={self.gpus_per_worker:g} + {per_gpu} augmentation "
                f"actor(s) per GPU × ray.aug_actor_gpus={self.aug_actor_gpus:g} exceed one GPU: "
                "lower either share, or set ray.aug_actor_gpus=0 to augment on CPUs")
        return self


class CrispTrainConfig(TrainConfig):
    job_defaults = {"ray": {"run_name": "crisp"},
                    "mlflow": {"experiment": "crisp", "registered_model": "crisp-encoder"}}

    data: DataConfig
    model: CrispEncoderConfig = CrispEncoderConfig()
    aug: AugConfig = AugConfig()
    masking: MaskingConfig = MaskingConfig()
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    ray: RayConfig
    mlflow: TrainMlflowConfig

    @model_validator(mode="after")
    def _global_pooling_has_no_cells(self) -> CrispTrainConfig:
        if self.model.pooling == "global" and self.masking.feature_masking:
            raise ValueError("model.pooling=global has no spatial cells: set "
                             "masking.feature_masking=false (and masking.query_masking=false)")
        return self


class CrispSweepSpace(StrictModel):
    """A grid over config keys: every combination is one Ray Tune trial, a whole DDP run."""

    grid: dict[str, list[Any]] = Field(
        {"optim.lr": [1e-4, 3e-4], "masking.rect_probability": [0.5, 1.0]},
        description="dotted config key → values to try")
    run_name: str = "crisp-sweep"
    max_concurrent: int = Field(1, ge=1, description="trials at once (each takes "
                                                     "ray.num_workers workers)")


class CrispSweepConfig(CrispTrainConfig):
    sweep: CrispSweepSpace = CrispSweepSpace()
