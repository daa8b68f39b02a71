"""Which probe variants, resolutions and feature blocks help the dense matcher on FID-300, one row
each: variants around the earlier default (Lite1 block 6, ImageNet, 10 px/cm, the probe as it is)
and the blocks and resolutions tried around the current one (Lite1 block 10, 20 px/cm).

    python -m benchmarks.fid300_variants --src DIR [--out DIR] [--rows NAME ...] [--probes N]

Every row is a `DenseConfig` the index and Serve accept as they are; nothing is trained and
nothing is fitted on the probes. "fused" rows add each probe's per-model z-scores (its scores
against its own distribution over the gallery) of two rows: a fixed rule, no weights. Rows were
chosen before scoring from what crime-scene prints vary in (rotation, scale, resolution); the
dev figures of any row picked *after* seeing this table are optimistic — say so beside them.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from benchmarks.fid300 import BLOCK6, COLUMNS, evaluate_dense
from benchmarks.fid300_channels import FUSED, combine, target_ranks
from benchmarks.fid300_data import FidData, load_fid
from shoematch.dense.matcher import DenseConfig
from shoematch.dense.ranking import cmc_percent

ROWS = {
    "block 6, 10 px/cm (no variants)": DenseConfig(**BLOCK6),
    "rotations ±5°": DenseConfig(**BLOCK6, rotations=(-5.0, 0.0, 5.0), probe_grid=(30, 54)),
    "rotations ±10°": DenseConfig(**BLOCK6, rotations=(-10.0, 0.0, 10.0), probe_grid=(30, 54)),
    "scales ±7 %": DenseConfig(**BLOCK6, scales=(0.93, 1.0, 1.07), probe_grid=(30, 54)),
    "6.7 px/cm": DenseConfig(block=6, px_per_cm=20 / 3, probe_grid=(18, 34)),
    "13 px/cm": DenseConfig(block=6, px_per_cm=13.0, probe_grid=(32, 62)),
    "block 10, 20 px/cm (the default)": DenseConfig(),
    "block 10, 16 px/cm": DenseConfig(px_per_cm=16.0, probe_grid=(20, 40)),
    "block 10, 24 px/cm": DenseConfig(px_per_cm=24.0, probe_grid=(29, 58)),
    "block 8, 20 px/cm": DenseConfig(block=8),
    "block 12, 20 px/cm (112 channels)": DenseConfig(block=12),
}
FUSED_PAIRS = (("block 6, 10 px/cm (no variants)", "6.7 px/cm"),
               ("block 6, 10 px/cm (no variants)", "13 px/cm"))


def fused_row(data: FidData, scored: list[list[np.ndarray]]) -> dict:
    """Ranks by the sum over rows of each probe's per-model z-scores (a fixed rule, no weights)."""
    fused = combine({str(i): np.stack(rows) for i, rows in enumerate(scored)}, FUSED)
    ranks = target_ranks(fused, data, np.arange(len(data.probes))).tolist()
    return {**cmc_percent(ranks, len(set(data.reference_models))), "ranks": ranks}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", default="../shared/data/fid300")
    parser.add_argument("--out", default="runs/fid300")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--probes", type=int, default=None, help="first N probes only")
    args = parser.parse_args(argv)
    data = load_fid(args.src, os.path.join(args.out, "data"))
    if args.probes:
        data.probes = data.probes[:args.probes]
    rows, scored = {}, {}
    for name in args.rows:
        rows[name], scored[name], *_ = evaluate_dense(data, ROWS[name])
        print(f"{name}: " + " ".join(f"{k} {rows[name][k]:.0f}" for k in COLUMNS)
              + f" | {rows[name]['s_per_probe']:.2f} s/probe", flush=True)
    for pair in FUSED_PAIRS:
        if all(name in scored for name in pair):
            rows[" + ".join(pair) + " (fused)"] = fused_row(data, [scored[n] for n in pair])
    print(f"\nFID-300, {len(data.probes)} probes × {len(data.reference_models)} references")
    print("| dense matcher | " + " | ".join(COLUMNS) + " | s/probe |")
    print("|---|" + "---|" * (len(COLUMNS) + 1))
    for name, row in rows.items():
        seconds = f"{row['s_per_probe']:.2f}" if "s_per_probe" in row else "sum of both"
        print(f"| {name} | " + " | ".join(f"{row[k]:.0f}" for k in COLUMNS) + f" | {seconds} |")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "fid300_variants.json"), "w") as handle:
        json.dump({"rows": rows, "probes": [p.query_id for p in data.probes]}, handle, indent=2)


if __name__ == "__main__":
    main()
