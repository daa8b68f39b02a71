"""CriSp on the FID-300 development split, on CPU: train on the 1175 print-only references
(each its own class, two augmented views per pair), evaluate the 100 dev probes against all
references with CMC, with and without placement search, next to published methods.

    python -m benchmarks.crisp_fid300 [--out runs/fid300] [--steps 500] [--src DIR]

The dev split is for development and tuning; its numbers are not final figures.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from jobs import ingest as ingest_job
from shoematch.config import load_config
from shoematch.crisp.config import CrispTrainConfig
from shoematch.crisp.store import load_encoder
from shoematch.data.dataset import open_dataset
from shoematch.ray.cluster import init_ray
from shoematch.ray.crisp import train_crisp
from shoematch.retrieval.evaluation import evaluate_encoder
from shoematch.retrieval.placement import PlacementConfig

CONFIG = "configs/crisp_fid300.yaml"
PUBLISHED = {  # FID-300 README, this dev split (percent)
    "ACCV14": (14.0, 28.0, 40.0, 49.0, 1.0, 10.0),
    "BMVC16": (26.0, 50.0, 59.0, 74.0, 11.0, 24.0),
    "LoG16": (61.0, 77.0, 83.0, 87.0, 36.0, 55.0),
}
COLUMNS = ("top1%", "top5%", "top10%", "top20%", "hit@1", "hit@10")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/fid300")
    parser.add_argument("--src", default="../shared/data/fid300")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--height", type=int, default=128, help="canvas height")
    parser.add_argument("--width", type=int, default=256, help="canvas width")
    parser.add_argument("--scale", type=float, default=1 / 3,
                        help="image scale: 1/3 of FID-300's 20 px/cm fits a 128x256 canvas")
    parser.add_argument("--model", default=None, help="evaluate this MODEL_URI, skip training")
    args = parser.parse_args()
    data = os.path.join(args.out, "data")
    if not os.path.exists(os.path.join(data, "queries", "manifest.json")):
        ingest_job.main(["--format", "fid300", "--src", args.src, "--out", data,
                         "--height", str(args.height), "--width", str(args.width),
                         "--scale", str(args.scale)])
    refdb, queries = open_dataset(f"{data}/references"), open_dataset(f"{data}/queries")
    minutes = 0.0
    model_uri = args.model
    if model_uri is None:
        init_ray()
        overrides = [f"data.refdb={data}/references", f"data.val_queries={data}/queries",
                     f"ray.storage_path={args.out}/ray",
                     f"mlflow.tracking_uri=sqlite:///{args.out}/mlflow.db",
                     f"optim.steps={args.steps}"]
        started = time.monotonic()
        model_uri = train_crisp(load_config(CrispTrainConfig, CONFIG, overrides)).model_uri
        minutes = (time.monotonic() - started) / 60
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_encoder(model_uri).model.to(device)
    rows = {}
    for name, placement in (("CriSp (ours, centred)", None),
                            ("CriSp (ours, placement search)", PlacementConfig())):
        started = time.monotonic()
        report = evaluate_encoder(model, refdb, queries, device, k=100, placement=placement)
        seconds = (time.monotonic() - started) / max(report["overall"]["queries"], 1)
        rows[name] = [100 * report["overall"][c] for c in COLUMNS] + [seconds]
    print(f"\nFID-300 dev split: {len(queries)} probes vs {len(refdb)} references; "
          f"model {model_uri}; training {minutes:.1f} min on CPU")
    print("| method | " + " | ".join(COLUMNS) + " | s/probe |")
    print("|---|" + "---|" * (len(COLUMNS) + 1))
    for name, values in PUBLISHED.items():
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in values) + " | |")
    for name, values in rows.items():
        print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in values[:-1])
              + f" | {values[-1]:.2f} |")
    with open(os.path.join(args.out, "fid300.json"), "w") as handle:
        json.dump({"model": model_uri, "rows": rows, "train_minutes": minutes}, handle, indent=2)


if __name__ == "__main__":
    main()
