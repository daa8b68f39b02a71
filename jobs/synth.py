"""Generate the synthetic reference db and query set, spread over the Ray cluster.

    python -m jobs.synth --out DIR|s3://bucket/prefix --models N --instances M --queries Q --seed S
    ray job submit --working-dir . -- python -m jobs.synth …

Writes OUT/references, OUT/queries (Parquet shards + manifest) and OUT/contact_sheet.png.
"""

from __future__ import annotations

import argparse

from jobs.common import log, run_main
from shoematch.data.dataset import ShardInfo
from shoematch.data.schema import Canvas
from shoematch.data.synth import SynthSpec
from shoematch.data.synth_build import ShardTask, build, build_shard, write_sheet
from shoematch.ray.cluster import init_ray


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.synth", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output root: a directory or s3://bucket/prefix")
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--instances", type=int, default=3, help="reference instances per model")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--height", type=int, default=192, help="canvas height")
    parser.add_argument("--width", type=int, default=384, help="canvas width")
    parser.add_argument("--shard-models", type=int, default=32, help="models per reference shard")
    parser.add_argument("--shard-queries", type=int, default=128, help="queries per query shard")
    parser.add_argument("--local", action="store_true",
                        help="generate in this process instead of as Ray tasks")
    args = parser.parse_args(argv)
    for name in ("models", "instances", "shard_models", "shard_queries"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.queries < 0:
        parser.error("--queries must be >= 0")
    return args


def run_local(spec: SynthSpec, tasks: list[ShardTask]) -> list[ShardInfo]:
    results = []
    for done, task in enumerate(tasks, 1):
        results.append(build_shard(spec, task))
        log.info("shards: %d/%d", done, len(tasks))
    return results


def run_on_ray(spec: SynthSpec, tasks: list[ShardTask]) -> list[ShardInfo]:
    import ray

    remote_build = ray.remote(num_cpus=1, max_retries=2)(build_shard)
    spec_ref = ray.put(spec)
    pending = {remote_build.remote(spec_ref, task): i for i, task in enumerate(tasks)}
    results: list[ShardInfo | None] = [None] * len(tasks)
    waiting = list(pending)
    while waiting:
        ready, waiting = ray.wait(waiting, num_returns=1)
        for ref in ready:
            results[pending[ref]] = ray.get(ref)
        log.info("shards: %d/%d", len(tasks) - len(waiting), len(tasks))
    return [r for r in results if r is not None]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spec = SynthSpec(models=args.models, instances=args.instances, queries=args.queries,
                     seed=args.seed, canvas=Canvas(args.height, args.width))
    if args.local:
        runner = lambda tasks: run_local(spec, tasks)  # noqa: E731
    else:
        init_ray()
        runner = lambda tasks: run_on_ray(spec, tasks)  # noqa: E731
    manifests = build(spec, args.out, args.shard_models, args.shard_queries, runner)
    sheet = write_sheet(spec, args.out)
    for kind, manifest in manifests.items():
        log.info("%s: %d records in %d shards", kind, manifest.count, len(manifest.shards))
    log.info("contact sheet: %s", sheet)
    return 0


if __name__ == "__main__":
    run_main(main)
