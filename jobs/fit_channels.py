"""Fit the dense matcher's per-channel weights on labelled prints: crime-scene prints whose
true model is known (casework, or a benchmark's probes), against the reference set.

    python -m jobs.fit_channels --refdb PATH --queries PATH --out FILE.pt [--split S]
        [--dense-config YAML|KEY=VALUE ...] [--fit KEY=VALUE ...]

Scores every query against every reference (each channel's correlation at the best
translations), prints top 1 % and hit@10 with equal weights and with weights fitted by
cross-validation folds (the estimate for prints not fitted on), then fits on every query and
writes FILE.pt: a matcher weights file, used as `weights=FILE.pt` in the dense config of
`jobs.reindex --dense`, `jobs.evaluate --matcher dense` and so Serve's re-ranking.
"""

from __future__ import annotations

import argparse
import os

import torch

from jobs.common import log, run_main
from shoematch.config import load_config
from shoematch.data.dataset import open_dataset
from shoematch.data.schema import QUERY_KIND, REFERENCE_KIND
from shoematch.dense.channel_fit import (
    ChannelFitConfig,
    cross_validated_ranks,
    dataset_evidence,
    fit_channel_weights,
)
from shoematch.dense.component import load_dense_config
from shoematch.dense.matcher import DenseMatcher
from shoematch.errors import ConfigError, DatasetError
from shoematch.retrieval.metrics import cmc_threshold


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.fit_channels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refdb", required=True, help="reference dataset (with px_per_cm)")
    parser.add_argument("--queries", required=True, help="query dataset with known targets")
    parser.add_argument("--out", required=True, help="weights file to write (local path)")
    parser.add_argument("--split", default="", help="only this split ('' for all)")
    parser.add_argument("--dense-config", nargs="+", default=[], metavar="YAML|KEY=VALUE",
                        help="DenseConfig: a YAML file and/or key=value items")
    parser.add_argument("--fit", nargs="+", default=[], metavar="KEY=VALUE",
                        help="ChannelFitConfig items (l2, steps, lr, top_k, folds, seed)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if "://" in args.out:
        raise ConfigError(f"--out {args.out}: the matcher loads weights from a local file")
    dense = load_dense_config(args.dense_config)
    fit = load_config(ChannelFitConfig, None, args.fit)
    matcher = DenseMatcher(dense)
    body = getattr(matcher.net, "body", None)
    if body is None:
        raise ConfigError(f"backbone {dense.backbone!r} has no channels to weight")
    evidence, targets, skipped = dataset_evidence(
        matcher, open_dataset(args.refdb, REFERENCE_KIND), open_dataset(args.queries, QUERY_KIND),
        args.split or None, fit.top_k)
    if len(evidence) < 2 * fit.folds:
        raise DatasetError(f"{len(evidence)} usable labelled queries: fitting needs at least "
                           f"{2 * fit.folds} ({fit.folds} folds)")
    for item in skipped:
        log.warning("query %s left out: %s", item["query_id"], item["reason"])
    equal, fitted = cross_validated_ranks(evidence, targets, fit)
    cutoff = cmc_threshold(1, targets.shape[1])
    print(f"{len(evidence)} queries × {targets.shape[1]} references ({len(skipped)} left out)")
    print("| weights | top 1 % | hit@10 |\n|---|---|---|")
    for name, ranks in (("equal", equal), (f"fitted, {fit.folds}-fold cross-validation", fitted)):
        print(f"| {name} | {100 * (ranks <= cutoff).float().mean():.1f} | "
              f"{100 * (ranks <= 10).float().mean():.1f} |")
    weights = fit_channel_weights(evidence, targets, fit)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.save({"body": body.state_dict(), "channel_weights": weights}, args.out)
    print(f"weights: {args.out} (channel weights {weights.min():.2f}–{weights.max():.2f}); "
          f"use it as weights={args.out} in a dense config")
    return 0


if __name__ == "__main__":
    run_main(main)
