"""The preprocessing × channel-composition sweep, Ray-free: one single-process training per
setting (`run_trial`, reporting validation PR-AUC as it goes so a scheduler can stop weak
settings early), and the MLflow record of a sweep (`log_results`). `shoematch.ray.tune` runs the
trials as a Ray Tune experiment."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from shoematch import tracking
from shoematch.config import flatten
from shoematch.data.dataset import open_dataset
from shoematch.data.schema import DESCRIPTOR_CODES
from shoematch.descriptors.config import DescriptorSweepConfig, DescriptorTrainConfig
from shoematch.descriptors.data import load_part
from shoematch.descriptors.model import DescriptorNet
from shoematch.descriptors.preprocess import Preprocess
from shoematch.descriptors.report import pr_auc_table, score_model
from shoematch.descriptors.training import evaluate, make_optimizer, train_steps

VAL_METRIC = "val_pr_auc_mean"  # what a scheduler compares trials on (higher is better)
Report = Callable[[dict[str, float]], None]


def setting_name(preprocess: str, channels: str) -> str:
    return f"{preprocess}/{'-'.join(channels)}"


def run_trial(config: dict[str, Any], preprocess: Preprocess, channels: str,
              pos_weight: list[float], threads: int = 1, report: Report | None = None,
              report_every: int = 0) -> dict[str, Any]:
    """Train and score one setting; returns its PR-AUC per descriptor and mean on the evaluation
    split. With `report`, mean PR-AUC on the validation patterns (0 where none has positives) is
    reported every `report_every` steps and at the end, with the step and the loss."""
    torch.set_num_threads(threads)
    started = time.monotonic()
    trial = DescriptorTrainConfig.model_validate(config)
    trial.model.preprocess, trial.model.channels = preprocess, channels
    torch.manual_seed(trial.optim.seed)
    refdb = open_dataset(trial.data.refdb)
    parts = {part: load_part(refdb, trial.data, part, trial.model.input_size, channels)
             for part in ("train", "val", "eval")}
    model = DescriptorNet(**trial.model.model_dump())
    optimizer = make_optimizer(model, trial.optim)

    def val_score() -> float:
        mean = evaluate(model, parts["val"], np.full(len(DESCRIPTOR_CODES), 0.5))["pr_auc"]["mean"]
        return 0.0 if math.isnan(mean) else mean

    def on_step(step: int, losses: dict[str, float], images: int) -> None:
        if report is not None and report_every and step % report_every == 0 \
                and step < trial.optim.steps:
            report({VAL_METRIC: val_score(), "step": step, **losses})

    train_steps(model, optimizer, parts["train"], trial.optim,
                torch.as_tensor(np.asarray(pos_weight, dtype=np.float32)), torch.device("cpu"),
                on_step=on_step)
    scored = score_model(model, parts["val"], parts["eval"])
    result = {"setting": setting_name(preprocess, channels), "preprocess": preprocess,
              "channels": channels, "pr_auc": scored["pr_auc"],
              "seconds": time.monotonic() - started}
    if report is not None:
        report({VAL_METRIC: val_score(), "step": trial.optim.steps,
                **{f"pr_auc_{key}": value for key, value in scored["pr_auc"].items()},
                "seconds": result["seconds"]})
    return result


def comparison(results: list[dict]) -> dict[str, list]:
    """Column → values, best mean PR-AUC first."""
    ranked = ranked_results(results)
    columns: dict[str, list] = {"setting": [r["setting"] for r in ranked],
                                "seconds": [round(r["seconds"], 1) for r in ranked],
                                "stopped_at": [r.get("stopped_at") for r in ranked]}
    for key in ("mean", *DESCRIPTOR_CODES):
        columns[key] = [None if math.isnan(r["pr_auc"][key]) else r["pr_auc"][key]
                        for r in ranked]
    return columns


def ranked_results(results: list[dict]) -> list[dict]:
    """Finished trials by mean PR-AUC (best first), then trials the scheduler stopped early."""
    def key(result: dict) -> float:
        mean = result["pr_auc"]["mean"]
        return math.inf if math.isnan(mean) else -mean
    return sorted(results, key=key)


def log_results(config: DescriptorSweepConfig, provenance: dict, results: list[dict]) -> str:
    """A parent run with the comparison table, one child run per trial; returns the table."""
    import mlflow

    tracking.configure(config.mlflow.tracking_uri, config.mlflow.experiment)
    params = {**flatten(config), **{k: v for k, v in provenance.items() if k != "pos_weight"},
              "git_commit": tracking.git_commit()}
    parent = tracking.find_or_create_run(config.sweep.run_name, params,
                                         {"job": "sweep_descriptors"})
    client = mlflow.MlflowClient()
    experiment = client.get_run(parent).info.experiment_id
    for result in results:
        child = client.create_run(experiment, run_name=result["setting"],
                                  tags={"mlflow.parentRunId": parent, "job": "sweep_descriptors"})
        client.log_param(child.info.run_id, "model.preprocess", result["preprocess"])
        client.log_param(child.info.run_id, "model.channels", result["channels"])
        if result.get("stopped_at") is not None:
            client.set_tag(child.info.run_id, "stopped_at_step", str(result["stopped_at"]))
        for key, value in result["pr_auc"].items():
            if not math.isnan(value):
                client.log_metric(child.info.run_id, f"pr_auc_{key}", value)
        client.set_terminated(child.info.run_id)
    ranked = ranked_results(results)
    table = pr_auc_table({r["setting"]: r["pr_auc"] for r in ranked})
    client.log_text(parent, table, "sweep/comparison.md")
    client.log_table(parent, comparison(results), "sweep/comparison.json")
    client.log_metric(parent, "best_pr_auc_mean", ranked[0]["pr_auc"]["mean"])
    client.set_tag(parent, "best_setting", ranked[0]["setting"])
    client.set_terminated(parent)
    return table
