"""Training for the FID-300 benchmark, from the references only: the dense matcher's fine-tuning
(`jobs.train_matcher`) and CriSp on a pretrained EfficientNet-Lite0 body (`jobs.train_crisp`),
each a Ray Train job started as a user would. Both results are copied into the run's model
folder (`matcher.pt`, `crisp/`) so that `--model` can reuse them."""

from __future__ import annotations

import os
import subprocess
import sys

from benchmarks.fid300_data import FidData
from shoematch.crisp.store import load_encoder, save_encoder
from shoematch.errors import ConfigError

CONFIG = "configs/matcher_fid300.yaml"
CRISP_CONFIG = "configs/crisp_fid300.yaml"
CRISP_MODEL = "crisp-encoder-fid300"
WEIGHTS = "matcher.pt"
CRISP_DIR = "crisp"


def _run_root(model_dir: str) -> str:
    return os.path.abspath(os.path.dirname(model_dir.rstrip("/")) or ".")


def _reused(path: str, exists: bool, model_dir: str) -> str:
    """A previous run's result, or a clear refusal when it never finished."""
    if not exists:
        raise ConfigError(f"--model {model_dir}: no {os.path.basename(path)} (run once without "
                          "--model)")
    return path


def _train(module: str, config: str, model_dir: str, run_name: str, *overrides: str) -> str:
    """Run one training job as a user would (its own process, Ray Train, MLflow in the run's
    folder); returns the MLflow tracking URI it wrote to."""
    root = _run_root(model_dir)
    tracking = f"sqlite:///{root}/mlflow.db"
    subprocess.run([sys.executable, "-m", module, "--config", config, *overrides,
                    f"ray.storage_path={root}/ray", f"ray.run_name={run_name}",
                    f"mlflow.tracking_uri={tracking}"], check=True)
    return tracking


def train_matcher_weights(data: FidData, model_dir: str, steps: int, reuse: bool) -> str:
    """The fine-tuned matcher file in `model_dir`: trained now unless reusing a finished run."""
    weights = os.path.abspath(os.path.join(model_dir, WEIGHTS))
    if reuse:
        return _reused(weights, os.path.isfile(weights), model_dir)
    _train("jobs.train_matcher", CONFIG, model_dir, f"matcher-{steps}", f"data.refdb={data.refdb}",
           f"finetune.steps={steps}", f"export={weights}")
    return weights


def train_crisp_encoder(data: FidData, model_dir: str, steps: int, reuse: bool) -> str:
    """CriSp (EfficientNet-Lite0, ImageNet-initialised) trained on the references: its folder."""
    target = os.path.abspath(os.path.join(model_dir, CRISP_DIR))
    if reuse:
        return _reused(target, os.path.isdir(target), model_dir)
    tracking = _train("jobs.train_crisp", CRISP_CONFIG, model_dir, f"crisp-{steps}",
                      f"data.refdb={data.refdb}", f"data.val_queries={data.queries}",
                      f"optim.steps={steps}", f"mlflow.registered_model={CRISP_MODEL}")
    os.environ["MLFLOW_TRACKING_URI"] = tracking
    loaded = load_encoder(f"models:/{CRISP_MODEL}@current")
    save_encoder(target, loaded.model, loaded.config, loaded.info)
    return target
