"""Config of `jobs.train_matcher` (fine-tuning the dense matcher on references, on Ray Train)."""

from __future__ import annotations

from pydantic import Field

from shoematch.config import StrictModel
from shoematch.dense.finetune import FinetuneConfig
from shoematch.dense.matcher import DenseConfig
from shoematch.training.config import (
    TrainConfig,
    TrainMlflowConfig,
    TrainRayConfig,
    TrainScheduleConfig,
)


class MatcherDataConfig(StrictModel):
    refdb: str = Field(description="reference dataset (dir or s3://) with px_per_cm known")


class MatcherTrainConfig(TrainConfig):
    job_defaults = {"ray": {"run_name": "dense-matcher"},
                    "mlflow": {"experiment": "dense-matcher", "registered_model": "dense-matcher"},
                    "schedule": {"log_every": 20, "checkpoint_every": 100}}

    data: MatcherDataConfig
    dense: DenseConfig = DenseConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    schedule: TrainScheduleConfig
    ray: TrainRayConfig
    mlflow: TrainMlflowConfig
    export: str | None = Field(None, description="also copy the weights file here")

