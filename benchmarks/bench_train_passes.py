"""CriSp training time with a Ray Data pass per epoch (the baseline) against several epochs in
one pass (`ray.epochs_per_pass`, default: as many as the run needs), in the same run.

    python -m benchmarks.bench_train_passes [--steps 24] [--models 16] [--batch-models 2]

Both variants train the same tiny encoder (2 DDP workers on CPU, gloo) on the same synthetic
classes for the same steps. For each it prints the pipeline passes, the seconds from the first to
the last step (MLflow's step timestamps: every pass but the first starts inside this span), that
span per step, the images trained per second over it, and the whole `train_crisp` call
(grouping, checkpoints and registration included). A pass starts a new augmentation actor pool
while the DDP workers wait for data.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time

from benchmarks.common import REPO, training_span


def synth(out: str, models: int) -> str:
    if not os.path.exists(os.path.join(out, "queries", "manifest.json")):
        subprocess.run([sys.executable, "-m", "jobs.synth", "--out", out, "--models", str(models),
                        "--instances", "2", "--queries", "8", "--seed", "11", "--height", "64",
                        "--width", "128", "--local"], cwd=REPO, check=True, capture_output=True)
    return out


def training_classes(refdb: str) -> int:
    from shoematch.data.dataset import open_dataset

    table = open_dataset(refdb).read_table(["split", "model_id"]).to_pydict()
    return len({m for m, s in zip(table["model_id"], table["split"], strict=True)
                if s == "train"})


def run(work: str, data: str, steps: int, batch_models: int, epochs_per_pass: int | None
        ) -> dict[str, float]:
    from shoematch.crisp.config import CrispTrainConfig
    from shoematch.ray.crisp import train_crisp

    name = f"passes-{epochs_per_pass or 'auto'}-{os.getpid()}"
    config = CrispTrainConfig.model_validate({
        "data": {"refdb": f"{data}/references", "label": "model"},
        "model": {"arch": "resnet18", "embed_dim": 16},
        "optim": {"steps": steps, "batch_models": batch_models},
        "schedule": {"log_every": 1, "checkpoint_every": steps},
        "ray": {"num_workers": 2, "cpus_per_worker": 0.5, "aug_actors": 1,
                "aug_actor_cpus": 0.25, "aug_batch_size": 8, "group_partitions": 2,
                "epochs_per_pass": epochs_per_pass, "storage_path": f"{work}/ray",
                "run_name": name},
        "mlflow": {"tracking_uri": f"sqlite:///{work}/mlflow.db", "experiment": "passes",
                   "registered_model": None}})
    started = time.perf_counter()
    train_crisp(config)
    total = time.perf_counter() - started
    span, steps, images = training_span(config.mlflow.tracking_uri, "passes", name)
    return {"span": span, "steps": steps, "images": images, "total": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--models", type=int, default=16)
    parser.add_argument("--batch-models", type=int, default=2)
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "bench_passes"))
    args = parser.parse_args()
    from shoematch.ray.cluster import init_ray
    from shoematch.training.passes import plan_passes

    os.makedirs(args.work, exist_ok=True)
    data = synth(os.path.join(args.work, "data"), args.models)
    init_ray(local_cpus=4)
    results = {}
    for label, epochs in (("a pass per epoch", 1), ("epochs in one pass", None)):
        results[label] = run(args.work, data, args.steps, args.batch_models, epochs)
        results[label]["epochs"] = epochs
    print(f"\n{args.steps} steps, 2 workers × {args.batch_models} classes per batch, "
          f"{training_classes(f'{data}/references')} training classes (synthetic models)")
    print("| variant | epochs per pass | passes | first → last step s | s per step | "
          "images/s over that span | train_crisp s |")
    print("|---|---|---|---|---|---|---|")
    classes = training_classes(f"{data}/references")
    for label, result in results.items():
        plan = plan_passes(classes, 2, 2, args.batch_models, args.steps, "label",
                           result["epochs"])
        print(f"| {label} | {plan.epochs} | {math.ceil(args.steps / plan.batches)} | "
              f"{result['span']:.1f} | {result['span'] / max(1, result['steps'] - 1):.2f} | "
              f"{result['images'] / result['span']:.1f} | {result['total']:.1f} |")
    base, new = results["a pass per epoch"], results["epochs in one pass"]
    print(f"\nfirst → last step: {base['span'] / new['span']:.1f}× faster in one pass; "
          f"whole call {base['total'] / new['total']:.2f}×")


if __name__ == "__main__":
    main()
