"""Re-index a reference db with a CriSp encoder into a new, versioned, sharded index.

    python -m jobs.reindex --model MODEL_URI|CHECKPOINT --refdb PATH|s3://… --out INDEX_ROOT \
        [--shards N] [--incremental] [--dtype float16|float32]
        [--dense [--dense-config …] [--scan-config …|--no-scan]]

Ray Data reads the reference shards, an actor pool of encoders (one GPU each when the cluster
has GPUs) computes the cells, and one task per index shard writes it. The new version becomes
current only after every shard and the manifest are written; a failure leaves the previous
version current (and removes this attempt's shards). `--incremental` encodes only records not
yet in the current version and lists its unchanged shards again. `--local` encodes in this
process (no Ray): the baseline for Ray's overhead and a laptop fallback. `--dense` also stores
each reference's dense feature maps (float16, `shards/<id>/dense_maps.npy`) for re-ranking,
computed by the same encoder actors, and the dense cascade's scan maps (`dense_scan.npy`, a
projection fitted on a sample of the references): with them Serve's default search is the
cascade (scan every reference, exact MCNCC on the best). `--no-scan`: re-ranking maps only.
"""

from __future__ import annotations

import argparse

from jobs.common import run_main
from shoematch.config import load_config
from shoematch.dense.component import load_dense_config
from shoematch.dense.scan import ScanConfig
from shoematch.index.reindex import LocalExecutor, ReindexSettings, make_plan, run_reindex


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
    parser.add_argument("--scan-config", nargs="+", default=[], metavar="KEY=VALUE",
                        help="ScanConfig of the cascade's first stage (with --dense)")
    parser.add_argument("--no-scan", action="store_true",
                        help="with --dense: no scan maps (no cascade; re-ranking only)")
    args = parser.parse_args(argv)
    if (args.dense_config or args.scan_config or args.no_scan) and not args.dense:
        parser.error("--dense-config, --scan-config and --no-scan need --dense")
    if args.scan_config and args.no_scan:
        parser.error("--scan-config and --no-scan exclude each other")
    return args


def settings_of(args: argparse.Namespace) -> ReindexSettings:
    dense = load_dense_config(args.dense_config) if args.dense else None
    scan = None if not args.dense or args.no_scan else \
        load_config(ScanConfig, None, args.scan_config)
    return ReindexSettings(args.model, args.refdb, args.out, args.shards, args.incremental,
                           args.dtype, args.batch_size, args.threads, args.descriptor_model,
                           args.attribute_model, dense, scan)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = make_plan(settings_of(args))
    if args.local:
        executor = LocalExecutor()
    else:
        from shoematch.ray.reindex import RayDataExecutor

        executor = RayDataExecutor(args.actors, args.actor_cpus)
    result = run_reindex(plan, executor)
    manifest = result.manifest
    print(f"index {args.out} version {manifest.version}: {manifest.references} references, "
          f"{manifest.counts['models']} models, {len(manifest.shards)} shards, grid "
          f"{manifest.grid[0]}x{manifest.grid[1]}x{manifest.dim} {manifest.dtype}; encoded "
          f"{result.encoded} in {result.seconds:.1f} s ({result.images_per_s:.1f} images/s)")
    return 0


if __name__ == "__main__":
    run_main(main)
