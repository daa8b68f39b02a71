"""Config of `jobs.train_matcher` (fine-tuning the dense matcher on references, on Ray Train)."""

from __future__ import annotations

from pydantic import Field

from shoematch.config import StrictModel
from shoematch.dense.finetune import FinetuneConfig
from shoematch.dense.matcher import DenseConfig
from shoematch.training.ray_train import TrainRayConfig, absolute


class MatcherDataConfig(StrictModel):
    refdb: str = Field(description="reference dataset (dir or s3://) with px_per_cm known")


class MatcherScheduleConfig(StrictModel):
    log_every: int = Field(20, ge=1)
    checkpoint_every: int = Field(100, ge=1)


class MatcherMlflowConfig(StrictModel):
    tracking_uri: str = "sqlite:///runs/mlflow.db"
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


def with_absolute_paths(config: MatcherTrainConfig) -> MatcherTrainConfig:
    """Workers run elsewhere: data and checkpoint paths made absolute."""
    config = config.model_copy(deep=True)
    config.data.refdb = absolute(config.data.refdb)
    config.ray.storage_path = absolute(config.ray.storage_path)
    if config.export:
        config.export = absolute(config.export)
    return config
