"""HTTP latency and throughput of the Serve app on this machine: 2 shard slots, concurrency 1
and 8, a bounded number of requests each, without and with dense re-ranking of the top N.

    python -m benchmarks.bench_serve [--models 150] [--requests 64] [--rerank 100]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time

import httpx
import numpy as np

from benchmarks.common import random_encoder, synthetic_db
from cluster.processes import free_port
from jobs import reindex as job
from shoematch.data.dataset import open_dataset
from shoematch.index.layout import read_current, read_manifest
from shoematch.ray.cluster import init_ray


def fire(url: str, records: list[dict], requests: int, concurrency: int,
         rerank: int = 0) -> tuple[list, float]:
    latencies: list[float] = []
    failures: list[str] = []
    counter = iter(range(requests))
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(timeout=120) as client:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                record = records[i % len(records)]
                start = time.perf_counter()
                response = client.post(f"{url}/v1/search", data={
                    "k": "100", "rerank": str(rerank)}, files={
                    "print": record["print"], "mask": record["mask"]})
                elapsed = time.perf_counter() - start
                with lock:
                    (latencies if response.status_code == 200 else failures).append(
                        elapsed if response.status_code == 200 else response.text)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    if failures:
        raise RuntimeError(f"{len(failures)} failed requests: {failures[:2]}")
    return latencies, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=150)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--rerank", type=int, default=100, help="N re-ranked densely")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "bench_serve"))
    args = parser.parse_args()
    data = synthetic_db(os.path.join(args.work, "data"), args.models)
    model = random_encoder(os.path.join(args.work, f"encoder-{args.arch}"), args.arch)
    index = os.path.join(args.work, "index")
    if read_current(index) is None or read_manifest(index).dense is None:  # else reused
        job.main(["--model", model, "--refdb", f"{data}/references", "--out", index,
                  "--shards", "2", "--local", "--dense"])
    dense = read_manifest(index).dense
    assert dense is not None
    init_ray()
    from ray import serve

    from serve.app import build_app

    port = free_port()
    serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app({"index": index, "slots": 2, "encoder_max_replicas": 1}),
              name="bench", route_prefix="/", blocking=False)
    url = f"http://127.0.0.1:{port}"
    records = list(open_dataset(f"{data}/queries").iter_records())
    try:
        fire(url, records, 8, 1)  # warm-up
        fire(url, records, 4, 1, args.rerank)
        print(f"\n{args.models * 2} references, {args.arch} query encoder, 2 shard slots, "
              f"top-100, {args.requests} requests per level; dense maps "
              f"{dense.config['backbone']} block {dense.config['block']}, grid "
              f"{dense.grid[0]}x{dense.grid[1]}x{dense.channels}, "
              f"{dense.bytes_per_reference} bytes per reference")
        print("| rerank N | concurrency | p50 ms | p99 ms | queries/s |")
        print("|---|---|---|---|---|")
        for rerank in (0, args.rerank):
            for concurrency in (1, 8):
                latencies, seconds = fire(url, records, args.requests, concurrency, rerank)
                ms = np.asarray(latencies) * 1e3
                print(f"| {rerank} | {concurrency} | {np.percentile(ms, 50):.0f} | "
                      f"{np.percentile(ms, 99):.0f} | {len(ms) / seconds:.1f} |")
    finally:
        serve.shutdown()


if __name__ == "__main__":
    main()
