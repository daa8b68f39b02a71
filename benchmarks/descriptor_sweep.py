"""The descriptor model's preprocessing × channel-composition sweep on synthetic data, on CPU.

    python -m benchmarks.descriptor_sweep [--out runs/aux-bench] [--models 120] [--steps 80]

Generates a reference db (once), runs the descriptor sweep (5 preprocessing layers ×
3 channel orders, parallel Ray Tune trials, ResNet-18 at 352×144, trained from scratch) and logs
them to MLflow (`OUT/mlflow.db`), then prints mean PR-AUC (and per descriptor) on the held-out test
patterns for every setting, best first, and the best and worst settings.
"""

from __future__ import annotations

import argparse
import os

from jobs import synth as synth_job
from shoematch.config import load_config
from shoematch.data.dataset import open_dataset
from shoematch.data.schema import DESCRIPTOR_CODES
from shoematch.descriptors.config import DescriptorDataConfig, DescriptorSweepConfig
from shoematch.descriptors.data import check_descriptor_data, label_matrix, part_rows
from shoematch.descriptors.report import pr_auc_table
from shoematch.descriptors.sweep import log_results, ranked_results
from shoematch.ray.tune import run_descriptor_sweep
from shoematch.training.config import with_absolute_paths

CONFIG = "configs/descriptor_sweep_tiny.yaml"


def synthetic_refdb(out: str, models: int) -> str:
    """The benchmarks' shared reference db: `models` shoes × 3 instances, seed 21."""
    data = os.path.join(out, "data")
    if not os.path.exists(os.path.join(data, "references", "manifest.json")):
        synth_job.main(["--out", data, "--models", str(models), "--instances", "3",
                        "--queries", "1", "--seed", "21", "--local"])
    return os.path.join(data, "references")


def prevalence(config: DescriptorDataConfig) -> dict[str, float]:
    """Share of evaluation records with each descriptor: the PR-AUC of a random scorer."""
    table = open_dataset(config.refdb).read_table(["split", "pattern_id", "descriptors"])
    descriptors = table.column("descriptors").to_pylist()
    labels = label_matrix([descriptors[i] for i in part_rows(table, config, "eval")], config.refdb)
    share = {code: float(labels[:, k].mean()) if labels[:, k].any() else float("nan")
             for k, code in enumerate(DESCRIPTOR_CODES)}
    defined = [v for v in share.values() if v == v]
    return {**share, "mean": sum(defined) / len(defined)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/aux-bench")
    parser.add_argument("--models", type=int, default=120)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="extra config overrides")
    args = parser.parse_args()
    refdb = synthetic_refdb(args.out, args.models)
    config = with_absolute_paths(load_config(DescriptorSweepConfig, CONFIG, [
        f"data.refdb={refdb}", f"mlflow.tracking_uri=sqlite:///{args.out}/mlflow.db",
        f"optim.steps={args.steps}", f"optim.frozen_steps={args.steps // 4}",
        f"sweep.run_name=descriptor-sweep-{args.models}x{args.steps}", *args.set]))
    provenance = check_descriptor_data(config.data, 1)
    print(f"records: train {provenance['train_records']}, val {provenance['val_records']}, "
          f"eval {provenance['eval_records']}; {args.steps} steps × batch "
          f"{config.optim.batch_size}")
    results = run_descriptor_sweep(config, provenance["pos_weight"])
    print(log_results(config, provenance, results))
    ranked = ranked_results(results)
    print("\nbest and worst:")
    print(pr_auc_table({f"best {ranked[0]['setting']}": ranked[0]["pr_auc"],
                        f"worst {ranked[-1]['setting']}": ranked[-1]["pr_auc"],
                        "random scorer (prevalence)": prevalence(config.data)}))
    print("\nseconds per trial: " + ", ".join(f"{r['setting']} {r['seconds']:.0f}"
                                             for r in ranked))


if __name__ == "__main__":
    main()
