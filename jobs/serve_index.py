"""Serve an index over HTTP with Ray Serve (the common case of `serve run serve.app:build_app`).

    python -m jobs.serve_index --index INDEX_ROOT [--slots 2] [--port 8000] [--host 127.0.0.1]

The examiner workbench page is served at the same address (`/`); its case database is
`SHOEMATCH_DB_URL`, else `--set db_url=…`, else runs/workbench/cases.sqlite.
On a cluster (RAY_ADDRESS set, or submitted with `ray job submit`) the application is deployed
and stays up after this exits; without a cluster, a local Ray instance serves until Ctrl-C.
`--shutdown` shuts Serve down instead.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from types import FrameType

import httpx

from jobs.common import log, run_main
from shoematch.cases.db import DB_URL_ENV, resolve_url
from shoematch.errors import ShoematchError
from shoematch.index.layout import read_current
from shoematch.ray.cluster import init_ray

APP_NAME = "shoematch"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.serve_index", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", help="index root (dir or s3://)")
    parser.add_argument("--slots", type=int, default=2, help="shard deployments")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="other ServeSettings fields, e.g. max_upload_bytes=1000000")
    parser.add_argument("--wait-s", type=float, default=180.0, help="readiness deadline")
    parser.add_argument("--shutdown", action="store_true",
                        help="shut Serve down on the cluster (application and HTTP proxy)")
    args = parser.parse_args(argv)
    if not args.shutdown and not args.index:
        parser.error("--index is required")
    return args


def wait_ready(url: str, deadline_s: float) -> dict:
    deadline = time.monotonic() + deadline_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{url}/v1/health", timeout=5.0)
            if response.status_code == 200:
                return response.json()
            last = response.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(1.0)
    raise ShoematchError(f"{url} not healthy within {deadline_s:.0f} s ({last})")


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM both end the local serve cleanly. Explicit, because a process started
    in the background inherits SIGINT ignored, and Python then installs no handler of its own."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    on_cluster = bool(os.environ.get("RAY_ADDRESS"))
    init_ray()
    from ray import serve

    if args.shutdown:
        serve.shutdown()  # the application and Serve's HTTP proxy, so the port is free again
        print("Serve shut down")
        return 0
    from serve.app import build_app

    settings = {"index": args.index, "slots": args.slots}
    for item in args.set:
        key, _, value = item.partition("=")
        settings[key] = value
    if "db_url" not in settings and not os.environ.get(DB_URL_ENV):
        settings["db_url"] = resolve_url()  # absolute: replicas may run in another directory
    if read_current(args.index) is None:
        log.warning("%s has no published index yet: /v1/search answers 503 until a reindex "
                    "and POST /v1/index/reload", args.index)
    serve.start(proxy_location="HeadOnly", http_options={"host": args.host, "port": args.port})
    serve.run(build_app(settings), name=APP_NAME, route_prefix="/", blocking=False)
    url = f"http://{args.host}:{args.port}"
    health = wait_ready(url, args.wait_s)
    print(f"serving {args.index} ({health.get('index_version')}) at {url}/v1/search")
    print(f"examiner workbench: {url}/")
    if not on_cluster:
        print("local Ray instance: serving until Ctrl-C")
        stop_on_signals()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            serve.shutdown()
    return 0


if __name__ == "__main__":
    run_main(main)
