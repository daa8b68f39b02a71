"""Fine-tune the dense matcher's backbone on references only, with Ray Train (DDP), log to MLflow.

    python -m jobs.train_matcher --config configs/matcher_fid300.yaml data.refdb=/abs/refs
    ray job submit --working-dir . -- python -m jobs.train_matcher --config ... data.refdb=...

Each worker takes every world-th reference at the matcher's scale; each step cuts windows out
of distinct references, makes crime-scene views of them and trains the MCNCC InfoNCE objective
(`shoematch.dense.finetune`). Rank 0 logs and checkpoints; a re-submission of the same
`ray.run_name` resumes. The final weights file is logged and registered (alias `current`) and,
with `export=PATH`, copied there.
"""

from __future__ import annotations

from jobs.common import parse_config, print_outcome, run_main
from shoematch.dense.job import MatcherJob
from shoematch.dense.train_config import MatcherTrainConfig
from shoematch.ray.train import run_training


def parse_args(argv: list[str] | None) -> MatcherTrainConfig:
    return parse_config(MatcherTrainConfig, "jobs.train_matcher", __doc__, argv)


def main(argv: list[str] | None = None) -> int:
    outcome = run_training(MatcherJob(parse_args(argv)))
    weights = outcome.evaluation["weights"]
    print_outcome(outcome, {"weights": weights} if weights else {})
    return 0


if __name__ == "__main__":
    run_main(main)
