"""Train the NFRC descriptor classifier with Ray Train (DDP) on a reference db, log to MLflow.

    python -m jobs.train_descriptors --config configs/descriptors_tiny.yaml [key=value ...]
    ray job submit --working-dir . -- python -m jobs.train_descriptors --config ...

Each DDP worker decodes its share of the training prints into three resampled channels,
trains the body frozen, then with discriminative learning rates (AdamW), and rank 0 logs and
checkpoints; a re-submission of the same `ray.run_name` resumes. The driver then picks
per-descriptor thresholds on held-out training patterns, evaluates PR-AUC (per descriptor and
mean) and the paper's confusion matrix on the evaluation split, logs Grad-CAM examples, and
registers the model in MLflow (alias `current`).
"""

from __future__ import annotations

from jobs.common import parse_config, print_outcome, run_main
from shoematch.descriptors.config import DescriptorTrainConfig
from shoematch.descriptors.job import DescriptorJob
from shoematch.ray.train import run_training


def parse_args(argv: list[str] | None) -> DescriptorTrainConfig:
    return parse_config(DescriptorTrainConfig, "jobs.train_descriptors", __doc__, argv)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    outcome = run_training(DescriptorJob(config))
    print_outcome(outcome, outcome.evaluation, label="pr_auc ")
    return 0


if __name__ == "__main__":
    run_main(main)
