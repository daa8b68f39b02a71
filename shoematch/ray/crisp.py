"""CriSp training on Ray: the Ray Data pipeline that feeds the DDP workers, and the entry point
the job and the benchmarks call."""

from __future__ import annotations

import pyarrow as pa
import ray

from shoematch.crisp.config import CrispTrainConfig
from shoematch.crisp.data import (
    AugmentPairs,
    ClassRows,
    class_rows,
    label_column,
    partition_classes,
    read_classes,
)
from shoematch.crisp.job import CrispJob
from shoematch.data.dataset import open_dataset
from shoematch.data.schema import REFERENCE_KIND
from shoematch.errors import DatasetError
from shoematch.log import get_logger
from shoematch.ray.train import TrainStream, run_training
from shoematch.training.job import TrainOutcome
from shoematch.training.passes import plan_passes

log = get_logger(__name__)


@ray.remote
def _read_classes(refdb_uri: str, classes: ClassRows) -> pa.Table:
    return read_classes(open_dataset(refdb_uri, REFERENCE_KIND), classes)


def build_train_stream(config: CrispTrainConfig) -> TrainStream:
    """Ray Data: one row per class of the train split → per pass: `epochs` copies of those
    rows in a new block order, pick pairs, decode + Aug on actors that live for the whole pass
    (`shoematch.training.passes`).

    The rows per class are built without a Ray Data groupby: its hash shuffle (every image
    through shuffle actors) once aborted a worker natively ("Mutex corrupt", SIGABRT) in the
    demo, and is the costliest way to group rows that a writer stored together. The driver
    reads the label column, and one task per run of classes reads the shards they are in.
    """

    ray.data.DataContext.get_current().enable_progress_bars = False
    refdb = open_dataset(config.data.refdb, REFERENCE_KIND)
    label_field = label_column(config.data.label)
    layout = class_rows(refdb, label_field, config.data.train_split)
    count, needed = len(layout), config.ray.num_workers * config.optim.batch_models
    if count < needed:
        raise DatasetError(f"{config.data.refdb}: {count} training classes ({label_field}), but "
                           f"{config.ray.num_workers} workers × batch_models "
                           f"{config.optim.batch_models} need at least {needed}")
    partitions = config.ray.group_partitions or len(refdb.manifest.shards)
    # `.remote` returns the Cython ObjectRef; Ray's types want its alias in ray.types.
    classes = ray.data.from_arrow_refs(
        [_read_classes.remote(refdb.uri, group)  # type: ignore[misc]
         for group in partition_classes(layout, partitions)])
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
