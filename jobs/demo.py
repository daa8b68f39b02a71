"""The main job, end to end on the built-in synthetic data (README command 1).

Stages: generate a synthetic reference db and query set on Ray → validate every record →
print a summary and write a contact sheet → train CriSp (tiny config, 2 DDP workers) →
evaluate on the held-out test queries (hit@K, mAP@K, CMC, a PNG of top-10 matches). Re-running
reuses data generated with the same settings and resumes the finished training run.

    python -m jobs.demo [--out runs/demo] [--models 60] [--instances 3] [--queries 60]
                        [--train-steps 40] (0: stop after the data stages)
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
    parser.add_argument("--train-steps", type=int, default=40)
    parser.add_argument("--k", type=int, default=10, help="K of hit@K / mAP@K")
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
    started = stage("1/5 synthetic data")
    if existing_matches(data_root, spec):
        log.info("reusing %s (same generator settings)", data_root)
    else:
        synth_job.main(["--out", data_root, "--models", str(args.models), "--instances",
                        str(args.instances), "--queries", str(args.queries),
                        "--seed", str(args.seed)])
    t = stage("2/5 validate")
    datasets = {sub: open_dataset(posixpath.join(data_root, sub))
                for sub in (REFERENCES_DIR, QUERIES_DIR)}
    for sub, dataset in datasets.items():
        log.info("%s: %d records valid", sub, validate_dataset(dataset))
    log.info("validated in %.1f s", time.monotonic() - t)
    stage("3/5 summary")
    for sub, dataset in datasets.items():
        print(format_summary(f"{sub} ({dataset.uri})", summarize(dataset)))
    print(f"contact sheet: {posixpath.join(data_root, CONTACT_SHEET)}")
    if args.train_steps > 0:
        train_and_evaluate(args, data_root, datasets)
    log.info("demo finished in %.1f s", time.monotonic() - started)
    return 0


def train_and_evaluate(args: argparse.Namespace, data_root: str, datasets: dict) -> None:
    import torch

    from jobs.common import init_ray
    from jobs.train_crisp import train
    from shoematch.config import load_config
    from shoematch.model_store import load_encoder
    from shoematch.retrieval.evaluation import evaluate_encoder
    from shoematch.retrieval.report_grid import write_top_matches_grid
    from shoematch.training.crisp_config import CrispTrainConfig

    stage("4/5 train CriSp (configs/crisp_tiny.yaml)")
    init_ray()
    overrides = [f"data.refdb={data_root}/{REFERENCES_DIR}",
                 f"data.val_queries={data_root}/{QUERIES_DIR}",
                 f"ray.storage_path={args.out}/ray", "ray.run_name=demo",
                 f"mlflow.tracking_uri=sqlite:///{args.out}/mlflow.db",
                 f"optim.steps={args.train_steps}", f"schedule.val_k={args.k}"]
    outcome = train(load_config(CrispTrainConfig, "configs/crisp_tiny.yaml", overrides))
    stage("5/5 evaluate on the held-out test queries")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_encoder(outcome.model_uri).model.to(device)
    refs, queries = datasets[REFERENCES_DIR], datasets[QUERIES_DIR]
    report = evaluate_encoder(model, refs, queries, device, split="test", k=args.k)
    grid = posixpath.join(args.out, "top10.png")
    write_top_matches_grid(grid, report, refs, queries)
    k = args.k
    print(f"\nmodel {outcome.model_uri}; gallery {report['gallery_models']} models")
    print(f"{'queries':<22} {'n':>4} {f'hit@{k}':>7} {f'mAP@{k}':>7} {'hit@1':>6} {'top5%':>6}")
    for name, block in [("all", report["overall"]), *report["groups"].items()]:
        print(f"{name:<22} {block['queries']:>4} {block[f'hit@{k}']:>7.3f} "
              f"{block[f'mAP@{k}']:>7.3f} {block['hit@1']:>6.3f} {block['top5%']:>6.3f}")
    print(f"top-10 matches: {grid}")


if __name__ == "__main__":
    run_main(main)
