"""Train the attribute model with Ray Train (DDP) on a reference db, logging to MLflow.

    python -m jobs.train_attributes --config configs/attributes_tiny.yaml [key=value ...]
    ray job submit --working-dir . -- python -m jobs.train_attributes --config ...

Every DDP worker decodes the training shoes' catalogue and street photos and trains one shared
backbone with one head per attribute on the attribute losses plus the domain-weighted triplet
loss (α same-domain, β cross-domain) and the viewpoint-invariant loss (λ), re-mining hard
negatives every `mining.every` steps. Rank 0 logs and checkpoints; re-submitting the same
`ray.run_name` resumes. The driver then evaluates street → catalogue top-k accuracy and
per-attribute accuracy on the evaluation split and registers the model (alias `current`).
"""

from __future__ import annotations

from jobs.common import parse_config, print_outcome, run_main
from shoematch.attributes.config import AttributeTrainConfig
from shoematch.attributes.job import AttributeJob
from shoematch.ray.train import run_training


def parse_args(argv: list[str] | None) -> AttributeTrainConfig:
    return parse_config(AttributeTrainConfig, "jobs.train_attributes", __doc__, argv)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    outcome = run_training(AttributeJob(config))
    report, k = outcome.evaluation, config.schedule.k
    print_outcome(outcome, {})
    print(f"top{k} street -> catalogue: {report[f'top{k}']:.4f} "
          f"({report['queries']} queries, {report['gallery_models']} shoes)")
    for name, value in report["attributes"].items():
        print(f"accuracy {name}: {value:.4f} (majority {report['majority'][name]:.4f})")
    return 0


if __name__ == "__main__":
    run_main(main)
