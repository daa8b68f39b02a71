"""What the served dense cascade costs per query as the database grows, on Ray Serve.

    python -m benchmarks.bench_cascade [--sizes 56847] [--slots 2] [--workers 2]
        [--requests 8] [--candidates 200] [--address ADDRESS]

For each size, random dense maps on the default matcher's grid (80 × 24 × 48 float16) and their
scan maps (`benchmarks.random_index.write_random_dense_index`) are written as index shards and
served by `--slots` IndexShard deployments over a local multi-node Ray cluster (`cluster up
--workers N`, taken down at the end, unless `--address` names one). Each query is a random probe
variant (40 % of the grid visible) run through `serve.cascade.cascade_matches` — the gateway's
own code: the scan in every slot, the global top N, exact MCNCC in the slots that hold them, the
model ranking. Printed per size: p50/p99 seconds per query, and the split: scan (slowest slot),
exact pass with merge, and what one reference costs each stage. The probe's encoding is not on
this path (`bench_encoder`); the exhaustive matcher's cost is N × its per-reference cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time

import numpy as np
from ray import serve

from benchmarks.bench_scale import deploy, serve_on_cluster
from benchmarks.random_index import write_random_dense_index
from serve.cascade import cascade_matches
from shoematch.index.layout import IndexManifest

K, VISIBLE = 100, 0.4
GIB = 1024**3


def probe(rng: np.random.Generator, manifest: IndexManifest) -> list:
    """One random probe variant: features on the dense grid, a block of 40 % visible."""
    assert manifest.dense is not None
    height, width = manifest.dense.grid
    features = rng.standard_normal((manifest.dense.channels, height, width), dtype=np.float32)
    visible = np.zeros((height, width), dtype=bool)
    columns = round(width * VISIBLE)
    start = int(rng.integers(0, width - columns + 1))
    visible[:, start:start + columns] = True
    return [(features, visible)]


async def one_query(handles: list, manifest: IndexManifest, variants: list, n: int) -> dict:
    async def ask(slot: int, method: str, *args):
        return await getattr(handles[slot], method).remote(*args)

    started = time.perf_counter()
    ranked, stages, slot_ms = await cascade_matches(ask, len(handles), manifest, variants, K,
                                                    n, {})
    total = (time.perf_counter() - started) * 1e3
    assert len(ranked) == min(K, manifest.counts.get("models", K)), len(ranked)
    return {"total": total, "scan": slot_ms["scan"], "exact": total - slot_ms["scan"],
            "stages": stages}


def run_size(args: argparse.Namespace, references: int) -> None:
    root = os.path.join(args.work, f"index-{references}")
    started = time.perf_counter()
    manifest = write_random_dense_index(root, references, args.slots)
    written = time.perf_counter()
    handles = deploy(root, args.slots, args.shard_cpus)
    loaded = time.perf_counter()
    rng = np.random.default_rng(1)
    asyncio.run(one_query(handles, manifest, probe(rng, manifest), args.candidates))  # warm-up
    results = [asyncio.run(one_query(handles, manifest, probe(rng, manifest), args.candidates))
               for _ in range(args.requests)]
    total = np.asarray([r["total"] for r in results]) / 1e3
    scan, exact = (np.median([r[key] for r in results]) for key in ("scan", "exact"))
    infos = [h.info.remote().result() for h in handles]
    print(f"\n### {references:,} references, {args.slots} slots (write {written - started:.0f} s,"
          f" load + scan spectra {loaded - written:.0f} s), N = {args.candidates}, "
          f"{len(results)} queries one at a time")
    print(f"p50 {np.percentile(total, 50):.2f} s, p99 {np.percentile(total, 99):.2f} s per "
          f"query; split (median): scan {scan:.0f} ms ({scan * 1e3 / references:.1f} µs per "
          f"reference on the slowest slot's share × slots), exact + merge {exact:.0f} ms "
          f"({exact / args.candidates:.2f} ms per candidate); stages {results[0]['stages']}")
    print("replicas: " + "; ".join(f"slot {i['slot']} RSS {i['rss_bytes'] / GIB:.2f} GiB"
                                   for i in infos))
    for slot in range(args.slots):
        serve.delete(f"scale-shard{slot}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="56847")
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--shard-cpus", type=float, default=0.5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--address", default=None,
                        help="a running Ray cluster, or 'local'; default: cluster up here")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "bench_cascade"))
    args = parser.parse_args(argv)
    with serve_on_cluster(args.address, args.workers, args.work):
        for references in (int(s) for s in args.sizes.split(",")):
            run_size(args, references)


if __name__ == "__main__":
    main()
