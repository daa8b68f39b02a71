"""The attribute model against its baselines on synthetic data, on CPU: street → catalogue
top-20 accuracy and per-attribute accuracy.

    python -m benchmarks.attribute_baselines [--out runs/aux-bench] [--models 120] [--steps 150]

Settings (configs/attributes_tiny.yaml otherwise, ResNet-18 from scratch, single-process
trainings run as parallel Ray tasks): untrained features; attribute loss only; triplet loss only
(α/β-weighted, hard-mined); the full model (attribute + triplet + viewpoint-invariant λ).
Queries are the street photos of the held-out test shoes; the gallery is every shoe's catalogue
photos. Also prints the majority-value accuracy per attribute (the floor).
"""

from __future__ import annotations

import argparse
import math
import time

from benchmarks.descriptor_sweep import synthetic_refdb
from shoematch.attributes.config import AttributeTrainConfig
from shoematch.attributes.data import check_attribute_data
from shoematch.config import load_config
from shoematch.ray.cluster import init_ray
from shoematch.training.config import with_absolute_paths

CONFIG = "configs/attributes_tiny.yaml"
SETTINGS = {
    "untrained features": ["optim.steps=0"],
    "attribute loss only": ["loss.triplet=0", "loss.viewpoint=0"],
    "triplet loss only": ["loss.attribute=0", "loss.viewpoint=0"],
    "full model": [],
}


def run_setting(config: dict, vocabulary: dict[str, list[str]]) -> dict:
    from shoematch.attributes.report import score_model, train_local

    started = time.monotonic()
    parsed = AttributeTrainConfig.model_validate(config)
    model = train_local(parsed, vocabulary)
    report = score_model(model, parsed, vocabulary)
    report["seconds"] = time.monotonic() - started
    return report


def cell(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def main() -> None:
    import ray

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/aux-bench")
    parser.add_argument("--models", type=int, default=120)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="extra config overrides for every setting")
    args = parser.parse_args()
    refdb = synthetic_refdb(args.out, args.models)
    base = [f"data.refdb={refdb}", f"optim.steps={args.steps}", *args.set]
    configs = {name: with_absolute_paths(load_config(AttributeTrainConfig, CONFIG,
                                                     [*base, *extra]))
               for name, extra in SETTINGS.items()}
    first = next(iter(configs.values()))
    provenance = check_attribute_data(first.data, first.optim.models_per_batch)
    vocabulary = provenance["vocabulary"]
    print(f"shoes: train {provenance['train_models']}, test {provenance['eval_models']}; "
          f"{args.steps} steps × {first.optim.models_per_batch} shoes × "
          f"{first.optim.shop_views + 1} photos")
    init_ray()
    task = ray.remote(num_cpus=1)(run_setting)
    reports = dict(zip(configs, ray.get([task.remote(c.model_dump(mode="json"), vocabulary)
                                         for c in configs.values()]), strict=True))
    k = first.schedule.k
    names = list(vocabulary)
    print(f"\n| setting | top-{k} street → catalogue | " + " | ".join(names) + " | seconds |")
    print("|---|---|" + "---|" * len(names) + "---|")
    for name, report in reports.items():
        print(f"| {name} | {report[f'top{k}']:.3f} | "
              + " | ".join(cell(report["attributes"][a]) for a in names)
              + f" | {report['seconds']:.0f} |")
    majority = next(iter(reports.values()))["majority"]
    print("| majority value | — | " + " | ".join(cell(majority[a]) for a in names) + " | |")
    report = next(iter(reports.values()))
    print(f"\n{report['queries']} street queries against {report['gallery_models']} shoes' "
          f"catalogue photos (chance top-{k}: {min(1.0, k / report['gallery_models']):.3f})")


if __name__ == "__main__":
    main()
