"""Bring the local stack (S3, MLflow, Ray head + N worker nodes) up, check it, take it down.

    python -m cluster up [--workers N] [--state-dir runs/cluster]
    python -m cluster status            # exit 1 unless every service is healthy; URLs
                                        # (without --state-dir: runs/cluster, else the demo's)
    eval "$(python -m cluster env)"     # RAY_ADDRESS, MLFLOW_TRACKING_URI, AWS_ENDPOINT_URL, ...
    python -m cluster down
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from cluster.local import (
    DEFAULT_STATE_DIR,
    ClusterState,
    bring_up,
    check,
    find_state_dir,
    format_status,
    tear_down,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    parser.add_argument("--state-dir", default=None,
                        help="where the state file, logs, S3 data and MLflow db live (default: "
                             f"{DEFAULT_STATE_DIR}; status/env/down also find runs/*/cluster)")
    parser.add_argument("--workers", type=int, default=2, help="Ray worker nodes (up)")
    parser.add_argument("--head-cpus", type=int, default=1)
    parser.add_argument("--worker-cpus", type=int, default=2)
    parser.add_argument("--object-store-mb", type=int, default=400, help="per node")
    parser.add_argument("--bucket", default="shoematch", help="for MLflow artifacts and data")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    args = parse_args(argv)
    if args.command == "up":
        state = bring_up(args.state_dir or DEFAULT_STATE_DIR, args.workers, args.head_cpus,
                         args.worker_cpus, args.object_store_mb, args.bucket)
        print(format_status(state, check(state)))
        return 0
    state_dir = find_state_dir(args.state_dir)
    state = ClusterState.load(state_dir)
    if state is None:
        print(f"no cluster state in {state_dir} or runs/*/cluster (run `python -m cluster up`)",
              file=sys.stderr)
        return 0 if args.command == "down" else 1
    if args.command == "down":
        tear_down(state)
        print("stopped: " + ", ".join(state.services))
        return 0
    if args.command == "env":
        variables = state.env(with_keys=state.default_credentials)
        print("export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in variables.items()))
        return 0
    health = check(state)
    print(format_status(state, health))
    return 0 if health.healthy else 1


if __name__ == "__main__":
    sys.exit(main())
