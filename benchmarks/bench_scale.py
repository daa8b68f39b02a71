"""How search latency, throughput and memory grow with the reference database, on Ray Serve.

    python -m benchmarks.bench_scale [--sizes 100000,300000,1000000] [--slots 4] [--workers 2]
        [--requests 64] [--concurrency 1,8,32] [--time-cap 60] [--address ADDRESS]

For each size, random unit-cell references (6×12 cells × 128 channels, float16, 3 instances per
model) are written straight to disk as index shards (`benchmarks.random_index`, no encoder),
then served by `--slots` IndexShard deployments (`serve/shard.py`, one Serve app each) spread
over a local multi-node Ray cluster: started here with `python -m cluster up --workers N` and
taken down at the end, unless `--address` names a running one ("local": a fresh single-node
instance). The driver fans each query (40 % of the cells visible, top-100) out to every slot
and merges exactly, as the gateway's search does, at each concurrency for a bounded number of
requests (and at most --time-cap seconds per cell). Printed per size × concurrency: p50/p99
latency, queries/s and the time split — fan-out (round trip beyond the slowest shard's own
time), scan and exact pass (on the slowest shard), merge. The query encoder is not on this path
(features are sent as they are); its cost per request is the encoder benchmark's. Then each
replica's node, references and resident memory, and bytes in RAM per reference.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import ray
import torch
from ray import serve

from benchmarks.common import REPO
from benchmarks.random_index import DIM, GRID, write_random_index
from cluster.local import ClusterState
from shoematch.index.merge import merge_top_k
from shoematch.index.reader import Match
from shoematch.ray.cluster import init_ray

K, VISIBLE = 100, 0.4
GIB = 1024**3


def masked_queries(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """Unit query cells with a contiguous block of 40 % of the grid columns visible."""
    cells = GRID[0] * GRID[1]
    columns = round(GRID[1] * VISIBLE)
    queries = []
    for _ in range(count):
        q = torch.nn.functional.normalize(torch.from_numpy(
            rng.standard_normal((cells, DIM), dtype=np.float32)), dim=-1).numpy()
        keep = np.zeros(GRID, dtype=bool)
        start = int(rng.integers(0, GRID[1] - columns + 1))
        keep[:, start:start + columns] = True
        queries.append((q * keep.reshape(-1, 1)).astype(np.float32))
    return queries


async def one_query(handles: list, version: str, query: np.ndarray) -> dict:
    started = time.perf_counter()
    answers = await asyncio.gather(*(h.search.remote(version, query[None], K, [{}])
                                     for h in handles))
    fanned = time.perf_counter()
    merge_top_k(([Match(**hit) for hit in answer["hits"][0]] for answer in answers), K)
    done = time.perf_counter()
    slowest = max(answers, key=lambda a: a["timings_ms"]["shard"])["timings_ms"]
    return {"total": (done - started) * 1e3, "merge": (done - fanned) * 1e3,
            "fanout": (fanned - started) * 1e3 - slowest["shard"],
            "scan": slowest["scan"], "exact": slowest["exact"]}


async def fire(handles: list, version: str, queries: list[np.ndarray], requests: int,
               concurrency: int, time_cap_s: float) -> tuple[list[dict], float]:
    """`requests` queries, `concurrency` at a time, none started after `time_cap_s`."""
    results: list[dict] = []
    counter = iter(range(requests))
    started = time.perf_counter()
    deadline = started + time_cap_s

    async def worker() -> None:
        for i in counter:
            if time.perf_counter() > deadline:
                return
            results.append(await one_query(handles, version, queries[i % len(queries)]))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results, time.perf_counter() - started


def deploy(index: str, slots: int, shard_cpus: float) -> list:
    from serve.shard import IndexShard

    settings = {"index": index, "slots": slots, "shard_cpus": shard_cpus}
    handles = []
    for slot in range(slots):
        app = IndexShard.options(name=f"ScaleShard{slot}",
                                 ray_actor_options={"num_cpus": shard_cpus}).bind(settings, slot)
        handles.append(serve.run(app, name=f"scale-shard{slot}", route_prefix=None))
    return handles


def run_size(args, references: int, queries: list[np.ndarray]) -> int:
    """Benchmark one database size; returns the replicas' summed resident memory."""
    root = os.path.join(args.work, f"index-{references}")
    started = time.perf_counter()
    manifest = write_random_index(root, references, args.slots * args.shards_per_slot)
    written = time.perf_counter()
    handles = deploy(root, args.slots, args.shard_cpus)
    loaded = time.perf_counter()
    infos = [h.info.remote().result() for h in handles]
    print(f"\n### {references:,} references, {len(manifest.shards)} shards over {args.slots} "
          f"slots (write {written - started:.0f} s, load + int8 copy {loaded - written:.0f} s)")
    asyncio.run(fire(handles, manifest.version, queries, 4, 1, args.time_cap))  # warm-up
    print("| concurrency | requests | p50 ms | p99 ms | queries/s | fan-out ms | scan ms | "
          "exact ms | merge ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for concurrency in args.concurrency:
        results, seconds = asyncio.run(fire(handles, manifest.version, queries, args.requests,
                                            concurrency, args.time_cap))
        split = {key: np.median([r[key] for r in results]) for key in
                 ("fanout", "scan", "exact", "merge")}
        total = np.asarray([r["total"] for r in results])
        print(f"| {concurrency} | {len(results)} | {np.percentile(total, 50):.0f} | "
              f"{np.percentile(total, 99):.0f} | {len(results) / seconds:.1f} | "
              f"{split['fanout']:.1f} | {split['scan']:.1f} | {split['exact']:.1f} | "
              f"{split['merge']:.1f} |")
    infos = [h.info.remote().result() for h in handles]
    scan = sum(v["scan_bytes"] for i in infos for v in i["versions"].values())
    rss = sum(i["rss_bytes"] for i in infos)
    print("replicas: " + "; ".join(
        f"slot {i['slot']} on node {i['node'][:8]}: "
        f"{sum(v['references'] for v in i['versions'].values()):,} refs, "
        f"RSS {i['rss_bytes'] / GIB:.2f} GiB" for i in infos))
    print(f"bytes per reference: scan copy {scan / references:.0f}; replicas' RSS "
          f"{rss / references:.0f} (with metadata and each replica's fixed runtime)")
    for slot in range(args.slots):
        serve.delete(f"scale-shard{slot}")
    return rss


def print_fit(measured: dict[int, int], slots: int) -> None:
    """Marginal bytes per reference (the RSS slope between sizes) and where 24 GiB ends."""
    if len(measured) < 2:
        return
    small, large = min(measured), max(measured)
    slope = (measured[large] - measured[small]) / (large - small)
    fixed = measured[small] - slope * small
    print(f"\nmeasured RAM: {slope:.0f} bytes per reference (RSS slope {small:,} → "
          f"{large:,}) + {fixed / GIB:.2f} GiB fixed for {slots} replicas; 24 GiB (nothing "
          f"else on the machine) holds {(24 * GIB - fixed) / slope / 1e6:.2f} M references")


def cluster(command: list[str], state_dir: str) -> None:
    subprocess.run([sys.executable, "-m", "cluster", *command, "--state-dir", state_dir],
                   cwd=REPO, check=True)


@contextmanager
def serve_on_cluster(address: str | None, workers: int, work: str) -> Iterator[None]:
    """Ray Serve (handles only, no HTTP port) on `address` ("local": a fresh single-node
    instance), or on a local multi-node cluster brought up here and taken down after."""
    os.makedirs(work, exist_ok=True)
    state_dir = os.path.join(work, "cluster")
    if address is None:
        cluster(["up", "--workers", str(workers)], state_dir)
        address = ClusterState.load(state_dir).ray_address
    try:
        if address == "local":
            init_ray()
        else:
            ray.init(address=address)
        serve.start(proxy_location="Disabled")
        yield
    finally:
        if ray.is_initialized():
            serve.shutdown()
            ray.shutdown()
        if os.path.exists(os.path.join(state_dir, "cluster.json")):
            cluster(["down"], state_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,300000,1000000")
    parser.add_argument("--slots", type=int, default=4, help="IndexShard deployments")
    parser.add_argument("--shards-per-slot", type=int, default=1)
    parser.add_argument("--shard-cpus", type=float, default=0.5)
    parser.add_argument("--workers", type=int, default=2, help="Ray worker nodes (cluster up)")
    parser.add_argument("--requests", type=int, default=64, help="per size × concurrency")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--time-cap", type=float, default=60.0, help="seconds per cell")
    parser.add_argument("--address", default=None,
                        help="a running Ray cluster, or 'local'; default: cluster up here")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "bench_scale"))
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    with serve_on_cluster(args.address, args.workers, args.work):
        nodes = [n for n in ray.nodes() if n["Alive"]]
        print(f"Ray cluster: {len(nodes)} nodes, {ray.cluster_resources().get('CPU', 0):.0f} "
              f"CPUs declared on this machine's {os.cpu_count()} cores; {args.slots} shard "
              f"slots × {args.shard_cpus} CPU; top-{K}, {VISIBLE:.0%} of cells visible; "
              f"{args.requests} requests per cell, at most {args.time_cap:.0f} s")
        queries = masked_queries(np.random.default_rng(1), 16)
        measured = {references: run_size(args, references, queries) for references in sizes}
        print_fit(measured, args.slots)


if __name__ == "__main__":
    main()
