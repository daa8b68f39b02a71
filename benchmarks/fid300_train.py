"""Training for the FID-300 benchmark, from the references only: the dense matcher's fine-tuning
runs as a Ray Train job (`jobs.train_matcher`, started as a user would), its weights exported
into the run's model folder so that `--model` can reuse them."""

from __future__ import annotations

import os
import subprocess
import sys

from benchmarks.fid300_data import FidData
from shoematch.errors import ConfigError

CONFIG = "configs/matcher_fid300.yaml"
WEIGHTS = "matcher.pt"


def train_matcher_weights(data: FidData, model_dir: str, steps: int, reuse: bool) -> str:
    """The fine-tuned matcher file in `model_dir`: trained now unless reusing a finished run."""
    weights = os.path.abspath(os.path.join(model_dir, WEIGHTS))
    if reuse:
        if not os.path.isfile(weights):
            raise ConfigError(f"--model {model_dir}: no {WEIGHTS} (run once without --model)")
        return weights
    root = os.path.abspath(os.path.dirname(model_dir.rstrip("/")) or ".")
    subprocess.run([sys.executable, "-m", "jobs.train_matcher", "--config", CONFIG,
                    f"data.refdb={data.refdb}", f"finetune.steps={steps}", f"export={weights}",
                    f"ray.storage_path={root}/ray", f"ray.run_name=matcher-{steps}",
                    f"mlflow.tracking_uri=sqlite:///{root}/mlflow.db"], check=True)
    return weights
