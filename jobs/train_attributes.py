"""Train the attribute model with Ray Train (DDP) on a reference db, logging to MLflow.

    python -m jobs.train_attributes --config configs/attributes_tiny.yaml [key=value ...]
    ray job submit --working-dir . -- python -m jobs.train_attributes --config ...

Every DDP worker decodes the training shoes' catalogue and street photos and trains one shared
backbone with one head per attribute on the attribute losses plus the domain-weighted triplet
loss (α same-domain, β cross-domain) and the viewpoint-invariant loss (λ), re-mining hard
negatives every `mining.every` steps. Rank 0 logs and checkpoints; re-submitting the same
`ray.run_name` resumes. The driver then evaluates street → catalogue top-k accuracy and
per-attribute accuracy on the evaluation split and registers the model (alias `current`).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

from jobs.common import init_ray, log, run_main
from shoematch.attributes.config import AttributeTrainConfig, with_absolute_paths
from shoematch.attributes.data import check_attribute_data
from shoematch.config import dump_config, flatten, load_config
from shoematch.data.dataset import open_dataset

MODEL_DIR = "attribute_model"


def parse_args(argv: list[str] | None) -> AttributeTrainConfig:
    parser = argparse.ArgumentParser(prog="python -m jobs.train_attributes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML config (see configs/)")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    args = parser.parse_args(argv)
    return load_config(AttributeTrainConfig, args.config, args.overrides)


def train_loop(loop_config: dict) -> None:
    """Runs on every Ray Train worker."""
    import mlflow
    import ray.train
    import ray.train.torch
    import torch

    from shoematch.attributes.predict import build_model, save_attribute_model
    from shoematch.attributes.report import training_shoes
    from shoematch.attributes.training import train_steps
    from shoematch.training.ray_train import report, resume_state, save_state

    config = AttributeTrainConfig.model_validate(loop_config["config"])
    vocabulary = loop_config["vocabulary"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(config.optim.seed)
    data = training_shoes(open_dataset(config.data.refdb), config, vocabulary)
    net = build_model(config.model, vocabulary)
    model = ray.train.torch.prepare_model(net)  # on its device before the optimizer state
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.optim.lr,
                                  weight_decay=config.optim.weight_decay)
    start = 0
    state = resume_state(device)
    if state:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
        if rank == 0:
            print(f"resumed from checkpoint at step {start}", flush=True)
    client = mlflow.MlflowClient(loop_config["tracking_uri"]) if rank == 0 else None
    run_id, steps = loop_config["run_id"], config.optim.steps
    window = {"start": time.monotonic(), "steps": 0}
    per_step = config.optim.models_per_batch * (config.optim.shop_views + 1) * world

    def save(directory: str, step: int) -> None:
        save_state(directory, model, optimizer, step)
        save_attribute_model(os.path.join(directory, MODEL_DIR), model, config.model,
                             vocabulary, {"step": step, "run_id": run_id})

    def on_step(step: int, losses: dict[str, float]) -> None:
        window["steps"] += 1
        if client is not None and (step % config.schedule.log_every == 0 or step == steps):
            rate = window["steps"] * per_step / max(time.monotonic() - window["start"], 1e-9)
            window.update(start=time.monotonic(), steps=0)
            for key, value in {**losses, "images_per_s": rate}.items():
                client.log_metric(run_id, key, value, step=step)
            print(f"step {step}/{steps} loss {losses['loss']:.4f} {rate:.1f} img/s", flush=True)
        if step % config.schedule.checkpoint_every == 0 or step == steps:
            report({**losses, "step": step}, step, (lambda d: save(d, step)) if rank == 0 else None)

    if steps == 0 and state is None:  # the untrained baseline: checkpoint the initial model
        report({"step": steps}, steps, (lambda d: save(d, steps)) if rank == 0 else None)
    train_steps(model, optimizer, data, config, device, start, rank, on_step)


@dataclass
class TrainOutcome:
    model_uri: str | None
    checkpoint: str
    report: dict


def log_evaluation(client, run_id: str, config: AttributeTrainConfig, predictor) -> dict:
    from shoematch.attributes.report import score_model

    report = score_model(predictor.model, config, predictor.vocabulary)
    k = config.schedule.k
    client.log_metric(run_id, f"top{k}_street_to_catalogue", report[f"top{k}"])
    for name, value in report["attributes"].items():
        if value == value:  # NaN: no known values in the evaluation split
            client.log_metric(run_id, f"attr_acc_{name}", value)
            client.log_metric(run_id, f"attr_majority_{name}", report["majority"][name])
    client.log_dict(run_id, report, "evaluation/report.json")
    return report


def train(config: AttributeTrainConfig) -> TrainOutcome:
    """Check inputs, train on the Ray cluster, evaluate, register the model in MLflow."""
    config = with_absolute_paths(config)
    provenance = check_attribute_data(config.data, config.optim.models_per_batch)
    vocabulary = provenance.pop("vocabulary")
    import mlflow

    from shoematch import tracking
    from shoematch.attributes.predict import load_attribute_model
    from shoematch.training.ray_train import fit

    tracking_uri = tracking.configure(config.mlflow.tracking_uri, config.mlflow.experiment)
    params = {**flatten(config), **provenance, "attributes": ",".join(vocabulary),
              "git_commit": tracking.git_commit()}
    run_id = tracking.find_or_create_run(config.ray.run_name, params,
                                         {"job": "train_attributes"})
    init_ray()
    log.info("training %s: %d workers, %d steps; config:\n%s", config.ray.run_name,
             config.ray.num_workers, config.optim.steps, dump_config(config))
    result = fit(train_loop, {"config": config.model_dump(mode="json"), "run_id": run_id,
                              "tracking_uri": tracking_uri, "vocabulary": vocabulary}, config.ray)
    client = mlflow.MlflowClient()
    with result.checkpoint.as_directory() as directory:
        model_dir = os.path.join(directory, MODEL_DIR)
        predictor = load_attribute_model(model_dir)
        report = log_evaluation(client, run_id, config, predictor)
        model_uri = tracking.log_and_register(run_id, model_dir, MODEL_DIR,
                                              config.mlflow.registered_model)
    client.log_metric(run_id, "final_step", predictor.info.get("step", 0))
    client.set_terminated(run_id)
    return TrainOutcome(model_uri, result.checkpoint.path, report)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    outcome = train(config)
    k = config.schedule.k
    print(f"model: {outcome.model_uri}")
    print(f"checkpoint: {outcome.checkpoint}")
    print(f"top{k} street -> catalogue: {outcome.report[f'top{k}']:.4f} "
          f"({outcome.report['queries']} queries, {outcome.report['gallery_models']} shoes)")
    for name, value in outcome.report["attributes"].items():
        print(f"accuracy {name}: {value:.4f} (majority {outcome.report['majority'][name]:.4f})")
    return 0


if __name__ == "__main__":
    run_main(main)
