"""CriSp training on Ray: the Ray Data pipeline that feeds the DDP workers, and the entry point
the job and the benchmarks call."""

from __future__ import annotations

import pyarrow.compute as pc
import ray

from shoematch.crisp.config import CrispTrainConfig
from shoematch.crisp.data import AugmentPairs, collect_group, label_column
from shoematch.crisp.job import CrispJob
from shoematch.data.dataset import open_dataset
from shoematch.data.schema import REFERENCE_KIND
from shoematch.errors import DatasetError
from shoematch.log import get_logger
from shoematch.ray.train import TrainStream, run_training
from shoematch.training.job import TrainOutcome
from shoematch.training.passes import plan_passes

log = get_logger(__name__)


def build_train_stream(config: CrispTrainConfig) -> TrainStream:
    """Ray Data: read → keep the train split → one row per class (materialised once, before
    training takes the CPUs) → per pass: `epochs` copies of those rows in a new block order,
    pick pairs, decode + Aug on actors that live for the whole pass (`shoematch.training.passes`).
    """

    ray.data.DataContext.get_current().enable_progress_bars = False
    refdb = open_dataset(config.data.refdb, REFERENCE_KIND)
    label_field = label_column(config.data.label)
    split = config.data.train_split
    classes = (
        ray.data.read_parquet(refdb.shard_paths, filesystem=refdb.store.fs)
        .select_columns(["split", label_field, "depth", "print", "mask"])  # pushed into the read
        .map_batches(lambda t: t.filter(pc.equal(t["split"], split)), batch_format="pyarrow")
        .groupby(label_field, num_partitions=config.ray.group_partitions)
        .map_groups(lambda group: collect_group(group, label_field), batch_format="pyarrow")
        .materialize()
    )
    count, needed = classes.count(), config.ray.num_workers * config.optim.batch_models
    if count < needed:
        raise DatasetError(f"{config.data.refdb}: {count} training classes ({label_field}), but "
                           f"{config.ray.num_workers} workers × batch_models "
                           f"{config.optim.batch_models} need at least {needed}")
    plan = plan_passes(count, classes.num_blocks(), config.ray.num_workers,
                       config.optim.batch_models, config.optim.steps, distinct="label",
                       epochs=config.ray.epochs_per_pass)
    log.info("training classes: %d (%s); %d epoch(s) per pass, %d steps per pass", count,
             label_field, plan.epochs, plan.batches)
    passes = ray.data.from_arrow_refs(classes.to_arrow_refs() * plan.epochs) \
        if plan.epochs > 1 else classes
    dataset = passes.randomize_block_order().map_batches(
        AugmentPairs,
        fn_constructor_kwargs={"aug": config.aug.model_dump()},
        batch_size=config.ray.aug_batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=config.ray.aug_actors),
        num_gpus=config.ray.aug_actor_gpus if config.ray.use_gpu else 0,
        num_cpus=config.ray.aug_actor_cpus,
    )
    return TrainStream(dataset, plan)


def train_crisp(config: CrispTrainConfig, tags: dict[str, str] | None = None) -> TrainOutcome:
    """Check inputs, train the encoder on the Ray cluster, register it in MLflow."""
    job = CrispJob(config)
    return run_training(job, lambda: build_train_stream(job.config), tags)
