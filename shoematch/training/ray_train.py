"""What every Ray Train (V2) job of this project shares: the cluster section of its config,
absolute paths for workers, resuming from the last checkpoint, reporting rank 0's checkpoint,
and building the TorchTrainer (gloo on CPU, nccl on GPUs)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

import torch
from pydantic import Field

from shoematch.config import StrictModel

STATE = "train_state.pt"


class TrainRayConfig(StrictModel):
    num_workers: int = Field(2, ge=1)
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)
    storage_path: str = Field("runs/ray", description="checkpoints: a directory or s3://")
    run_name: str
    max_failures: int = Field(2, ge=-1)


def absolute(path: str) -> str:
    """Workers run in other directories (and on other nodes): local paths made absolute."""
    return path if "://" in path else os.path.abspath(path)


def resume_state(device: torch.device) -> dict[str, Any] | None:
    """The training state saved in the run's last checkpoint (None on a fresh start)."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if not checkpoint:
        return None
    with checkpoint.as_directory() as directory:
        return torch.load(os.path.join(directory, STATE), map_location=device, weights_only=True)


def save_state(directory: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               step: int) -> None:
    torch.save({"model": getattr(model, "module", model).state_dict(),
                "optimizer": optimizer.state_dict(), "step": step},
               os.path.join(directory, STATE))


def report(metrics: dict[str, Any], step: int, save: Callable[[str], None] | None) -> None:
    """Report metrics from every worker; `save` (rank 0 only) fills the checkpoint directory."""
    import ray.train

    with tempfile.TemporaryDirectory() as directory:
        checkpoint = None
        if save is not None:
            save(directory)
            checkpoint = ray.train.Checkpoint.from_directory(directory)
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=f"step_{step:07d}")


def fit(train_loop: Callable[[dict], None], loop_config: dict[str, Any],
        config: TrainRayConfig):
    """Run `train_loop` on `config.num_workers` DDP workers; returns the Ray Train Result."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    trainer = TorchTrainer(
        train_loop,
        train_loop_config=loop_config,
        scaling_config=ray.train.ScalingConfig(
            num_workers=config.num_workers, use_gpu=config.use_gpu,
            resources_per_worker={"CPU": config.cpus_per_worker}),
        torch_config=TorchConfig(backend="nccl" if config.use_gpu else "gloo"),
        run_config=ray.train.RunConfig(
            name=config.run_name, storage_path=absolute(config.storage_path),
            failure_config=ray.train.FailureConfig(max_failures=config.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2)),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError("training finished without a checkpoint")
    return result
