"""Sweeps as Ray Tune experiments: a grid (or sampled) search space, a scheduler that stops weak
trials early (ASHA), trials in parallel with their own CPUs, results logged to MLflow child runs
by the library once the experiment ends."""

from __future__ import annotations

from typing import Any

import ray.tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from shoematch import tracking
from shoematch.config import flatten
from shoematch.crisp.config import CrispSweepConfig
from shoematch.crisp.data import check_crisp_data
from shoematch.crisp.sweep import CrispTrial, sweep_table, sweep_trials
from shoematch.data.schema import DESCRIPTOR_CODES
from shoematch.descriptors.config import DescriptorSweepConfig
from shoematch.descriptors.sweep import VAL_METRIC, run_trial, setting_name
from shoematch.log import get_logger
from shoematch.ray.cluster import init_ray
from shoematch.ray.crisp import train_crisp
from shoematch.training.config import absolute

log = get_logger(__name__)


def scheduler_for(kind: str, max_reports: int, grace_reports: int) -> TrialScheduler:
    if kind == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(max_t=max_reports, grace_period=min(grace_reports, max_reports))


def descriptor_trial(space: dict[str, Any]) -> None:
    """A Tune function trainable: one preprocessing × channels setting."""
    run_trial(space["base"], space["preprocess"], space["channels"], space["pos_weight"],
              space["threads"], report=ray.tune.report, report_every=space["report_every"])


def trial_result(metrics: dict[str, Any], preprocess: str, channels: str) -> dict[str, Any]:
    """A trial's last report as a sweep result; a trial stopped early has no evaluation."""
    finished = "pr_auc_mean" in metrics
    nan = float("nan")
    return {"setting": setting_name(preprocess, channels), "preprocess": preprocess,
            "channels": channels, "seconds": metrics.get("seconds", metrics.get("time_total_s",
                                                                                0.0)),
            "stopped_at": None if finished else metrics.get("step"),
            "pr_auc": {key: metrics.get(f"pr_auc_{key}", nan) if finished else nan
                       for key in ("mean", *DESCRIPTOR_CODES)}}


def run_descriptor_sweep(config: DescriptorSweepConfig, pos_weight: list[float]
                         ) -> list[dict[str, Any]]:
    """Every setting of `config.sweep` as a Tune trial; results in grid order."""
    init_ray()
    sweep, steps = config.sweep, config.optim.steps
    reports = (steps - 1) // sweep.report_every + 1 if sweep.report_every else 1
    space = {"base": config.model_dump(mode="json", exclude={"sweep"}),
             "pos_weight": pos_weight, "threads": max(1, int(sweep.trial_cpus)),
             "report_every": sweep.report_every,
             "preprocess": ray.tune.grid_search(list(sweep.preprocess)),
             "channels": ray.tune.grid_search(list(sweep.channels))}
    tuner = ray.tune.Tuner(
        ray.tune.with_resources(descriptor_trial, {"cpu": sweep.trial_cpus}),
        param_space=space,
        tune_config=ray.tune.TuneConfig(
            metric=VAL_METRIC, mode="max",
            scheduler=scheduler_for(sweep.scheduler, reports, sweep.grace_reports)),
        run_config=ray.tune.RunConfig(name=sweep.run_name,
                                      storage_path=absolute(config.ray.storage_path),
                                      verbose=0),
    )
    log.info("%d trials submitted", len(sweep.preprocess) * len(sweep.channels))
    grid = tuner.fit()
    by_setting = {}
    # ResultGrid iterates through __getitem__/__len__; Ray's types declare no __iter__.
    for result in grid:  # type: ignore[attr-defined]
        if result.error is not None:
            raise result.error
        chosen = result.config
        by_setting[(chosen["preprocess"], chosen["channels"])] = trial_result(
            result.metrics or {}, chosen["preprocess"], chosen["channels"])
    return [by_setting[(p, c)] for p in sweep.preprocess for c in sweep.channels]


def crisp_trial(space: dict[str, Any]) -> None:
    """A Tune function trainable: one whole CriSp training run (its own DDP workers and MLflow
    run, a child of the sweep's), reporting its final validation metrics."""
    trial: CrispTrial = space["trial"]
    # Launched as a task outside the trial's placement group: tasks a trial starts are held to
    # its bundles, but the run's Ray Data and Train workers need the cluster's CPUs.
    run = ray.remote(num_cpus=0, scheduling_strategy="DEFAULT")(train_crisp)
    # Ray's `remote` overloads type train_crisp by its required parameters only (not `tags`).
    outcome = ray.get(run.remote(  # type: ignore[call-arg]
        trial.config, {"mlflow.parentRunId": space["parent_run"]}))
    ray.tune.report({**outcome.metrics, "model_uri": outcome.model_uri or ""})


def run_crisp_sweep(config: CrispSweepConfig) -> str:
    """Every combination of `sweep.grid` as a Tune trial; returns the comparison table (also
    logged to the sweep's parent MLflow run)."""
    import mlflow

    trials = sweep_trials(config)  # every key and value checked before any cluster work
    provenance = check_crisp_data(config)
    tracking.configure(config.mlflow.tracking_uri, config.mlflow.experiment)
    parent = tracking.find_or_create_run(
        config.sweep.run_name, {**flatten(config), **provenance,
                                "git_commit": tracking.git_commit()}, {"job": "sweep_crisp"})
    metric = f"val_map_at_{config.schedule.val_k}"
    init_ray()
    tuner = ray.tune.Tuner(
        # A token CPU share: a trial only waits on its Train run, whose workers hold the CPUs.
        ray.tune.with_resources(crisp_trial, {"cpu": 0.01}),
        param_space={"trial": ray.tune.grid_search(trials), "parent_run": parent},
        tune_config=ray.tune.TuneConfig(max_concurrent_trials=config.sweep.max_concurrent),
        run_config=ray.tune.RunConfig(name=config.sweep.run_name,
                                      storage_path=absolute(config.ray.storage_path),
                                      verbose=0),
    )
    log.info("%d CriSp trials submitted", len(trials))
    rows = []
    for result in tuner.fit():  # type: ignore[attr-defined]  # as in run_descriptor_sweep
        if result.error is not None:
            raise result.error
        trial = result.config["trial"]
        metrics = {k: v for k, v in (result.metrics or {}).items() if k.startswith("val_")}
        rows.append({"name": trial.name, "overrides": trial.overrides, "metrics": metrics,
                     "model_uri": (result.metrics or {}).get("model_uri")})
    table = sweep_table(rows, metric)
    client = mlflow.MlflowClient()
    client.log_text(parent, table, "sweep/comparison.md")
    best = max(rows, key=lambda row: row["metrics"].get(metric, float("-inf")))
    client.set_tag(parent, "best_trial", best["name"])
    if metric in best["metrics"]:
        client.log_metric(parent, f"best_{metric}", best["metrics"][metric])
    client.set_terminated(parent)
    return table
