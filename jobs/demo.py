"""The main job, end to end on the built-in synthetic data (README command 1).

Stages: generate a synthetic reference db and query set on Ray → validate every record →
print a summary → write a contact sheet. Re-running reuses data generated with the same settings.

    python -m jobs.demo [--out runs/demo] [--models 60] [--instances 3] [--queries 60]
"""

from __future__ import annotations

import argparse
import json
import posixpath
import time

from jobs import synth as synth_job
from jobs.common import log, run_main
from shoematch.data.dataset import open_dataset
from shoematch.data.summary import format_summary, summarize, validate_dataset
from shoematch.data.synth import SynthSpec
from shoematch.data.synth_build import CONTACT_SHEET, QUERIES_DIR, REFERENCES_DIR, spec_params
from shoematch.errors import DatasetError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/demo", help="where data and results go")
    parser.add_argument("--models", type=int, default=60)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def existing_matches(data_root: str, spec: SynthSpec) -> bool:
    """True when both datasets exist and were generated with exactly this spec."""
    wanted = json.loads(json.dumps(spec_params(spec)))  # the form a manifest stores
    try:
        return all(
            open_dataset(posixpath.join(data_root, sub)).manifest.params == wanted
            for sub in (REFERENCES_DIR, QUERIES_DIR)
        )
    except DatasetError:
        return False


def stage(name: str) -> float:
    log.info("== %s", name)
    return time.monotonic()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spec = SynthSpec(models=args.models, instances=args.instances, queries=args.queries,
                     seed=args.seed)
    data_root = posixpath.join(args.out, "data")
    started = stage("1/3 synthetic data")
    if existing_matches(data_root, spec):
        log.info("reusing %s (same generator settings)", data_root)
    else:
        synth_job.main(["--out", data_root, "--models", str(args.models), "--instances",
                        str(args.instances), "--queries", str(args.queries),
                        "--seed", str(args.seed)])
    t = stage("2/3 validate")
    datasets = {sub: open_dataset(posixpath.join(data_root, sub))
                for sub in (REFERENCES_DIR, QUERIES_DIR)}
    for sub, dataset in datasets.items():
        log.info("%s: %d records valid", sub, validate_dataset(dataset))
    log.info("validated in %.1f s", time.monotonic() - t)
    stage("3/3 summary")
    for sub, dataset in datasets.items():
        print(format_summary(f"{sub} ({dataset.uri})", summarize(dataset)))
    print(f"contact sheet: {posixpath.join(data_root, CONTACT_SHEET)}")
    log.info("demo finished in %.1f s", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    run_main(main)
