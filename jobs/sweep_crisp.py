"""Sweep CriSp hyperparameters with Ray Tune: every combination of `sweep.grid` is one trial, a
whole Ray Train run of the encoder.

    python -m jobs.sweep_crisp --config configs/crisp_tiny.yaml \\
        'sweep.grid={optim.lr: [0.0001, 0.0003], masking.rect_probability: [0.5, 1.0]}'
    ray job submit --working-dir . -- python -m jobs.sweep_crisp --config ...

Each trial trains and validates like `jobs.train_crisp` (its own MLflow run, a child of the
sweep's parent run, and registered model version); `sweep.max_concurrent` trials run at once.
The parent run gets the comparison table, best validation mAP first.
"""

from __future__ import annotations

from jobs.common import parse_config, run_main
from shoematch.crisp.config import CrispSweepConfig
from shoematch.ray.tune import run_crisp_sweep
from shoematch.training.config import with_absolute_paths


def parse_args(argv: list[str] | None) -> CrispSweepConfig:
    return parse_config(CrispSweepConfig, "jobs.sweep_crisp", __doc__, argv)


def main(argv: list[str] | None = None) -> int:
    config = with_absolute_paths(parse_args(argv))
    print(run_crisp_sweep(config))
    return 0


if __name__ == "__main__":
    run_main(main)
