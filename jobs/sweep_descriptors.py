"""Sweep the descriptor model's preprocessing layer × input channel composition in one Ray job.

    python -m jobs.sweep_descriptors --config configs/descriptor_sweep_tiny.yaml [key=value ...]
    ray job submit --working-dir . -- python -m jobs.sweep_descriptors --config ...

Every (preprocess, channels) pair of the `sweep` section is a trial: a Ray task that trains a
model single-process with the rest of the config and scores PR-AUC on the evaluation split.
Trials run in parallel (`sweep.trial_cpus` each). Each is logged as a child MLflow run; the
parent run gets the comparison table (markdown, CSV and an MLflow table).
"""

from __future__ import annotations

import argparse
import math

from jobs.common import log, run_main
from shoematch.config import flatten, load_config
from shoematch.data.schema import DESCRIPTOR_CODES
from shoematch.descriptors.config import DescriptorSweepConfig, with_absolute_paths
from shoematch.descriptors.data import check_descriptor_data
from shoematch.ray.cluster import init_ray


def parse_args(argv: list[str] | None) -> DescriptorSweepConfig:
    parser = argparse.ArgumentParser(prog="python -m jobs.sweep_descriptors", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML config (see configs/)")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    args = parser.parse_args(argv)
    return load_config(DescriptorSweepConfig, args.config, args.overrides)


def run_trials(config: DescriptorSweepConfig, pos_weight: list[float]) -> list[dict]:
    """Every setting as a Ray task; results in grid order."""
    import ray

    from shoematch.descriptors.sweep import run_trial

    trial_config = config.model_dump(mode="json", exclude={"sweep"})
    task = ray.remote(num_cpus=config.sweep.trial_cpus)(run_trial)
    threads = max(1, int(config.sweep.trial_cpus))
    pending = [task.remote(trial_config, preprocess, channels, pos_weight, threads)
               for preprocess in config.sweep.preprocess for channels in config.sweep.channels]
    log.info("%d trials submitted", len(pending))
    return ray.get(pending)


def comparison(results: list[dict]) -> dict[str, list]:
    """Column → values, best mean PR-AUC first."""
    ranked = sorted(results, key=lambda r: -r["pr_auc"]["mean"])
    columns: dict[str, list] = {"setting": [r["setting"] for r in ranked],
                                "seconds": [round(r["seconds"], 1) for r in ranked]}
    for key in ("mean", *DESCRIPTOR_CODES):
        columns[key] = [None if math.isnan(r["pr_auc"][key]) else r["pr_auc"][key]
                        for r in ranked]
    return columns


def log_results(config: DescriptorSweepConfig, provenance: dict, results: list[dict]) -> str:
    """A parent run with the comparison table, one child run per trial; returns the table."""
    import mlflow

    from shoematch import tracking
    from shoematch.descriptors.report import pr_auc_table

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
        for key, value in result["pr_auc"].items():
            if not math.isnan(value):
                client.log_metric(child.info.run_id, f"pr_auc_{key}", value)
        client.set_terminated(child.info.run_id)
    ranked = sorted(results, key=lambda r: -r["pr_auc"]["mean"])
    table = pr_auc_table({r["setting"]: r["pr_auc"] for r in ranked})
    client.log_text(parent, table, "sweep/comparison.md")
    client.log_table(parent, comparison(results), "sweep/comparison.json")
    client.log_metric(parent, "best_pr_auc_mean", ranked[0]["pr_auc"]["mean"])
    client.set_tag(parent, "best_setting", ranked[0]["setting"])
    client.set_terminated(parent)
    return table


def main(argv: list[str] | None = None) -> int:
    config = with_absolute_paths(parse_args(argv))
    provenance = check_descriptor_data(config.data, 1)
    init_ray()
    results = run_trials(config, provenance["pos_weight"])
    print(log_results(config, provenance, results))
    return 0


if __name__ == "__main__":
    run_main(main)
