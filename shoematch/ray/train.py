"""The one training skeleton on Ray Train (V2): the driver every job runs and, on each DDP
worker, the loop around a model's Ray-free `train_steps`.

Driver: input checks → MLflow run (continued on re-submission) → `TorchTrainer` (gloo on CPU,
nccl on GPUs) → evaluate and register the final model → end the run. Worker: build the model,
wrap it for DDP, resume from `get_checkpoint()`, then `StepReporter` after every step —
throughput, rank-0 MLflow metrics and progress line, a checkpoint every
`schedule.checkpoint_every` steps and at the last one.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import ray
import ray.train
import ray.train.torch
import torch
from ray.train.torch import TorchConfig, TorchTrainer
from torch import nn

from shoematch import tracking
from shoematch.config import dump_config, flatten
from shoematch.errors import TrainingError
from shoematch.log import get_logger
from shoematch.ray.cluster import init_ray
from shoematch.training.config import TrainRayConfig
from shoematch.training.job import Batches, TrainJob, TrainOutcome
from shoematch.training.passes import PassPlan, distinct_batches

log = get_logger(__name__)
STATE = "train_state.pt"


def resume_state(device: torch.device) -> dict[str, Any] | None:
    """The training state saved in the run's last checkpoint (None on a fresh start)."""

    checkpoint = ray.train.get_checkpoint()
    if not checkpoint:
        return None
    with checkpoint.as_directory() as directory:
        return torch.load(os.path.join(directory, STATE), map_location=device, weights_only=True)


def save_state(directory: str, model: nn.Module, optimizer: torch.optim.Optimizer,
               step: int) -> None:
    torch.save({"model": getattr(model, "module", model).state_dict(),
                "optimizer": optimizer.state_dict(), "step": step},
               os.path.join(directory, STATE))


def report(metrics: dict[str, Any], step: int, save: Callable[[str], None] | None) -> None:
    """Report metrics from every worker; `save` (rank 0 only) fills the checkpoint directory."""

    with tempfile.TemporaryDirectory() as directory:
        checkpoint = None
        if save is not None:
            save(directory)
            checkpoint = ray.train.Checkpoint.from_directory(directory)
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=f"step_{step:07d}")


class StepReporter:
    """`on_step` for every model: images/s over each logging window, rank 0's MLflow metrics and
    progress line every `schedule.log_every` steps, a checkpoint (with rank 0's validation) every
    `schedule.checkpoint_every` steps and at the last step."""

    def __init__(self, job: TrainJob, model: nn.Module, optimizer: torch.optim.Optimizer,
                 device: torch.device, rank: int, world: int, client: Any, run_id: str) -> None:
        self.job, self.model, self.optimizer, self.device = job, model, optimizer, device
        self.rank, self.world, self.client, self.run_id = rank, world, client, run_id
        self.steps = job.steps
        self.schedule = job.config.schedule
        self.window_start, self.window_images = time.monotonic(), 0

    def __call__(self, step: int, losses: dict[str, float], images: int) -> None:
        self.window_images += images * self.world
        metrics = {**losses, "lr": self.optimizer.param_groups[0]["lr"], "step": step}
        last = step == self.steps
        if step % self.schedule.log_every == 0 or last:
            self.log_window(step, metrics)
        if step % self.schedule.checkpoint_every == 0 or last:
            self.checkpoint(step, metrics)

    def log_window(self, step: int, metrics: dict[str, float]) -> None:
        rate = self.window_images / max(time.monotonic() - self.window_start, 1e-9)
        self.window_start, self.window_images = time.monotonic(), 0
        if self.client is None:
            return
        for key, value in {**metrics, "images_per_s": rate}.items():
            if key != "step":
                self.client.log_metric(self.run_id, key, value, step=step)
        print(f"step {step}/{self.steps} loss {metrics['loss']:.4f} {rate:.1f} img/s", flush=True)

    def checkpoint(self, step: int, metrics: dict[str, float]) -> None:
        """A collective: every rank reports, rank 0 validates and writes the checkpoint."""
        save = None
        if self.rank == 0:
            unwrapped = getattr(self.model, "module", self.model)
            validation = self.job.validate(unwrapped, self.device, step)
            for key, value in validation.items():
                self.client.log_metric(self.run_id, key, value, step=step)
            metrics = {**metrics, **validation}

            def save(directory: str) -> None:
                save_state(directory, self.model, self.optimizer, step)
                self.job.save_model(os.path.join(directory, self.job.model_dir), self.model,
                                    {"step": step, "run_id": self.run_id})
        report(metrics, step, save)


def record_placement(client: Any, run_id: str, world: int) -> None:
    """Tag the MLflow run with each rank's Ray node id (rank order), again after a restart:
    the record of where the DDP workers ran. A collective: every rank calls it."""
    import torch.distributed as dist

    nodes = [ray.get_runtime_context().get_node_id()]
    if dist.is_initialized():
        nodes = [""] * world  # every entry filled by the gather
        dist.all_gather_object(nodes, ray.get_runtime_context().get_node_id())
    if client is not None:
        client.set_tag(run_id, "worker_nodes", ",".join(nodes))
        names = {n["NodeID"]: next((r for r in n["Resources"] if r.startswith("worker_")), "")
                 for n in ray.nodes()}  # the local cluster names its worker nodes by resource
        print("DDP placement: " + ", ".join(f"rank {rank} on node {node[:12]} {names.get(node, '')}"
                                            .rstrip() for rank, node in enumerate(nodes)),
              flush=True)


@dataclass(frozen=True)
class TrainStream:
    """A job's streamed training data: the Ray dataset of one pass, and how workers batch it."""

    dataset: Any
    plan: PassPlan


def shard_batches(device: torch.device, plan: PassPlan) -> Batches:
    """This worker's passes over the "train" dataset the job streams through Ray Data: exactly
    `plan.batches` batches of distinct classes from each (the rest of a pass is left unread)."""

    shard = ray.train.get_dataset_shard("train")

    def one_pass() -> Iterator[dict[str, torch.Tensor]]:
        rows = shard.iter_batches(batch_size=plan.batch_size, batch_format="numpy",
                                  local_shuffle_buffer_size=4 * plan.batch_size)
        batches = distinct_batches(rows, plan.batch_size, plan.distinct)
        for batch in itertools.islice(batches, plan.batches):
            yield {name: torch.from_numpy(values).to(device) for name, values in batch.items()}

    return one_pass


def train_worker(loop_config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker: resume, then the job's own steps under a StepReporter."""
    import mlflow

    job: TrainJob = loop_config["job"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(job.seed)
    net = job.build_model()
    model = ray.train.torch.prepare_model(net)  # on its device before the optimizer state
    optimizer = job.build_optimizer(net)
    start = 0
    state = resume_state(device)
    if state:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
        if rank == 0:
            print(f"resumed from checkpoint at step {start}", flush=True)
    client = mlflow.MlflowClient(loop_config["tracking_uri"]) if rank == 0 else None
    run_id = loop_config["run_id"]
    record_placement(client, run_id, world)
    reporter = StepReporter(job, model, optimizer, device, rank, world, client, run_id)
    if start == 0 and job.steps == 0:  # an untrained baseline: checkpoint it
        reporter.checkpoint(0, {"step": 0})
    plan = loop_config["plan"]
    batches = shard_batches(device, plan) if plan is not None else None
    job.train_steps(model, optimizer, device, rank, world, start, reporter, batches)


def worker_resources(config: TrainRayConfig) -> dict[str, float]:
    """One DDP worker's Ray resources: its CPUs, and its share of one GPU when use_gpu."""
    if config.use_gpu:
        return {"CPU": config.cpus_per_worker, "GPU": config.gpus_per_worker}
    return {"CPU": config.cpus_per_worker}


def fit(loop_config: dict[str, Any], config: TrainRayConfig, stream: TrainStream | None):
    """Run `train_worker` on `config.num_workers` DDP workers; returns the Ray Train Result."""

    trainer = TorchTrainer(
        train_worker,
        train_loop_config=loop_config,
        scaling_config=ray.train.ScalingConfig(
            num_workers=config.num_workers, use_gpu=config.use_gpu,
            resources_per_worker=worker_resources(config)),
        torch_config=TorchConfig(backend="nccl" if config.use_gpu else "gloo"),
        run_config=ray.train.RunConfig(
            name=config.run_name, storage_path=config.storage_path,
            failure_config=ray.train.FailureConfig(max_failures=config.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2)),
        datasets={"train": stream.dataset} if stream else None,
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise TrainingError(f"run {config.run_name!r} under {config.storage_path} finished "
                            "without a checkpoint")
    return result


def run_training(job: TrainJob, stream: Callable[[], TrainStream] | None = None,
                 tags: dict[str, str] | None = None) -> TrainOutcome:
    """Check inputs, train on the Ray cluster, evaluate, register the model in MLflow.

    `stream` builds the job's Ray Data input once Ray is up (after the input checks); `tags`
    go on a new MLflow run (a sweep's parent run, say)."""
    import mlflow

    config = job.config
    provenance = job.check_inputs()
    tracking_uri = tracking.configure(config.mlflow.tracking_uri, config.mlflow.experiment)
    params = {**flatten(config), **provenance, "git_commit": tracking.git_commit()}
    run_id = tracking.find_or_create_run(config.ray.run_name, params,
                                         {"job": job.name, **(tags or {})})
    init_ray()
    log.info("training %s: %d workers, %d steps; config:\n%s", config.ray.run_name,
             config.ray.num_workers, job.steps, dump_config(config))
    train_stream = stream() if stream else None
    result = fit({"job": job, "run_id": run_id, "tracking_uri": tracking_uri,
                  "plan": train_stream.plan if train_stream else None}, config.ray, train_stream)
    client = mlflow.MlflowClient()
    with result.checkpoint.as_directory() as directory, tempfile.TemporaryDirectory() as scratch:
        model_dir, evaluation = job.finish(client, run_id, os.path.join(directory, job.model_dir),
                                        scratch)
        model_uri = tracking.log_and_register(run_id, model_dir, job.model_dir,
                                              config.mlflow.registered_model)
    metrics = {k: v for k, v in (result.metrics or {}).items() if isinstance(v, int | float)}
    client.log_metric(run_id, "final_step", metrics.get("step", 0))
    client.set_terminated(run_id)
    return TrainOutcome(model_uri, result.checkpoint.path, metrics, evaluation)
