"""Fine-tune the dense matcher's backbone on references only, with Ray Train (DDP), log to MLflow.

    python -m jobs.train_matcher --config configs/matcher_fid300.yaml data.refdb=/abs/refs
    ray job submit --working-dir . -- python -m jobs.train_matcher --config ... data.refdb=...

Each worker takes every world-th reference at the matcher's scale; each step cuts windows out
of distinct references, makes crime-scene views of them and trains the MCNCC InfoNCE objective
(`shoematch.dense.finetune`). Rank 0 logs and checkpoints; a re-submission of the same
`ray.run_name` resumes. The final weights file is logged and registered (alias `current`) and,
with `export=PATH`, copied there.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import dataclass

from jobs.common import init_ray, log, run_main
from shoematch.config import dump_config, flatten, load_config
from shoematch.data.dataset import open_dataset
from shoematch.data.schema import REFERENCE_KIND
from shoematch.dense.matcher import require_scale
from shoematch.dense.train_config import MatcherTrainConfig, with_absolute_paths

WEIGHTS = "matcher.pt"
MODEL_DIR = "dense_matcher"


def parse_args(argv: list[str] | None) -> MatcherTrainConfig:
    parser = argparse.ArgumentParser(prog="python -m jobs.train_matcher", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML config (see configs/)")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    args = parser.parse_args(argv)
    return load_config(MatcherTrainConfig, args.config, args.overrides)


def train_loop(loop_config: dict) -> None:
    """Runs on every Ray Train worker."""
    import mlflow
    import ray.train
    import ray.train.torch
    import torch

    from shoematch.dense.finetune import TrainableMatcher, train_steps
    from shoematch.dense.references import reference_prints
    from shoematch.training.ray_train import report, resume_state, save_state

    config = MatcherTrainConfig.model_validate(loop_config["config"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(config.finetune.seed)
    prints = reference_prints(open_dataset(config.data.refdb), config.dense.px_per_cm,
                              rank, world).to(device)
    net = TrainableMatcher(config.dense, config.finetune.channel_weights)
    model = ray.train.torch.prepare_model(net)
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad],
                                 lr=config.finetune.lr)
    start, state = 0, resume_state(device)
    if state:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
        if rank == 0:
            print(f"resumed from checkpoint at step {start}", flush=True)
    client = mlflow.MlflowClient(loop_config["tracking_uri"]) if rank == 0 else None
    run_id, steps = loop_config["run_id"], config.finetune.steps
    window = {"start": time.monotonic(), "images": 0}

    def save(directory: str, step: int) -> None:
        save_state(directory, model, optimizer, step)
        torch.save(net.export(), os.path.join(directory, WEIGHTS))

    def on_step(step: int, loss: float) -> None:
        window["images"] += 2 * config.finetune.batch * world
        if client is not None and (step % config.schedule.log_every == 0 or step == steps):
            rate = window["images"] / max(time.monotonic() - window["start"], 1e-9)
            window.update(start=time.monotonic(), images=0)
            client.log_metric(run_id, "loss", loss, step=step)
            client.log_metric(run_id, "images_per_s", rate, step=step)
            print(f"step {step}/{steps} loss {loss:.4f} {rate:.1f} img/s", flush=True)
        if step % config.schedule.checkpoint_every == 0 or step == steps:
            report({"loss": loss, "step": step}, step,
                   (lambda d: save(d, step)) if rank == 0 else None)

    train_steps(model, optimizer, prints, config.finetune, start,
                config.finetune.seed + 1000 * rank, on_step)


@dataclass
class TrainOutcome:
    model_uri: str | None
    checkpoint: str
    weights: str | None


def train(config: MatcherTrainConfig) -> TrainOutcome:
    """Check inputs, train on the Ray cluster, register the weights in MLflow."""
    config = with_absolute_paths(config)
    refdb = open_dataset(config.data.refdb, REFERENCE_KIND)
    require_scale(refdb.manifest.params.get("px_per_cm"), config.data.refdb)
    import mlflow

    from shoematch import tracking
    from shoematch.training.ray_train import fit

    tracking_uri = tracking.configure(config.mlflow.tracking_uri, config.mlflow.experiment)
    params = {**flatten(config), "refdb_digest": refdb.manifest.digest(),
              "git_commit": tracking.git_commit()}
    run_id = tracking.find_or_create_run(config.ray.run_name, params, {"job": "train_matcher"})
    init_ray()
    log.info("training %s: %d workers, %d steps; config:\n%s", config.ray.run_name,
             config.ray.num_workers, config.finetune.steps, dump_config(config))
    result = fit(train_loop, {"config": config.model_dump(mode="json"), "run_id": run_id,
                              "tracking_uri": tracking_uri}, config.ray)
    with tempfile.TemporaryDirectory() as final:
        with result.checkpoint.as_directory() as directory:
            shutil.copy(os.path.join(directory, WEIGHTS), os.path.join(final, WEIGHTS))
        model_uri = tracking.log_and_register(run_id, final, MODEL_DIR,
                                              config.mlflow.registered_model)
        exported = None
        if config.export:
            os.makedirs(os.path.dirname(config.export) or ".", exist_ok=True)
            exported = shutil.copy(os.path.join(final, WEIGHTS), config.export)
    mlflow.MlflowClient().set_terminated(run_id)
    return TrainOutcome(model_uri, result.checkpoint.path, exported)


def main(argv: list[str] | None = None) -> int:
    outcome = train(parse_args(argv))
    print(f"model: {outcome.model_uri}")
    print(f"checkpoint: {outcome.checkpoint}")
    if outcome.weights:
        print(f"weights: {outcome.weights}")
    return 0


if __name__ == "__main__":
    run_main(main)
