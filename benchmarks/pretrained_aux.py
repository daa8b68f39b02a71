"""The auxiliary models with and without ImageNet pretraining, on synthetic data, on CPU.

    python -m benchmarks.pretrained_aux [--out runs/aux-bench] [--models 120]
        [--descriptor-steps 80] [--attribute-steps 150]

For each body — ResNet-18 from scratch (the benchmarks' default), EfficientNet-Lite0 with random
weights, EfficientNet-Lite0 with the ImageNet weights its package ships — trains the descriptor
model (the sweep's best setting, `inc` N-B-H, configs/descriptor_sweep_tiny.yaml) and the full
attribute model (configs/attributes_tiny.yaml) on the same synthetic reference db as
`benchmarks.descriptor_sweep` / `benchmarks.attribute_baselines`, as parallel Ray tasks, and
prints mean PR-AUC on the held-out patterns and street → catalogue top-K with attribute accuracy.
"""

from __future__ import annotations

import argparse

import ray

from benchmarks.attribute_baselines import CONFIG as ATTRIBUTE_CONFIG
from benchmarks.attribute_baselines import cell, run_setting
from benchmarks.descriptor_sweep import CONFIG as DESCRIPTOR_CONFIG
from benchmarks.descriptor_sweep import prevalence, synthetic_refdb
from shoematch.attributes.config import AttributeTrainConfig
from shoematch.attributes.data import check_attribute_data
from shoematch.config import load_config
from shoematch.descriptors.config import DescriptorSweepConfig
from shoematch.descriptors.data import check_descriptor_data
from shoematch.descriptors.sweep import run_trial
from shoematch.ray.cluster import init_ray
from shoematch.training.config import with_absolute_paths

BODIES = {
    "ResNet-18, from scratch": ["model.arch=resnet18", "model.pretrained=null"],
    "Lite0, random weights": ["model.arch=efficientnet_lite0", "model.pretrained=null"],
    "Lite0, ImageNet": ["model.arch=efficientnet_lite0", "model.pretrained=imagenet"],
}
DESCRIPTOR_SETTING = ("inc", "NBH")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/aux-bench")
    parser.add_argument("--models", type=int, default=120)
    parser.add_argument("--descriptor-steps", type=int, default=80)
    parser.add_argument("--attribute-steps", type=int, default=150)
    args = parser.parse_args()
    refdb = synthetic_refdb(args.out, args.models)
    steps = args.descriptor_steps
    descriptor = {name: with_absolute_paths(load_config(DescriptorSweepConfig, DESCRIPTOR_CONFIG, [
        f"data.refdb={refdb}", f"optim.steps={steps}", f"optim.frozen_steps={steps // 4}",
        *extra])) for name, extra in BODIES.items()}
    attribute = {name: with_absolute_paths(load_config(AttributeTrainConfig, ATTRIBUTE_CONFIG, [
        f"data.refdb={refdb}", f"optim.steps={args.attribute_steps}", *extra]))
        for name, extra in BODIES.items()}
    first = next(iter(descriptor.values()))
    pos_weight = check_descriptor_data(first.data, 1)["pos_weight"]
    some = next(iter(attribute.values()))
    vocabulary = check_attribute_data(some.data, some.optim.models_per_batch)["vocabulary"]
    init_ray()
    descriptor_task = ray.remote(num_cpus=1)(run_trial)
    attribute_task = ray.remote(num_cpus=1)(run_setting)
    pending = {name: (descriptor_task.remote(c.model_dump(mode="json", exclude={"sweep"}),
                                             *DESCRIPTOR_SETTING,
                                             pos_weight),
                      attribute_task.remote(attribute[name].model_dump(mode="json"), vocabulary))
               for name, c in descriptor.items()}
    results = {name: ray.get(list(refs)) for name, refs in pending.items()}
    print(f"\ndescriptor model ({'/'.join(DESCRIPTOR_SETTING)}, {steps} steps): mean PR-AUC on "
          f"held-out patterns (random scorer {prevalence(first.data)['mean']:.3f})")
    print("| body | mean PR-AUC | seconds |\n|---|---|---|")
    for name, (trial, _) in results.items():
        print(f"| {name} | {trial['pr_auc']['mean']:.3f} | {trial['seconds']:.0f} |")
    k = next(iter(attribute.values())).schedule.k
    names = list(vocabulary)
    print(f"\nattribute model (full, {args.attribute_steps} steps): street → catalogue top-{k}")
    print(f"| body | top-{k} | " + " | ".join(names) + " | seconds |")
    print("|---|---|" + "---|" * len(names) + "---|")
    for name, (_, report) in results.items():
        print(f"| {name} | {report[f'top{k}']:.3f} | "
              + " | ".join(cell(report["attributes"][a]) for a in names)
              + f" | {report['seconds']:.0f} |")


if __name__ == "__main__":
    main()
