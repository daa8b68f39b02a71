"""Config of the attribute job (jobs.train_attributes), YAML + overrides via shoematch.config."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shoematch.attributes.model import AttributeNetConfig
from shoematch.config import StrictModel
from shoematch.training.config import (
    TrainConfig,
    TrainMlflowConfig,
    TrainRayConfig,
    TrainScheduleConfig,
)


class AttributeDataConfig(StrictModel):
    refdb: str = Field(description="reference dataset (dir or s3://) with photo, street_photo "
                                   "and attributes")
    train_split: str = "train"
    eval_split: str = Field("test", description="street photos of these shoes are the queries")
    gallery: Literal["all", "eval"] = Field(
        "all", description="catalogue images searched: every record, or the eval split only")
    max_models: int | None = Field(None, ge=2, description="cap on shoes per part")


class AttributeLossConfig(StrictModel):
    """total = attribute·L_attr + triplet·(α same-domain / β cross-domain triplets) + λ·L_view;
    the baselines set attribute or triplet (and λ) to 0."""

    attribute: float = Field(1.0, ge=0)
    triplet: float = Field(1.0, ge=0)
    alpha: float = Field(1.0, ge=0, description="same-domain triplet weight")
    beta: float = Field(2.0, ge=0, description="cross-domain triplet weight")
    viewpoint: float = Field(0.001, ge=0, description="λ of the viewpoint-invariant loss")
    margin: float = Field(0.2, gt=0)
    hard_fraction: float = Field(0.7, gt=0, le=1, description="hardest violating triplets kept")


class AttributeOptimConfig(StrictModel):
    models_per_batch: int = Field(8, ge=2, description="shoes per batch on each worker")
    shop_views: int = Field(2, ge=1, description="catalogue images per shoe in a batch")
    steps: int = Field(100, ge=0, description="0: untrained features (a baseline)")
    lr: float = Field(3e-4, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    seed: int = 0


class MiningConfig(StrictModel):
    """Every `every` steps each worker embeds one catalogue image per training shoe; batches are
    then built around a shoe and its `neighbours` most similar (hardest) other shoes."""

    every: int = Field(25, ge=1)
    neighbours: int = Field(3, ge=0)


class AttributeScheduleConfig(TrainScheduleConfig):
    k: int = Field(20, ge=1, description="street → catalogue top-k accuracy")


class AttributeTrainConfig(TrainConfig):
    job_defaults = {"ray": {"run_name": "attributes"},
                    "mlflow": {"experiment": "attributes", "registered_model": "shoe-attributes"}}

    data: AttributeDataConfig
    model: AttributeNetConfig = AttributeNetConfig()
    loss: AttributeLossConfig = AttributeLossConfig()
    optim: AttributeOptimConfig = AttributeOptimConfig()
    mining: MiningConfig = MiningConfig()
    schedule: AttributeScheduleConfig = AttributeScheduleConfig()
    ray: TrainRayConfig
    mlflow: TrainMlflowConfig
