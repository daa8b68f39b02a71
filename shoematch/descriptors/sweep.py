"""The preprocessing × channel-composition sweep: one single-process training per setting, run
as parallel Ray tasks by jobs.sweep_descriptors (or in-process by `run_trial`)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from shoematch.data.dataset import open_dataset
from shoematch.descriptors.config import DescriptorTrainConfig
from shoematch.descriptors.data import load_part
from shoematch.descriptors.model import DescriptorNet
from shoematch.descriptors.report import score_model
from shoematch.descriptors.training import make_optimizer, train_steps


def setting_name(preprocess: str, channels: str) -> str:
    return f"{preprocess}/{'-'.join(channels)}"


def run_trial(config: dict[str, Any], preprocess: str, channels: str,
              pos_weight: list[float], threads: int = 1) -> dict[str, Any]:
    """Train and score one setting; returns its PR-AUC per descriptor and mean."""
    torch.set_num_threads(threads)
    started = time.monotonic()
    trial = DescriptorTrainConfig.model_validate(config)
    trial.model.preprocess, trial.model.channels = preprocess, channels
    torch.manual_seed(trial.optim.seed)
    refdb = open_dataset(trial.data.refdb)
    parts = {part: load_part(refdb, trial.data, part, trial.model.input_size, channels)
             for part in ("train", "val", "eval")}
    model = DescriptorNet(**trial.model.model_dump())
    optimizer = make_optimizer(model, trial.optim)
    train_steps(model, optimizer, parts["train"], trial.optim,
                torch.as_tensor(np.asarray(pos_weight, dtype=np.float32)), torch.device("cpu"))
    scored = score_model(model, parts["val"], parts["eval"])
    return {"setting": setting_name(preprocess, channels), "preprocess": preprocess,
            "channels": channels, "pr_auc": scored["pr_auc"],
            "seconds": time.monotonic() - started}
