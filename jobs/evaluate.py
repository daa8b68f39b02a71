"""Evaluate a matcher: rank unique shoe models for every query and report metrics.

    python -m jobs.evaluate --model MODEL_URI --refdb PATH --queries PATH [--split test]
        [--k 100] [--out DIR] [--mlflow-uri sqlite:///runs/mlflow.db]
        [--matcher cells|dense|cells+dense] [--rerank-n 100] [--dense-config YAML key=value …]

Matchers: `cells` the CriSp encoder's cell scan (default); `dense` MCNCC on pretrained feature
maps over the whole reference set (no --model needed); `cells+dense` the cell stage's top-N
models re-ranked by the dense score of each one's best instance (the first stage's recall at N
is reported), as Serve's `rerank` does.

MODEL_URI: an encoder directory, Ray checkpoint, s3:// prefix, or models:/name/version.
Writes OUT/report.json (hit@K, mAP@K, CMC at 1/5/10/20% of the gallery, by category and
seen/unseen, per-query ranks) and OUT/top10.png (sample queries with their top-10 matches),
and logs both to MLflow.
"""

from __future__ import annotations

import argparse
import json
import os

import torch

from jobs.common import log, run_main
from shoematch.crisp.store import load_encoder
from shoematch.data.dataset import Dataset, open_dataset
from shoematch.data.schema import QUERY_KIND, REFERENCE_KIND
from shoematch.dense.component import load_dense_config
from shoematch.dense.evaluation import evaluate_dense
from shoematch.dense.matcher import DenseMatcher
from shoematch.errors import DatasetError
from shoematch.evaluation.evaluation import cell_stage, retrieval_report
from shoematch.evaluation.placement import PlacementConfig
from shoematch.evaluation.report_grid import write_top_matches_grid

MATCHERS = ("cells", "dense", "cells+dense")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="MODEL_URI (the cell stage's encoder)")
    parser.add_argument("--refdb", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--split", default=None, help="only queries of this split")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--out", default="runs/eval")
    parser.add_argument("--samples", type=int, default=6, help="queries shown in the PNG grid")
    parser.add_argument("--placement", action="store_true",
                        help="score each query at several positions/scales, keep the best "
                             "(for probes not placed on the sole, e.g. FID-300)")
    parser.add_argument("--no-query-mask", action="store_true",
                        help="score every cell of the query (the ablation without masking)")
    parser.add_argument("--mlflow-uri", default=None, help="log to this MLflow store")
    parser.add_argument("--experiment", default="crisp-eval")
    parser.add_argument("--matcher", choices=MATCHERS, default="cells")
    parser.add_argument("--rerank-n", type=int, default=100,
                        help="cells+dense: models of the cell stage re-ranked")
    parser.add_argument("--dense-config", nargs="+", default=[], metavar="YAML|KEY=VALUE",
                        help="DenseConfig: a YAML file and/or key=value items")
    args = parser.parse_args(argv)
    if args.matcher != "dense" and not args.model:
        parser.error(f"--matcher {args.matcher} needs --model")
    if args.rerank_n < 1:
        parser.error("--rerank-n must be ≥ 1")
    return args


def run_matcher(args: argparse.Namespace, refdb: Dataset, queries: Dataset) -> dict:
    """The report of the chosen matcher (the cell stage first when it takes part)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    stage = None
    if args.matcher != "dense":
        loaded = load_encoder(args.model)
        stage = cell_stage(loaded.model.to(device), refdb, queries, device, split=args.split,
                           mask_queries=loaded.config.pooling == "spatial"
                           and not args.no_query_mask,
                           placement=PlacementConfig() if args.placement else None)
    if args.matcher == "cells":
        assert stage is not None
        report = retrieval_report(stage.queries, stage.references, k=args.k,
                                  scores=stage.scores)
    else:
        matcher = DenseMatcher(load_dense_config(args.dense_config), device)
        report = evaluate_dense(matcher, refdb, queries, split=args.split, k=args.k,
                                first_stage=stage, rerank_n=args.rerank_n)
    if stage is not None and stage.placement is not None:
        report["placement"] = stage.placement
    report["matcher"] = args.matcher
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    refdb = open_dataset(args.refdb, REFERENCE_KIND)
    queries_ds = open_dataset(args.queries, QUERY_KIND)
    if refdb.canvas != queries_ds.canvas:
        raise DatasetError(f"canvas mismatch: references {refdb.canvas}, queries "
                           f"{queries_ds.canvas}")
    if not any(args.split is None or s == args.split
               for s in queries_ds.read_table(["split"]).column("split").to_pylist()):
        raise DatasetError(f"{args.queries}: no queries (split {args.split!r})")
    report = run_matcher(args, refdb, queries_ds)
    report["model"], report["refdb"], report["queries"] = args.model, args.refdb, args.queries
    os.makedirs(args.out, exist_ok=True)
    report_path = os.path.join(args.out, "report.json")
    with open(report_path, "w") as handle:
        json.dump(report, handle, indent=2)
    grid_path = os.path.join(args.out, "top10.png")
    write_top_matches_grid(grid_path, report, refdb, queries_ds, samples=args.samples)
    overall = report["overall"]
    print(json.dumps({"matcher": args.matcher, "overall": overall, "groups": report["groups"],
                      "first_stage": report.get("first_stage")}, indent=2))
    if args.mlflow_uri:
        import mlflow

        from shoematch import tracking

        tracking.configure(args.mlflow_uri, args.experiment)
        with mlflow.start_run(run_name="evaluate"):
            mlflow.log_params({"model": args.model, "refdb": args.refdb,
                               "queries": args.queries, "split": args.split, "k": args.k,
                               "matcher": args.matcher, "rerank_n": args.rerank_n})
            mlflow.log_metrics({key.replace("@", "_at_").replace("%", "pct"): value
                                for key, value in overall.items()
                                if isinstance(value, int | float)})
            mlflow.log_artifact(report_path)
            mlflow.log_artifact(grid_path)
    log.info("report: %s, grid: %s", report_path, grid_path)
    return 0


if __name__ == "__main__":
    run_main(main)
