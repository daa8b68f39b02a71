"""The paper's ablation on the synthetic benchmark (train split → held-out query set), on CPU.

    python -m benchmarks.crisp_ablation [--out runs/ablation] [--steps 450] [--models 300]

Trains three encoders with configs/crisp_synth_bench.yaml (global pooling; spatial features
without masking; CriSp: spatial + feature masking + query masking in training) and evaluates
each on the test queries — the spatial model both without and with query masking at test time —
then prints hit@K / mAP@K / CMC and the wall time of each run. Expected order (docs/decisions.md):
global < spatial < spatial + masking < CriSp.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from jobs import synth as synth_job
from shoematch.config import load_config
from shoematch.crisp.config import CrispTrainConfig
from shoematch.crisp.store import load_encoder
from shoematch.data.dataset import open_dataset
from shoematch.evaluation.evaluation import evaluate_encoder
from shoematch.ray.cluster import init_ray
from shoematch.ray.crisp import train_crisp

CONFIG = "configs/crisp_synth_bench.yaml"
VARIANTS = {
    "global": ["model.pooling=global", "masking.feature_masking=false",
               "masking.query_masking=false"],
    "spatial": ["masking.feature_masking=false", "masking.query_masking=false"],
    "crisp": [],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/ablation")
    parser.add_argument("--steps", type=int, default=450)
    parser.add_argument("--models", type=int, default=300)
    parser.add_argument("--queries", type=int, default=600)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="extra config overrides for every variant")
    parser.add_argument("--tag", default="", help="suffix of the run names (new runs)")
    args = parser.parse_args()
    data = os.path.join(args.out, "data")
    if not os.path.exists(os.path.join(data, "queries", "manifest.json")):
        synth_job.main(["--out", data, "--models", str(args.models), "--instances", "3",
                        "--queries", str(args.queries), "--seed", "11", "--height", "128",
                        "--width", "256"])
    init_ray()
    refdb, queries = open_dataset(f"{data}/references"), open_dataset(f"{data}/queries")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for name in args.variants:
        overrides = [f"data.refdb={data}/references", f"data.val_queries={data}/queries",
                     f"ray.storage_path={args.out}/ray", f"ray.run_name=ablation-{name}{args.tag}",
                     f"mlflow.tracking_uri=sqlite:///{args.out}/mlflow.db",
                     f"optim.steps={args.steps}", *VARIANTS[name], *args.set]
        started = time.monotonic()
        outcome = train_crisp(load_config(CrispTrainConfig, CONFIG, overrides))
        minutes = (time.monotonic() - started) / 60
        model = load_encoder(outcome.model_uri).model.to(device)
        spatial = name != "global"
        for masked in ([False, True] if name == "spatial" else [spatial]):
            report = evaluate_encoder(model, refdb, queries, device, split="test", k=args.k,
                                      mask_queries=masked)
            label = f"{name} + test masking" if name == "spatial" and masked else name
            label += f" {' '.join(args.set)}" if args.set else ""
            rows.append({"variant": label, "minutes": minutes, "model": outcome.model_uri,
                         **report["overall"],
                         "seen": report["groups"].get("seen", {}).get(f"hit@{args.k}"),
                         "unseen": report["groups"].get("unseen", {}).get(f"hit@{args.k}")})
            print(json.dumps(rows[-1]), flush=True)
    k = args.k
    gallery = len(set(refdb.read_table(["model_id"]).column("model_id").to_pylist()))
    print(f"\nsynthetic benchmark: {len(refdb)} references ({gallery} models), test queries, "
          f"{args.steps} steps/run, chance hit@{k} ≈ {k / gallery:.3f}")
    print(f"| variant | hit@{k} | mAP@{k} | top1% | top5% | hit@1 | seen hit@{k} | "
          f"unseen hit@{k} | train min |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['variant']} | {row[f'hit@{k}']:.3f} | {row[f'mAP@{k}']:.3f} | "
              f"{row['top1%']:.3f} | {row['top5%']:.3f} | {row['hit@1']:.3f} | "
              f"{row['seen'] or 0:.3f} | {row['unseen'] or 0:.3f} | {row['minutes']:.1f} |")
    with open(os.path.join(args.out, f"ablation{args.tag}.json"), "w") as handle:
        json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
