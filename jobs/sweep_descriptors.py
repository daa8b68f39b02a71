"""Sweep the descriptor model's preprocessing layer × input channel composition with Ray Tune.

    python -m jobs.sweep_descriptors --config configs/descriptor_sweep_tiny.yaml [key=value ...]
    ray job submit --working-dir . -- python -m jobs.sweep_descriptors --config ...

Every (preprocess, channels) pair of the `sweep` section is a Tune trial that trains a model
single-process with the rest of the config, reporting validation PR-AUC every
`sweep.report_every` steps; ASHA stops settings that fall behind (`sweep.scheduler=fifo` runs
every trial to the end). Finished trials are scored on the evaluation split. Each trial is
logged as a child MLflow run; the parent run gets the comparison table (markdown and an MLflow
table).
"""

from __future__ import annotations

from jobs.common import parse_config, run_main
from shoematch.descriptors.config import DescriptorSweepConfig
from shoematch.descriptors.data import check_descriptor_data
from shoematch.descriptors.sweep import log_results
from shoematch.ray.tune import run_descriptor_sweep
from shoematch.training.config import with_absolute_paths


def parse_args(argv: list[str] | None) -> DescriptorSweepConfig:
    return parse_config(DescriptorSweepConfig, "jobs.sweep_descriptors", __doc__, argv)


def main(argv: list[str] | None = None) -> int:
    config = with_absolute_paths(parse_args(argv))
    provenance = check_descriptor_data(config.data, 1)
    results = run_descriptor_sweep(config, provenance["pos_weight"])
    print(log_results(config, provenance, results))
    return 0


if __name__ == "__main__":
    run_main(main)
