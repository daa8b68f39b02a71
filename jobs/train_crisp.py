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

import argparse
import os
import tempfile
import time
from dataclasses import dataclass

import torch

from jobs.common import init_ray, log, run_main
from shoematch.config import dump_config, flatten, load_config
from shoematch.data.dataset import open_dataset
from shoematch.data.schema import QUERY_KIND, REFERENCE_KIND
from shoematch.errors import DatasetError
from shoematch.model_store import load_encoder, save_encoder
from shoematch.training.crisp_config import CrispTrainConfig

STATE = "train_state.pt"


def parse_args(argv: list[str] | None) -> tuple[CrispTrainConfig, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m jobs.train_crisp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML config (see configs/)")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    args = parser.parse_args(argv)
    return load_config(CrispTrainConfig, args.config, args.overrides), args


def check_inputs(config: CrispTrainConfig) -> dict:
    """Fail before any cluster work on missing data or an empty split; returns provenance."""
    refdb = open_dataset(config.data.refdb, REFERENCE_KIND)
    splits = refdb.read_table(["split"]).column("split").to_pylist()
    if config.data.train_split not in splits:
        raise DatasetError(f"{config.data.refdb}: no records with split "
                           f"{config.data.train_split!r} (found {sorted(set(splits))})")
    info = {"refdb_manifest_sha256": refdb.manifest.digest(), "refdb_count": len(refdb)}
    if config.data.val_queries:
        queries = open_dataset(config.data.val_queries, QUERY_KIND)
        table = queries.read_table(["split"])
        wanted = [s for s in table.column("split").to_pylist()
                  if config.data.val_split is None or s == config.data.val_split]
        if not wanted:
            raise DatasetError(f"{config.data.val_queries}: validation set is empty "
                               f"(no queries with split {config.data.val_split!r})")
        info["val_manifest_sha256"] = queries.manifest.digest()
        info["val_queries"] = len(wanted)
    return info


def absolute(path: str) -> str:
    return path if "://" in path else os.path.abspath(path)


def build_train_dataset(config: CrispTrainConfig):
    """Ray Data: read → keep the train split → one row per class (materialised once, before
    training takes the CPUs) → per epoch: shuffle blocks, pick pairs, decode + Aug on actors."""
    import pyarrow.compute as pc
    import ray

    from shoematch.training.batches import AugmentPairs
    from shoematch.training.pairs import collect_group, label_column

    ray.data.DataContext.get_current().enable_progress_bars = False
    refdb = open_dataset(config.data.refdb, REFERENCE_KIND)
    label_field = label_column(config.data.label)
    split = config.data.train_split
    classes = (
        ray.data.read_parquet(refdb.shard_paths, filesystem=refdb.store.fs,
                              columns=["split", label_field, "depth", "print", "mask"])
        .map_batches(lambda t: t.filter(pc.equal(t["split"], split)), batch_format="pyarrow")
        .groupby(label_field)
        .map_groups(lambda group: collect_group(group, label_field), batch_format="pyarrow")
        .materialize()
    )
    count, needed = classes.count(), config.ray.num_workers * config.optim.batch_models
    if count < needed:
        raise DatasetError(f"{config.data.refdb}: {count} training classes ({label_field}), but "
                           f"{config.ray.num_workers} workers × batch_models "
                           f"{config.optim.batch_models} need at least {needed}")
    log.info("training classes: %d (%s)", count, label_field)
    return classes.randomize_block_order().map_batches(
        AugmentPairs,
        fn_constructor_kwargs={"aug": config.aug.model_dump()},
        batch_size=config.ray.aug_batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=config.ray.aug_actors),
        num_gpus=1 if config.ray.use_gpu else 0,
        num_cpus=config.ray.aug_actor_cpus,
    )


def make_optimizer(config: CrispTrainConfig, params) -> torch.optim.Optimizer:
    optim = config.optim
    if optim.optimizer == "sgd":
        return torch.optim.SGD(params, lr=optim.lr, momentum=0.9, weight_decay=optim.weight_decay)
    cls = torch.optim.AdamW if optim.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=optim.lr, weight_decay=optim.weight_decay)


def learning_rate(config: CrispTrainConfig, step: int) -> float:
    warmup = config.optim.warmup_steps
    return config.optim.lr * (min(1.0, (step + 1) / warmup) if warmup else 1.0)


def record_placement(client, run_id: str, world: int) -> None:
    """Tag the MLflow run with each rank's Ray node id (rank order), again after a restart:
    the record of where the DDP workers ran. A collective: every rank calls it."""
    import ray
    import torch.distributed as dist

    nodes = [ray.get_runtime_context().get_node_id()]
    if dist.is_initialized():
        nodes = [None] * world
        dist.all_gather_object(nodes, ray.get_runtime_context().get_node_id())
    if client is not None:
        client.set_tag(run_id, "worker_nodes", ",".join(nodes))
        names = {n["NodeID"]: next((r for r in n["Resources"] if r.startswith("worker_")), "")
                 for n in ray.nodes()}  # the local cluster names its worker nodes by resource
        print("DDP placement: " + ", ".join(f"rank {rank} on node {node[:12]} {names.get(node, '')}"
                                            .rstrip() for rank, node in enumerate(nodes)),
              flush=True)


def train_loop(loop_config: dict) -> None:
    """Runs on every Ray Train worker."""
    import mlflow
    import ray.train
    import ray.train.torch

    from shoematch.models.crisp import CrispEncoder
    from shoematch.retrieval.evaluation import evaluate_encoder
    from shoematch.training.crisp_step import crisp_loss

    config = CrispTrainConfig.model_validate(loop_config["config"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(config.optim.seed)
    model = ray.train.torch.prepare_model(CrispEncoder(**config.model.model_dump()))
    optimizer = make_optimizer(config, model.parameters())
    step = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as directory:
            state = torch.load(os.path.join(directory, STATE), map_location=device,
                               weights_only=True)
        getattr(model, "module", model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        if rank == 0:
            print(f"resumed from checkpoint at step {step}", flush=True)
    generator = torch.Generator().manual_seed(config.optim.seed * 100003 + rank * 997 + step)
    client = None
    if rank == 0:
        mlflow.set_tracking_uri(loop_config["tracking_uri"])
        client = mlflow.MlflowClient()
    run_id = loop_config["run_id"]
    record_placement(client, run_id, world)

    def validate() -> dict:
        if not config.data.val_queries:
            return {}
        unwrapped = getattr(model, "module", model)
        k = config.schedule.val_k
        report = evaluate_encoder(unwrapped, open_dataset(config.data.refdb),
                                  open_dataset(config.data.val_queries), device,
                                  split=config.data.val_split, k=k,
                                  mask_queries=config.model.pooling == "spatial")["overall"]
        unwrapped.train()
        return {f"val_hit_at_{k}": report[f"hit@{k}"], f"val_map_at_{k}": report[f"mAP@{k}"]}

    shard = ray.train.get_dataset_shard("train")
    batch_models = config.optim.batch_models
    steps, window_images, window_start = config.optim.steps, 0, time.monotonic()
    model.train()
    while step < steps:
        epoch_start = step
        for batch in shard.iter_torch_batches(batch_size=config.optim.batch_models,
                                              drop_last=True, device=device,
                                              local_shuffle_buffer_size=4 * batch_models):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, step)
            loss, images = crisp_loss(model, batch, config.masking, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            window_images += images * world
            metrics = {"loss": float(loss.detach()), "lr": learning_rate(config, step - 1),
                       "step": step}
            if step % config.schedule.log_every == 0 or step == steps:
                elapsed = time.monotonic() - window_start
                metrics["images_per_s"] = window_images / max(elapsed, 1e-9)
                window_images, window_start = 0, time.monotonic()
                if client is not None:
                    for key in ("loss", "lr", "images_per_s"):
                        client.log_metric(run_id, key, metrics[key], step=step)
                    print(f"step {step}/{steps} loss {metrics['loss']:.4f} "
                          f"{metrics['images_per_s']:.1f} img/s", flush=True)
            if step % config.schedule.checkpoint_every == 0 or step == steps:
                val_due = step == steps or (config.schedule.val_every
                                            and step % config.schedule.val_every == 0)
                if rank == 0 and val_due:
                    metrics.update(validate())
                    for key, value in metrics.items():
                        if key.startswith("val_"):
                            client.log_metric(run_id, key, value, step=step)
                with tempfile.TemporaryDirectory() as directory:
                    saved = None
                    if rank == 0:
                        unwrapped = getattr(model, "module", model)
                        torch.save({"model": unwrapped.state_dict(),
                                    "optimizer": optimizer.state_dict(), "step": step},
                                   os.path.join(directory, STATE))
                        save_encoder(os.path.join(directory, "encoder"), unwrapped,
                                     config.model, {"step": step, "run_id": run_id})
                        saved = ray.train.Checkpoint.from_directory(directory)
                    ray.train.report(metrics, checkpoint=saved,
                                     checkpoint_dir_name=f"step_{step:07d}")
            if step >= steps:
                break
        if step == epoch_start:
            raise RuntimeError("an epoch produced no full batch on this worker")


@dataclass
class TrainOutcome:
    model_uri: str
    checkpoint: str
    metrics: dict


def with_absolute_paths(config: CrispTrainConfig) -> CrispTrainConfig:
    """Workers run in other directories (and on other nodes): hand them absolute paths."""
    config = config.model_copy(deep=True)
    config.data.refdb = absolute(config.data.refdb)
    if config.data.val_queries:
        config.data.val_queries = absolute(config.data.val_queries)
    if config.model.pretrained:
        config.model.pretrained = absolute(config.model.pretrained)
    config.ray.storage_path = absolute(config.ray.storage_path)
    return config


def train(config: CrispTrainConfig) -> TrainOutcome:
    """Check inputs, train on the Ray cluster, register the encoder in MLflow."""
    config = with_absolute_paths(config)
    provenance = check_inputs(config)
    from shoematch import tracking

    tracking_uri = tracking.configure(config.mlflow.tracking_uri, config.mlflow.experiment)
    params = {**flatten(config), **provenance, "git_commit": tracking.git_commit()}
    run_id = tracking.find_or_create_run(config.ray.run_name, params,
                                         {"job": "train_crisp"})
    init_ray()
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"config": config.model_dump(mode="json"), "run_id": run_id,
                           "tracking_uri": tracking_uri},
        scaling_config=ray.train.ScalingConfig(
            num_workers=config.ray.num_workers, use_gpu=config.ray.use_gpu,
            resources_per_worker={"CPU": config.ray.cpus_per_worker}),
        torch_config=TorchConfig(backend="nccl" if config.ray.use_gpu else "gloo"),
        run_config=ray.train.RunConfig(
            name=config.ray.run_name, storage_path=config.ray.storage_path,
            failure_config=ray.train.FailureConfig(max_failures=config.ray.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=3)),
        datasets={"train": build_train_dataset(config)},
    )
    log.info("training %s: %d workers, %d steps; config:\n%s", config.ray.run_name,
             config.ray.num_workers, config.optim.steps, dump_config(config))
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError("training finished without a checkpoint")
    with result.checkpoint.as_directory() as directory:
        encoder_dir = os.path.join(directory, "encoder")
        load_encoder(encoder_dir)  # fail here, not at serving time, if it does not load
        model_uri = tracking.log_and_register(run_id, encoder_dir, "encoder",
                                              config.mlflow.registered_model)
    import mlflow

    final = {k: v for k, v in (result.metrics or {}).items() if isinstance(v, int | float)}
    mlflow.MlflowClient().log_metric(run_id, "final_step", final.get("step", 0))
    mlflow.MlflowClient().set_terminated(run_id)
    return TrainOutcome(model_uri, result.checkpoint.path, final)


def main(argv: list[str] | None = None) -> int:
    config, _ = parse_args(argv)
    outcome = train(config)
    print(f"model: {outcome.model_uri}")
    print(f"checkpoint: {outcome.checkpoint}")
    for key, value in sorted(outcome.metrics.items()):
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    return 0


if __name__ == "__main__":
    run_main(main)
