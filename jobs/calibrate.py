"""Fit an index version's calibrated P(true model in the top 10) on held-out queries.

    python -m jobs.calibrate --index ROOT --queries PATH [--version V] [--split val]
        [--folds 5] [--threshold 0.5]

Searches every query of the split through the index as Serve does, prints the cross-validated
reliability table and expected calibration error, then writes ROOT/calibration/VERSION.json:
the calibrator when the quality gate passes (≥ 50 queries with ≥ 10 hits and ≥ 10 misses,
cross-validated ECE < 0.10), else "uncalibrated" with the reason. Serve reads it at start and on
POST /v1/index/reload, and then answers `/v1/search` with `p_top10` and `confident` (below the
threshold: "no confident match"), or `p_top10: null` and the `confidence_reason`. Use queries
that were not used for training the encoder (the synthetic query set's val split by default).
"""

from __future__ import annotations

import argparse

from jobs.common import log, run_main
from shoematch.crisp.runtime import DEFAULT_RUNTIME, RUNTIMES
from shoematch.data.dataset import open_dataset
from shoematch.data.schema import QUERY_KIND
from shoematch.index.calibration import fit_calibration, query_evidence
from shoematch.index.reader import SearchIndex
from shoematch.retrieval.confidence import calibration_path, save_calibration
from shoematch.storage import open_store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.calibrate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True, help="index root (dir or s3://)")
    parser.add_argument("--version", default=None, help="default: the CURRENT version")
    parser.add_argument("--queries", required=True, help="query dataset with known targets")
    parser.add_argument("--split", default="val", help="held-out split ('' for all)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--encoder-runtime", default=DEFAULT_RUNTIME, choices=RUNTIMES,
                        help="as Serve's encoder_runtime (default: Serve's default)")
    args = parser.parse_args(argv)
    if not 0 < args.threshold < 1 or args.folds < 2:
        parser.error("--threshold must be in (0, 1) and --folds ≥ 2")
    index = SearchIndex.load(args.index, args.version)
    features, hits = query_evidence(index, open_dataset(args.queries, QUERY_KIND),
                                    args.split or None, args.encoder_runtime)
    fit = fit_calibration(features, hits, args.folds, args.threshold)
    ece = "not computed" if fit.ece is None else f"{fit.ece:.3f}"
    print(f"{fit.queries} queries, hit@10 {fit.hit_rate:.3f}; cross-validated ({args.folds} "
          f"folds) expected calibration error {ece}")
    if fit.reliability:
        print("| predicted | queries | mean predicted | observed |\n|---|---|---|---|")
    for row in fit.reliability:
        low, high = row["range"]
        print(f"| {low:.1f}–{high:.1f} | {row['queries']} | {row['predicted']:.2f} | "
              f"{row['observed']:.2f} |")
    calibration = save_calibration(
        open_store(args.index), index.version, fit.calibrator,
        {"queries": args.queries, "split": args.split, "fitted_on": fit.queries,
         "hits": fit.hits, "ece_cv": fit.ece})
    if calibration.reason:
        print(f"index version {index.version}: UNCALIBRATED ({calibration.reason}); "
              "/v1/search answers p_top10 = null with this reason")
    else:
        print(f"index version {index.version}: calibrated (cross-validated ECE {ece} on "
              f"{fit.queries} queries); /v1/search answers p_top10")
    log.info("calibration of index version %s written to %s/%s", index.version, args.index,
             calibration_path(index.version))
    return 0


if __name__ == "__main__":
    run_main(main)
