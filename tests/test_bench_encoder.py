"""The encoder benchmark's quality check trains CriSp in process through the same `train_steps`
as the jobs: its batch source must keep to their `Batches` contract, or the benchmark breaks
while every job still passes (as it once did)."""

from __future__ import annotations

import torch

from benchmarks.bench_encoder import local_batches
from shoematch.crisp.config import CrispTrainConfig
from shoematch.crisp.model import CrispEncoder
from shoematch.crisp.training import make_optimizer, train_steps


def test_in_process_batches_train_crisp(tiny_refs):
    config = CrispTrainConfig.model_validate({
        "data": {"refdb": f"{tiny_refs}/references", "label": "model"},
        "model": {"arch": "resnet18", "embed_dim": 16},
        "optim": {"steps": 3, "batch_models": 4}, "ray": {}, "mlflow": {}})
    batches = local_batches(config.data.refdb, config)
    first = next(iter(batches()))
    assert len(set(first["label"].tolist())) == 4  # four classes, two images each
    model = CrispEncoder(**config.model.model_dump())
    losses: list[float] = []
    train_steps(model, make_optimizer(config, model.parameters()), batches, config,
                on_step=lambda step, metrics, images: losses.append(metrics["loss"]))
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
