"""The re-index executor on Ray Data: an actor pool of encoders (one GPU each when the cluster
has GPUs), then one reduce task per index shard writing it."""

from __future__ import annotations

from dataclasses import dataclass

import ray

from shoematch.index.build import READ_COLUMNS, SHARD, EncodeBatch, entries_from, write_group
from shoematch.index.layout import ShardEntry
from shoematch.index.reindex import ReindexPlan, select_rows
from shoematch.ray.cluster import init_ray


@dataclass
class RayDataExecutor:
    actors: int = 0  # encoder actors; 0: one per GPU, else one per CPU
    actor_cpus: float = 0.5  # fractional, so the listing and read tasks always find a free CPU

    def encode(self, plan: ReindexPlan) -> tuple[list[ShardEntry], int]:

        init_ray()
        ray.data.DataContext.get_current().enable_progress_bars = False
        settings, refdb = plan.settings, plan.refdb
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        actors = self.actors or gpus or max(1, int(resources.get("CPU", 1)))
        # Blocks of one encoder batch each: a whole Parquet file in one block would go to one
        # actor.
        ds = (ray.data.read_parquet(refdb.shard_paths, filesystem=refdb.store.fs, num_cpus=0.25)
              .select_columns(READ_COLUMNS)
              .repartition(target_num_rows_per_block=settings.batch_size))
        # Ray types a batch function as taking the batch alone, not the `fn_kwargs` it is given.
        if plan.update is not None:
            ds = ds.map_batches(select_rows,  # type: ignore[arg-type]
                                fn_kwargs={"wanted": plan.wanted_ids}, batch_format="pyarrow")
        encoded = ds.map_batches(
            EncodeBatch,
            fn_constructor_kwargs=plan.encoder_kwargs("cuda" if gpus else "cpu"),
            batch_size=settings.batch_size, batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_gpus=1 if gpus else 0, num_cpus=self.actor_cpus,
        )
        # One partition per index shard: each reduce task writes exactly one shard.
        written = encoded.groupby(SHARD, num_partitions=settings.shards).map_groups(
            write_group,  # type: ignore[arg-type]  # fn_kwargs, as above
            fn_kwargs={"root": settings.out, "version": plan.version, "dtype": settings.dtype},
            batch_format="pyarrow")
        entries = entries_from(written.iter_batches(batch_format="pyarrow", batch_size=None))
        return entries, sum(entry.rows for entry in entries)
