"""Fixtures shared by the benchmarks: a synthetic reference db and a seeded random encoder."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from shoematch.crisp.model import CrispEncoder, CrispEncoderConfig
from shoematch.crisp.store import save_encoder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def synthetic_db(out: str, models: int, instances: int = 2, queries: int = 16) -> str:
    """Generate (once) a synthetic db on the default 192×384 canvas; returns its root."""
    if not os.path.exists(os.path.join(out, "references", "manifest.json")):
        subprocess.run([sys.executable, "-m", "jobs.synth", "--out", out, "--models",
                        str(models), "--instances", str(instances), "--queries", str(queries),
                        "--seed", "3", "--local"], cwd=REPO, check=True)
    return out


def random_encoder(out: str, arch: str = "resnet50", embed_dim: int = 128) -> str:
    """A seeded, untrained CriSp encoder: speed does not depend on the weights."""
    torch.manual_seed(0)
    config = CrispEncoderConfig(arch=arch, embed_dim=embed_dim)
    save_encoder(out, CrispEncoder(**config.model_dump()), config, {"note": "random, benchmark"})
    return out


def class_rows(refdb: str, label: str = "pattern", split: str = "train") -> list:
    """CriSp's training rows built in process, one pyarrow row per class holding all its
    instances' images (what the training pipeline's Ray Data groupby makes), for benchmarks
    that time what comes after it."""
    import pyarrow.compute as pc

    from shoematch.crisp.data import collect_group, label_column
    from shoematch.data.dataset import open_dataset
    from shoematch.data.schema import REFERENCE_KIND

    field = label_column(label)
    table = open_dataset(refdb, REFERENCE_KIND).read_table(
        ["split", field, "depth", "print", "mask"])
    table = table.filter(pc.equal(table["split"], split))
    return [collect_group(table.filter(pc.equal(table[field], value)), field)
            for value in sorted(set(table[field].to_pylist()))]


def training_span(tracking_uri: str, experiment: str, run_name: str) -> tuple[float, int, float]:
    """A training run logged every step (`schedule.log_every` 1): seconds from its first to its
    last step by MLflow's timestamps, the steps logged, and the images trained in that span (each
    step's images/s times the time since the previous step)."""
    import mlflow

    run = mlflow.search_runs(experiment_names=[experiment], output_format="list",
                             filter_string=f"tags.mlflow.runName = '{run_name}'")[0]
    history = sorted((m.step, m.timestamp / 1e3, m.value) for m in mlflow.MlflowClient(
        tracking_uri).get_metric_history(run.info.run_id, "images_per_s"))
    images = sum(rate * (stamp - before) for (_, before, _), (_, stamp, rate)
                 in zip(history, history[1:], strict=False))
    return history[-1][1] - history[0][1], len(history), images
