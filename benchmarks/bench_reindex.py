"""Re-index throughput: the Ray Data job against a plain single-process loop, same records,
same encoder, same cores, same run.

    python -m benchmarks.bench_reindex [--models 150] [--arch resnet50]

Both paths use the same `EncodeBatch` and shard writer; Ray's figure is timed from the start of
the Ray Data pipeline to the last shard written (cluster start-up excluded, as on a running
cluster). The single-process loop uses every core through torch's intra-op threads; the Ray job
runs one single-threaded encoder actor per core.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import torch

from benchmarks.common import random_encoder, synthetic_db
from shoematch.index.reindex import (
    LocalExecutor,
    ReindexResult,
    ReindexSettings,
    make_plan,
    run_reindex,
)
from shoematch.ray.cluster import init_ray
from shoematch.ray.reindex import RayDataExecutor


def run(model: str, refdb: str, out: str, local: bool, batch: int) -> ReindexResult:
    plan = make_plan(ReindexSettings(model, refdb, out, shards=4, batch_size=batch))
    return run_reindex(plan, LocalExecutor() if local else RayDataExecutor())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=150)
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "bench_reindex"))
    args = parser.parse_args()
    data = synthetic_db(os.path.join(args.work, "data"), args.models)
    model = random_encoder(os.path.join(args.work, f"encoder-{args.arch}"), args.arch)
    refdb = os.path.join(data, "references")
    init_ray()  # cluster start-up is not part of either figure
    cores = os.cpu_count()
    torch.set_num_threads(cores)
    local = run(model, refdb, os.path.join(args.work, "index-local"), True, args.batch_size)
    ray_run = run(model, refdb, os.path.join(args.work, "index-ray"), False, args.batch_size)
    overhead = local.images_per_s / ray_run.images_per_s - 1
    print(f"\n{local.encoded} references at 192×384, {args.arch} encoder, {cores} cores")
    print("| path | images/s | seconds |")
    print("|---|---|---|")
    print(f"| single process ({cores} torch threads) | {local.images_per_s:.2f} | "
          f"{local.seconds:.1f} |")
    print(f"| Ray Data job ({cores} actors × 1 thread) | {ray_run.images_per_s:.2f} | "
          f"{ray_run.seconds:.1f} |")
    print(f"Ray overhead: {overhead:+.1%} (target ≤ 15%)")


if __name__ == "__main__":
    main()
