"""Config sections every training job has (cluster, schedule, MLflow), and absolute paths.

Each model's config subclasses these to set its own defaults (run name, experiment, registered
model) and adds its own fields; the shared driver reads only what is declared here.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, TypeVar

from pydantic import Field, model_validator

from shoematch.config import StrictModel, merge

C = TypeVar("C", bound=StrictModel)
# Config fields holding a local path or URI that Ray workers must be able to read (or write).
PATH_FIELDS = (("data", "refdb"), ("data", "val_queries"), ("model", "pretrained"),
               ("ray", "storage_path"), ("export",))
# Values of those fields that name something other than a file (weights a package ships).
NOT_PATHS = frozenset({"imagenet"})


class TrainConfig(StrictModel):
    """Base of every training job's config: `job_defaults` holds the values that name the job
    (run name, MLflow experiment and registered model, schedule), applied under the user's."""

    job_defaults: ClassVar[dict[str, dict[str, Any]]] = {}

    @model_validator(mode="before")
    @classmethod
    def _fill_job_defaults(cls, data: Any) -> Any:
        return merge(cls.job_defaults, data) if isinstance(data, dict) else data


class TrainRayConfig(StrictModel):
    num_workers: int = Field(2, ge=1)
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)
    gpus_per_worker: float = Field(
        1.0, gt=0, le=1, description="each worker's share of its GPU when use_gpu; below 1 "
        "leaves the rest of that GPU to Ray Data actors")
    storage_path: str = Field("runs/ray", description="checkpoints: a directory or s3://")
    run_name: str
    max_failures: int = Field(2, ge=-1)


class TrainScheduleConfig(StrictModel):
    log_every: int = Field(10, ge=1)
    checkpoint_every: int = Field(50, ge=1)


class TrainMlflowConfig(StrictModel):
    tracking_uri: str = "sqlite:///runs/mlflow.db"
    experiment: str
    registered_model: str | None


def absolute(path: str) -> str:
    """Workers run in other directories (and on other nodes): local paths made absolute."""
    return path if "://" in path else os.path.abspath(path)


def with_absolute_paths(config: C) -> C:
    """A copy of a job config with every path field in `PATH_FIELDS` it has made absolute."""
    config = config.model_copy(deep=True)
    for *sections, field in PATH_FIELDS:
        owner: Any = config
        for name in sections:
            owner = getattr(owner, name, None)
        value = getattr(owner, field, None)
        if value and value not in NOT_PATHS:
            setattr(owner, field, absolute(value))
    return config
