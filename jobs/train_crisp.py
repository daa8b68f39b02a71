"""Train the CriSp encoder with Ray Train (DDP) on a reference db, logging to MLflow.

    python -m jobs.train_crisp --config configs/crisp_tiny.yaml [key=value ...]
    ray job submit --working-dir . -- python -m jobs.train_crisp --config configs/crisp_tiny.yaml

Ray Data reads the reference shards, pairs two instances per class, decodes and applies the
crime-scene augmentation on an actor pool (GPU actors when the cluster has GPUs), and feeds each
DDP worker N/2 classes × 2 instances per batch. Rank 0 logs to MLflow and writes checkpoints
every `schedule.checkpoint_every` steps; a worker failure or a re-submission of the same
`ray.run_name` resumes from the last checkpoint. The final encoder is registered in MLflow.
"""

from __future__ import annotations

from jobs.common import parse_config, print_outcome, run_main
from shoematch.crisp.config import CrispTrainConfig
from shoematch.ray.crisp import train_crisp


def parse_args(argv: list[str] | None) -> CrispTrainConfig:
    return parse_config(CrispTrainConfig, "jobs.train_crisp", __doc__, argv)


def main(argv: list[str] | None = None) -> int:
    outcome = train_crisp(parse_args(argv))
    print_outcome(outcome, outcome.metrics)
    return 0


if __name__ == "__main__":
    run_main(main)
