"""Re-index a reference db with a CriSp encoder into a new, versioned, sharded index.

    python -m jobs.reindex --model MODEL_URI|CHECKPOINT --refdb PATH|s3://… --out INDEX_ROOT \
        [--shards N] [--incremental] [--dtype float16|float32] [--dense [--dense-config …]]

Ray Data reads the reference shards, an actor pool of encoders (one GPU each when the cluster
has GPUs) computes the cells, and one task per index shard writes it. The new version becomes
current only after every shard and the manifest are written; a failure leaves the previous
version current (and removes this attempt's shards). `--incremental` encodes only records not
yet in the current version and lists its unchanged shards again. `--local` encodes in this
process (no Ray): the baseline for Ray's overhead and a laptop fallback. `--dense` also stores
each reference's dense feature maps (float16, `shards/<id>/dense_maps.npy`) for re-ranking,
computed by the same encoder actors.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import torch

from jobs.common import init_ray, log, run_main
from shoematch.data.dataset import Dataset, open_dataset
from shoematch.data.schema import REFERENCE_KIND
from shoematch.dense.component import dataset_px_per_cm, load_dense_config
from shoematch.errors import SearchIndexError, ShoematchError
from shoematch.index.build import (
    READ_COLUMNS,
    SHARD,
    EncodeBatch,
    IncrementalPlan,
    entries_from,
    input_digest,
    plan_incremental,
    rewrite_shard,
    write_group,
)
from shoematch.index.dense import dense_component
from shoematch.index.layout import (
    DenseComponent,
    IndexManifest,
    new_version_id,
    publish,
    read_current,
    read_manifest,
    shard_dir,
)
from shoematch.index.publish import build_manifest
from shoematch.model_store import LoadedEncoder, load_encoder
from shoematch.storage import Store, open_store


@dataclass
class ReindexResult:
    manifest: IndexManifest
    encoded: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.encoded / self.seconds if self.seconds > 0 else 0.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.reindex", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="encoder dir, checkpoint, s3:// or "
                        "MLflow models:/ or runs:/ URI")
    parser.add_argument("--refdb", required=True, help="reference db (dir or s3://)")
    parser.add_argument("--out", required=True, help="index root (dir or s3://)")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--incremental", action="store_true")
    parser.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--actors", type=int, default=0,
                        help="encoder actors (default: one per GPU, else one per CPU)")
    parser.add_argument("--actor-cpus", type=float, default=0.5,
                        help="CPUs reserved per CPU encoder actor (fractional, so the listing "
                             "and read tasks always find a free CPU)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per encoder actor (local mode: all cores)")
    parser.add_argument("--descriptor-model", help="fills descriptors of unlabelled references")
    parser.add_argument("--attribute-model",
                        help="fills attributes of unlabelled references and indexes "
                             "catalogue-photo features for photo search")
    parser.add_argument("--local", action="store_true", help="encode in this process, no Ray")
    parser.add_argument("--dense", action="store_true",
                        help="store dense feature maps per reference (re-ranking component)")
    parser.add_argument("--dense-config", nargs="+", default=[], metavar="YAML|KEY=VALUE",
                        help="DenseConfig: a YAML file and/or key=value items (with --dense)")
    args = parser.parse_args(argv)
    if args.shards < 1:
        parser.error("--shards must be ≥ 1")
    if args.dense_config and not args.dense:
        parser.error("--dense-config needs --dense")
    return args


def grid_of(encoder: LoadedEncoder, refdb: Dataset) -> tuple[tuple[int, int], int]:
    """Feature grid and channels for the reference canvas (one forward pass on zeros)."""
    with torch.no_grad():
        out = encoder.model(torch.zeros(1, 2, refdb.canvas.height, refdb.canvas.width))
    return (int(out.shape[2]), int(out.shape[3])), int(out.shape[1])


def check_label_models(args: argparse.Namespace) -> None:
    """Load the optional label models once here, so a bad URI fails before cluster work."""
    if args.descriptor_model:
        from shoematch.descriptors.predict import load_descriptor_model

        load_descriptor_model(args.descriptor_model)
    if args.attribute_model:
        from shoematch.attributes.predict import load_attribute_model

        load_attribute_model(args.attribute_model)


def wanted_digests(refdb: Dataset, dense: bool) -> dict[str, str]:
    table = refdb.read_table(["instance_id", "depth", "print"])
    return {iid: input_digest(d, p, dense) for iid, d, p in zip(
        table.column("instance_id").to_pylist(), table.column("depth").to_pylist(),
        table.column("print").to_pylist(), strict=True)}


def dense_request(args: argparse.Namespace, refdb: Dataset
                  ) -> tuple[dict | None, DenseComponent | None]:
    """The encoder actors' dense settings and the manifest's component (None without --dense);
    refuses a reference db of unknown physical scale before any cluster work."""
    if not args.dense:
        return None, None
    config = load_dense_config(args.dense_config)
    px_per_cm = dataset_px_per_cm(refdb)
    return ({"config": config.model_dump(mode="json"), "px_per_cm": px_per_cm},
            dense_component(config, refdb.canvas, px_per_cm))


def encode_with_ray(args: argparse.Namespace, refdb: Dataset, version: str,
                    new_ids: set[str] | None, dense: dict | None) -> tuple[list, int, float]:
    import ray

    init_ray()
    started = time.perf_counter()
    ray.data.DataContext.get_current().enable_progress_bars = False
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    actors = args.actors or gpus or max(1, int(resources.get("CPU", 1)))
    # Blocks of one encoder batch each: a whole Parquet file in one block would go to one actor.
    ds = (ray.data.read_parquet(refdb.shard_paths, filesystem=refdb.store.fs, num_cpus=0.25)
          .select_columns(READ_COLUMNS)
          .repartition(target_num_rows_per_block=args.batch_size))
    if new_ids is not None:
        wanted = pa.array(sorted(new_ids))
        ds = ds.map_batches(lambda t: t.filter(pc.is_in(t["instance_id"], wanted)),
                            batch_format="pyarrow")
    encoded = ds.map_batches(
        EncodeBatch,
        fn_constructor_kwargs={"model_uri": args.model, "shards": args.shards,
                               "dtype": args.dtype, "device": "cuda" if gpus else "cpu",
                               "threads": args.threads,
                               "descriptor_model": args.descriptor_model,
                               "attribute_model": args.attribute_model, "dense": dense},
        batch_size=args.batch_size, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=1 if gpus else 0, num_cpus=args.actor_cpus,
    )
    # One partition per index shard: each reduce task writes exactly one shard.
    written = encoded.groupby(SHARD, num_partitions=args.shards).map_groups(
        write_group, fn_kwargs={"root": args.out, "version": version, "dtype": args.dtype},
        batch_format="pyarrow")
    entries = entries_from(written.iter_batches(batch_format="pyarrow", batch_size=None))
    return entries, sum(entry.rows for entry in entries), time.perf_counter() - started


def encode_locally(args: argparse.Namespace, refdb: Dataset, version: str,
                   new_ids: set[str] | None, dense: dict | None) -> tuple[list, int, float]:
    """The same encoder and writer, one process, one batch at a time."""
    started = time.perf_counter()
    encoder = EncodeBatch(args.model, args.shards, args.dtype,
                          descriptor_model=args.descriptor_model,
                          attribute_model=args.attribute_model, dense=dense)
    table = refdb.read_table(READ_COLUMNS)
    if new_ids is not None:
        table = table.filter(pa.array([iid in new_ids for iid in
                                       table.column("instance_id").to_pylist()]))
    if table.num_rows == 0:
        return [], 0, time.perf_counter() - started
    encoded = pa.concat_tables(encoder(table.slice(start, args.batch_size))
                               for start in range(0, table.num_rows, args.batch_size))
    groups = [encoded.filter(pc.equal(encoded[SHARD], shard))
              for shard in sorted(set(encoded.column(SHARD).to_pylist()))]
    entries = entries_from(write_group(group, args.out, version, args.dtype)
                           for group in groups)
    return entries, encoded.num_rows, time.perf_counter() - started


def plan(args: argparse.Namespace, store: Store, refdb: Dataset, encoder: LoadedEncoder,
         dense: DenseComponent | None) -> tuple[IndexManifest | None, IncrementalPlan | None]:
    current = read_current(store)
    if not args.incremental:
        return (read_manifest(store, current) if current else None), None
    if current is None:
        raise SearchIndexError(f"{args.out}: no current index to update; run without "
                               "--incremental first")
    previous = read_manifest(store, current)
    built = (previous.model_uri, previous.dtype, previous.descriptor_model,
             previous.attribute_model)
    wanted = (encoder.uri, args.dtype, args.descriptor_model, args.attribute_model)
    if built != wanted:
        raise SearchIndexError(
            f"{args.out}: current version {current} was built with (model, dtype, descriptor "
            f"model, attribute model) = {built}; --incremental needs the same, got {wanted}; "
            "run a full re-index instead")
    if previous.dense != dense:
        raise SearchIndexError(
            f"{args.out}: current version {current} has dense component "
            f"{_describe_dense(previous.dense)}, this run asks for {_describe_dense(dense)}; "
            "--incremental needs the same (same --dense and --dense-config); run a full "
            "re-index instead")
    return previous, plan_incremental(store, previous.shards,
                                      wanted_digests(refdb, dense is not None))


def _describe_dense(dense: DenseComponent | None) -> str:
    return "none" if dense is None else \
        f"{dense.config} at {dense.px_per_cm:g} px/cm, grid {dense.grid}"


def reindex(args: argparse.Namespace) -> ReindexResult:
    # Everything that can be wrong with the inputs is found before any cluster work.
    refdb = open_dataset(args.refdb, REFERENCE_KIND)
    encoder = load_encoder(args.model)
    store = open_store(args.out)
    store.check()
    grid, dim = grid_of(encoder, refdb)
    check_label_models(args)
    dense_settings, dense = dense_request(args, refdb)
    previous, update = plan(args, store, refdb, encoder, dense)
    version = new_version_id()
    log.info("re-indexing %s (%d references) with %s into %s version %s%s", refdb.uri,
             len(refdb), encoder.uri, store.uri, version,
             f" (incremental: {update.summary})" if update else "")
    try:
        new_ids = update.new_ids if update else None
        encode = encode_locally if args.local else encode_with_ray
        shards, encoded, seconds = encode(args, refdb, version, new_ids, dense_settings)
        if update:
            shards += update.keep
            for i, (entry, rows) in enumerate(update.rewrite):
                shards.append(rewrite_shard(store, entry, rows, f"{version}-r{i:03d}",
                                            args.dtype))
        manifest = build_manifest(store, version, encoder, refdb, grid, dim, args.dtype,
                                  shards, previous.version if previous else None,
                                  bool(update), args.descriptor_model, args.attribute_model,
                                  refdb.manifest.params.get("px_per_cm"), dense)
        publish(store, manifest)
    except BaseException:
        _discard(store, version)
        raise
    log.info("version %s is current: %d references in %d shards; encoded %d in %.1f s",
             version, manifest.references, len(manifest.shards), encoded, seconds)
    return ReindexResult(manifest, encoded, seconds)


def _discard(store: Store, version: str) -> None:
    """Best effort: remove this attempt's shards (the previous version stays current)."""
    try:
        for name in store.list("shards"):
            if name.startswith(version):
                store.delete_dir(shard_dir(name))
    except ShoematchError as exc:
        log.warning("could not remove the failed attempt's shards (%s); they are unused", exc)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = reindex(args)
    manifest = result.manifest
    print(f"index {args.out} version {manifest.version}: {manifest.references} references, "
          f"{manifest.counts['models']} models, {len(manifest.shards)} shards, grid "
          f"{manifest.grid[0]}x{manifest.grid[1]}x{manifest.dim} {manifest.dtype}; encoded "
          f"{result.encoded} in {result.seconds:.1f} s ({result.images_per_s:.1f} images/s)")
    return 0


if __name__ == "__main__":
    run_main(main)
