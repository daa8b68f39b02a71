"""Load without loss: Serve on 127.0.0.1 driven past its capacity by a bounded asyncio client.

    python -m benchmarks.load_test [--models 150] [--duration 60] [--overload 2]
                                   [--bad-share 0.1] [--deadline-s 30] [--max-requests 4000]
                                   [--references N] [--encoder-replicas 2]

By default the index is the built-in synthetic reference set (`--models` × 2 references,
re-indexed with the encoder). With `--references N` it is N random unit-cell references instead
(`benchmarks.random_index`, written once under `--work`): queries still go through the encoder,
so the stage split shows encoder against search at a database size where the search costs more
than a few milliseconds; rankings over random references mean nothing, their timing does.
`--encoder-replicas R` fixes the query encoder's replicas (default 2, what Serve's CPU
autoscaling target reaches under sustained load); 0 leaves the autoscaling on, and the memory
table shows the replicas it started.

1. Sustainable rate: closed-loop ramp (concurrency 1, 2, 4, 8; `--ramp-s` each); the best
   throughput of complete rankings is the sustainable rate R.
2. Overload: open loop at `--overload` × R for `--duration` s. A share of the arrivals is bad
   input: oversized uploads (over `max_upload_bytes`) and malformed requests (a non-integer `k`, a
   print that is not an image). Every good request must get a complete ranking (k results) or a
   503/429 with `Retry-After`; every bad one its 4xx; none may run past the client's deadline.
3. Memory: every Serve replica's RSS (its process, found under this driver's Ray instance)
   before the ramp and after the overload.
Exits 1 if any request was lost (no answer by the deadline, a 5xx other than 503, a 503/429
without Retry-After, an incomplete ranking, a bad request not refused with 4xx).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass

import httpx
import numpy as np
import psutil

from benchmarks.common import random_encoder, synthetic_db
from benchmarks.random_index import write_random_index
from cluster.processes import free_port
from jobs import reindex as reindex_job
from shoematch.crisp.runtime import DEFAULT_RUNTIME, RUNTIMES
from shoematch.data.dataset import open_dataset
from shoematch.index.layout import read_current

K = 20
UPLOAD_LIMIT = 1_000_000


@dataclass
class Outcome:
    kind: str  # good | oversized | malformed
    status: int | None  # None: no answer within the deadline
    seconds: float
    retry_after: bool
    complete: bool
    timings: dict | None = None  # the answer's timings_ms (complete rankings only)

    @property
    def lost(self) -> bool:
        if self.status is None:
            return True
        if self.kind != "good":
            return not 400 <= self.status < 500
        if self.status in (503, 429):
            return not self.retry_after
        return self.status != 200 or not self.complete


def replica_rss() -> dict[str, float]:
    """MB resident per Serve replica process of the Ray instance this driver started."""
    found = {}
    for proc in psutil.Process(os.getpid()).children(recursive=True):
        try:
            title = " ".join(proc.cmdline())
            if "ServeReplica" in title:
                name = title.split("ServeReplica:", 1)[1].split()[0]
                found[f"{name} (pid {proc.pid})"] = proc.memory_info().rss / 2**20
        except (psutil.NoSuchProcess, psutil.AccessDenied, IndexError):
            continue
    return dict(sorted(found.items()))


class Client:
    def __init__(self, url: str, records: list[dict], deadline_s: float) -> None:
        self.url = url
        self.records = records
        self.deadline_s = deadline_s
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(deadline_s),
                                      limits=httpx.Limits(max_connections=1024,
                                                          max_keepalive_connections=64))
        self.oversized = os.urandom(UPLOAD_LIMIT + 200_000)

    def request(self, kind: str, i: int) -> tuple[dict, dict]:
        record = self.records[i % len(self.records)]
        files = {"print": ("p.png", record["print"]), "mask": ("m.png", record["mask"])}
        if kind == "oversized":
            return {"k": str(K)}, {"print": ("big.png", self.oversized)}
        if kind == "malformed":
            return ({"k": "many"}, files) if i % 2 else \
                ({"k": str(K)}, {"print": ("p.png", b"not an image")})
        return {"k": str(K)}, files

    async def send(self, kind: str, i: int) -> Outcome:
        data, files = self.request(kind, i)
        started = time.perf_counter()
        try:
            response = await self.http.post(f"{self.url}/v1/search", data=data, files=files)
        except (httpx.TimeoutException, httpx.TransportError):
            return Outcome(kind, None, time.perf_counter() - started, False, False)
        seconds = time.perf_counter() - started
        body = response.json() if response.status_code == 200 else {}
        complete = len(body.get("results", [])) == K
        return Outcome(kind, response.status_code, seconds,
                       "retry-after" in response.headers, complete, body.get("timings_ms"))


async def closed_loop(client: Client, concurrency: int, seconds: float) -> list[Outcome]:
    end = time.monotonic() + seconds
    outcomes: list[Outcome] = []

    async def worker(w: int) -> None:
        i = w
        while time.monotonic() < end:
            outcomes.append(await client.send("good", i))
            i += concurrency
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return outcomes


async def warm_up(client: Client, limit_s: float = 600.0) -> None:
    """Until a first complete ranking (the encoder's cold start: loading and exporting it)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if (await client.send("good", 0)).status == 200:
            await closed_loop(client, 2, 3)
            return
        await asyncio.sleep(1)
    raise SystemExit(f"no complete ranking within {limit_s:.0f} s of start-up")


async def open_loop(client: Client, rate: float, seconds: float, bad_share: float,
                    max_requests: int) -> tuple[list[Outcome], float]:
    """Poisson arrivals at `rate`/s for `seconds` (at most `max_requests`); waits for all."""
    rng = random.Random(7)
    tasks = []
    started = time.monotonic()
    next_at = started
    for i in range(max_requests):
        next_at += rng.expovariate(rate)
        if next_at - started > seconds:
            break
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        draw = rng.random()
        kind = "good" if draw >= bad_share else \
            ("oversized" if draw < bad_share / 2 else "malformed")
        tasks.append(asyncio.create_task(client.send(kind, i)))
    sent_for = time.monotonic() - started
    return list(await asyncio.gather(*tasks)), sent_for


def percentiles(seconds: list[float]) -> str:
    if not seconds:
        return "- / - / -"
    ms = np.asarray(seconds) * 1e3
    return " / ".join(f"{np.percentile(ms, q):.0f}" for q in (50, 99)) + f" / {ms.max():.0f}"


def time_split(outcomes: list[Outcome]) -> str:
    """Median server-side ms per stage of the complete rankings: where the latency goes."""
    timed = [o.timings for o in outcomes if o.timings]
    if not timed:
        return "no complete ranking"
    stages = ("decode", "admission", "encode", "search", "total")
    return ", ".join(f"{stage} {np.median([t[stage] for t in timed]):.0f}" for stage in stages)


def report(outcomes: list[Outcome], sent_for: float) -> bool:
    print("| requests | count | status counts | p50 / p99 / max ms |")
    print("|---|---|---|---|")
    for kind in ("good", "oversized", "malformed"):
        mine = [o for o in outcomes if o.kind == kind]
        statuses = Counter("timeout" if o.status is None else o.status for o in mine)
        print(f"| {kind} | {len(mine)} | {dict(sorted(statuses.items(), key=str))} | "
              f"{percentiles([o.seconds for o in mine])} |")
        if kind == "good":
            ranked = [o.seconds for o in mine if o.status == 200]
            refused = [o.seconds for o in mine if o.status in (503, 429)]
            print(f"| good, complete ranking | {len(ranked)} | 200 | {percentiles(ranked)} |")
            print(f"| good, refused (Retry-After) | {len(refused)} | 503/429 | "
                  f"{percentiles(refused)} |")
    print(f"server time split of the complete rankings (ms, median): {time_split(outcomes)}")
    lost = [o for o in outcomes if o.lost]
    ok = sum(o.status == 200 for o in outcomes)
    print(f"sent {len(outcomes)} in {sent_for:.1f} s ({len(outcomes) / sent_for:.1f}/s); "
          f"complete rankings {ok} ({ok / sent_for:.1f}/s); lost: {len(lost)}"
          + (f" e.g. {lost[:3]}" if lost else ""))
    return not lost


def print_rss(before: dict[str, float], after: dict[str, float]) -> None:
    print("| replica | RSS before MB | RSS after MB | change MB |")
    print("|---|---|---|---|")
    for name in sorted(set(before) | set(after)):
        b, a = before.get(name), after.get(name)
        change = f"{a - b:+.0f}" if a is not None and b is not None else \
            ("started during the test" if b is None else "gone")
        print(f"| {name} | {b or 0:.0f} | {a or 0:.0f} | {change} |")


async def drive(url: str, records: list[dict], args: argparse.Namespace) -> bool:
    client = Client(url, records, args.deadline_s)
    try:
        await warm_up(client)
        before = replica_rss()
        print("| ramp concurrency | complete rankings/s | p50 / p99 / max ms | refused | "
              "server ms, median: stage split |")
        print("|---|---|---|---|---|")
        rate = 0.0
        for concurrency in (1, 2, 4, 8):
            outcomes = await closed_loop(client, concurrency, args.ramp_s)
            ranked = [o.seconds for o in outcomes if o.status == 200]
            throughput = len(ranked) / args.ramp_s
            rate = max(rate, throughput)
            print(f"| {concurrency} | {throughput:.1f} | {percentiles(ranked)} | "
                  f"{sum(o.status != 200 for o in outcomes)} | {time_split(outcomes)} |",
                  flush=True)
        if rate == 0:
            raise SystemExit("no complete ranking during the ramp: nothing to overload")
        target = args.overload * rate
        print(f"\nsustainable rate {rate:.1f}/s; overload {target:.1f}/s for "
              f"{args.duration:.0f} s, "
              f"{args.bad_share:.0%} bad input, client deadline {args.deadline_s:.0f} s")
        outcomes, sent_for = await open_loop(client, target, args.duration, args.bad_share,
                                             args.max_requests)
        passed = report(outcomes, sent_for)
        await asyncio.sleep(2)  # let replicas settle before reading their memory
        print_rss(before, replica_rss())
        return passed
    finally:
        await client.http.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=150)
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--ramp-s", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--overload", type=float, default=2.0)
    parser.add_argument("--bad-share", type=float, default=0.1)
    parser.add_argument("--deadline-s", type=float, default=30.0)
    parser.add_argument("--max-requests", type=int, default=4000)
    parser.add_argument("--encoder-threads", type=int, default=1)
    parser.add_argument("--encoder-replicas", type=int, default=2,
                        help="query encoder replicas, fixed for the test (what the CPU "
                             "autoscaling target reaches under sustained load); 0: Serve's "
                             "autoscaling with the default settings")
    parser.add_argument("--encoder-runtime", default=DEFAULT_RUNTIME, choices=RUNTIMES)
    parser.add_argument("--references", type=int, default=0,
                        help="serve N random unit-cell references instead of the synthetic set")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "load_test"))
    args = parser.parse_args()
    data = synthetic_db(os.path.join(args.work, "data"), args.models)
    model = random_encoder(os.path.join(args.work, f"encoder-{args.arch}"), args.arch)
    if args.references:
        index = os.path.join(args.work, f"random-{args.references}")
        write_random_index(index, args.references, shards=2)
    else:
        index = os.path.join(args.work, "index")
        if read_current(index) is None:
            reindex_job.main(["--model", model, "--refdb", f"{data}/references", "--out", index,
                              "--shards", "2", "--local"])
    from ray import serve

    from serve.app import build_app
    from shoematch.ray.cluster import init_ray

    init_ray()
    port = free_port()
    serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
    # Ray's CPU counts only place replicas (threads are set apart): a fixed number of encoder
    # replicas share half of the 2 logical CPUs, whatever their count.
    replicas = {"encoder_min_replicas": args.encoder_replicas,
                "encoder_max_replicas": args.encoder_replicas,
                "encoder_cpus": 0.5 / args.encoder_replicas} if args.encoder_replicas else {}
    serve.run(build_app({"index": index, "model": model, "slots": 2, **replicas,
                         "max_upload_bytes": UPLOAD_LIMIT,
                         "encoder_threads": args.encoder_threads,
                         "encoder_runtime": args.encoder_runtime,
                         "request_timeout_s": args.deadline_s * 0.6}),
              name="load", route_prefix="/", blocking=False)
    records = list(open_dataset(f"{data}/queries").iter_records())
    try:
        passed = asyncio.run(drive(f"http://127.0.0.1:{port}", records, args))
    finally:
        serve.shutdown()
    raise SystemExit(0 if passed else 1)


if __name__ == "__main__":
    main()
