"""Train the NFRC descriptor classifier with Ray Train (DDP) on a reference db, log to MLflow.

    python -m jobs.train_descriptors --config configs/descriptors_tiny.yaml [key=value ...]
    ray job submit --working-dir . -- python -m jobs.train_descriptors --config ...

Each DDP worker decodes its share of the training prints into three resampled channels,
trains the body frozen, then with discriminative learning rates (AdamW), and rank 0 logs and
checkpoints; a re-submission of the same `ray.run_name` resumes. The driver then picks
per-descriptor thresholds on held-out training patterns, evaluates PR-AUC (per descriptor and
mean) and the paper's confusion matrix on the evaluation split, logs Grad-CAM examples, and
registers the model in MLflow (alias `current`).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass

from jobs.common import init_ray, log, run_main
from shoematch.config import dump_config, flatten, load_config
from shoematch.data.dataset import open_dataset
from shoematch.data.schema import DESCRIPTOR_CODES
from shoematch.descriptors.config import DescriptorTrainConfig, with_absolute_paths
from shoematch.descriptors.data import check_descriptor_data

MODEL_DIR = "descriptor_model"


def parse_args(argv: list[str] | None) -> DescriptorTrainConfig:
    parser = argparse.ArgumentParser(prog="python -m jobs.train_descriptors", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML config (see configs/)")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    args = parser.parse_args(argv)
    return load_config(DescriptorTrainConfig, args.config, args.overrides)


def train_loop(loop_config: dict) -> None:
    """Runs on every Ray Train worker."""
    import mlflow
    import numpy as np
    import ray.train
    import ray.train.torch
    import torch

    from shoematch.descriptors.data import load_part
    from shoematch.descriptors.model import DescriptorNet
    from shoematch.descriptors.predict import save_descriptor_model
    from shoematch.descriptors.report import DEFAULT_THRESHOLD
    from shoematch.descriptors.training import make_optimizer, train_steps
    from shoematch.training.ray_train import report, resume_state, save_state

    config = DescriptorTrainConfig.model_validate(loop_config["config"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(config.optim.seed)
    data = load_part(open_dataset(config.data.refdb), config.data, "train",
                     config.model.input_size, config.model.channels, rank, world)
    net = DescriptorNet(**config.model.model_dump())
    model = ray.train.torch.prepare_model(net)  # on its device before the optimizer state
    optimizer = make_optimizer(net, config.optim)
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
    window = {"start": time.monotonic(), "images": 0}

    def save(directory: str, step: int) -> None:
        save_state(directory, model, optimizer, step)
        save_descriptor_model(os.path.join(directory, MODEL_DIR), model, config.model,
                              [DEFAULT_THRESHOLD] * len(DESCRIPTOR_CODES),
                              {"step": step, "run_id": run_id})

    def on_step(step: int, loss: float) -> None:
        window["images"] += config.optim.batch_size * world
        metrics = {"loss": loss, "step": step, "lr": optimizer.param_groups[0]["lr"]}
        if client is not None and (step % config.schedule.log_every == 0 or step == steps):
            rate = window["images"] / max(time.monotonic() - window["start"], 1e-9)
            window.update(start=time.monotonic(), images=0)
            for key, value in (("loss", loss), ("lr", metrics["lr"]), ("images_per_s", rate)):
                client.log_metric(run_id, key, value, step=step)
            print(f"step {step}/{steps} loss {loss:.4f} {rate:.1f} img/s", flush=True)
        if step % config.schedule.checkpoint_every == 0 or step == steps:
            report(metrics, step, (lambda d: save(d, step)) if rank == 0 else None)

    pos_weight = torch.as_tensor(np.asarray(loop_config["pos_weight"], dtype=np.float32))
    train_steps(model, optimizer, data, config.optim, pos_weight, device, start, rank, on_step)


@dataclass
class TrainOutcome:
    model_uri: str | None
    checkpoint: str
    pr_auc: dict[str, float]


def log_evaluation(client, run_id: str, config: DescriptorTrainConfig, predictor) -> dict:
    """Thresholds on val, PR-AUC / confusion / Grad-CAM on eval, all logged to the run."""
    from shoematch.descriptors.data import load_part
    from shoematch.descriptors.report import (
        confusion_csv,
        gradcam_examples,
        pr_auc_table,
        score_model,
    )

    refdb = open_dataset(config.data.refdb)
    size, channels = config.model.input_size, config.model.channels
    val = load_part(refdb, config.data, "val", size, channels)
    test = load_part(refdb, config.data, "eval", size, channels)
    scored = score_model(predictor.model, val, test)
    for code, value in scored["pr_auc"].items():
        if value == value:  # NaN: no positives in the evaluation split
            client.log_metric(run_id, f"pr_auc_{code}", value)
    client.log_text(run_id, pr_auc_table({config.ray.run_name: scored["pr_auc"]}),
                    "evaluation/pr_auc.md")
    client.log_text(run_id, confusion_csv(scored["confusion"]), "evaluation/confusion.csv")
    for name, image in gradcam_examples(predictor.model, test, scored["scores"],
                                        config.schedule.gradcam_descriptors):
        client.log_image(run_id, image, f"evaluation/{name}")
    return scored


def train(config: DescriptorTrainConfig) -> TrainOutcome:
    """Check inputs, train on the Ray cluster, evaluate, register the model in MLflow."""
    config = with_absolute_paths(config)
    provenance = check_descriptor_data(config.data, config.ray.num_workers)
    import mlflow

    from shoematch import tracking
    from shoematch.descriptors.predict import load_descriptor_model, save_descriptor_model
    from shoematch.training.ray_train import fit

    tracking_uri = tracking.configure(config.mlflow.tracking_uri, config.mlflow.experiment)
    params = {**flatten(config), **{k: v for k, v in provenance.items() if k != "pos_weight"},
              "git_commit": tracking.git_commit()}
    run_id = tracking.find_or_create_run(config.ray.run_name, params,
                                         {"job": "train_descriptors"})
    init_ray()
    log.info("training %s: %d workers, %d steps; config:\n%s", config.ray.run_name,
             config.ray.num_workers, config.optim.steps, dump_config(config))
    result = fit(train_loop, {"config": config.model_dump(mode="json"), "run_id": run_id,
                              "tracking_uri": tracking_uri,
                              "pos_weight": provenance["pos_weight"]}, config.ray)
    client = mlflow.MlflowClient()
    with result.checkpoint.as_directory() as directory:
        predictor = load_descriptor_model(os.path.join(directory, MODEL_DIR))
    scored = log_evaluation(client, run_id, config, predictor)
    with tempfile.TemporaryDirectory() as final:
        save_descriptor_model(final, predictor.model, config.model, scored["thresholds"],
                              {**predictor.info, "pr_auc_mean": scored["pr_auc"]["mean"]})
        load_descriptor_model(final)  # fail here, not at serving time, if it does not load
        model_uri = tracking.log_and_register(run_id, final, MODEL_DIR,
                                              config.mlflow.registered_model)
    client.log_metric(run_id, "final_step", predictor.info.get("step", 0))
    client.set_terminated(run_id)
    return TrainOutcome(model_uri, result.checkpoint.path, scored["pr_auc"])


def main(argv: list[str] | None = None) -> int:
    outcome = train(parse_args(argv))
    print(f"model: {outcome.model_uri}")
    print(f"checkpoint: {outcome.checkpoint}")
    for code, value in outcome.pr_auc.items():
        print(f"pr_auc {code}: {value:.4f}")
    return 0


if __name__ == "__main__":
    run_main(main)
