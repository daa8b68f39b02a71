"""Config of `jobs.train_matcher` (fine-tuning the dense matcher on references, on Ray Train)."""

from __future__ import annotations

from pydantic import Field

from shoematch.config import StrictModel
from shoematch.dense.finetune import FinetuneConfig
from shoematch.dense.matcher import DenseConfig
from shoematch.training.config import TrainMlflowConfig, TrainRayConfig, TrainScheduleConfig


class MatcherDataConfig(StrictModel):
    refdb: str = Field(description="reference dataset (dir or s3://) with px_per_cm known")


class MatcherScheduleConfig(TrainScheduleConfig):
    log_every: int = Field(20, ge=1)
    checkpoint_every: int = Field(100, ge=1)


class MatcherMlflowConfig(TrainMlflowConfig):
    experiment: str = "dense-matcher"
    registered_model: str | None = "dense-matcher"


class MatcherRayConfig(TrainRayConfig):
    run_name: str = "dense-matcher"


class MatcherTrainConfig(StrictModel):
    data: MatcherDataConfig
    dense: DenseConfig = DenseConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    schedule: MatcherScheduleConfig = MatcherScheduleConfig()
    ray: MatcherRayConfig = MatcherRayConfig()
    mlflow: MatcherMlflowConfig = MatcherMlflowConfig()
    export: str | None = Field(None, description="also copy the weights file here")

