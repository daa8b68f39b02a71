"""Fit an index version's calibrated P(true model in the top 10) on held-out queries.

    python -m jobs.calibrate --index ROOT --queries PATH [--version V] [--split val]
        [--folds 5] [--threshold 0.5]

Searches every query of the split through the index as Serve does, prints the cross-validated
reliability table and expected calibration error, then writes ROOT/calibration/VERSION.json.
Serve reads it at start and on POST /v1/index/reload, and then answers `/v1/search` with
`p_top10` and `confident` (below the threshold: "no confident match"). Use queries that were
not used for training the encoder (the synthetic query set's val split by default).
"""

from __future__ import annotations

import argparse

from jobs.common import log, run_main
from shoematch.crisp.runtime import DEFAULT_RUNTIME, RUNTIMES
from shoematch.data.dataset import open_dataset
from shoematch.data.schema import QUERY_KIND
from shoematch.index.calibration import fit_calibration, query_evidence
from shoematch.index.reader import SearchIndex
from shoematch.retrieval.confidence import save_calibrator
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
    print(f"{fit.queries} queries, hit@10 {fit.hit_rate:.3f}; cross-validated ({args.folds} "
          f"folds) expected calibration error {fit.ece:.3f}")
    print("| predicted | queries | mean predicted | observed |\n|---|---|---|---|")
    for row in fit.reliability:
        low, high = row["range"]
        print(f"| {low:.1f}–{high:.1f} | {row['queries']} | {row['predicted']:.2f} | "
              f"{row['observed']:.2f} |")
    path = save_calibrator(open_store(args.index), index.version, fit.calibrator,
                           {"queries": args.queries, "split": args.split,
                            "fitted_on": fit.queries, "ece_cv": fit.ece})
    log.info("calibrator of index version %s written to %s/%s", index.version, args.index, path)
    return 0


if __name__ == "__main__":
    run_main(main)
