"""Loading an FID-300-style folder for the benchmark: ingested once (through the ingest job, as a
user would) into Parquet datasets at 10 px/cm, then decoded into arrays."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shoematch.data.dataset import open_dataset
from shoematch.data.images import decode_image
from shoematch.data.schema import QUERY_KIND, REFERENCE_KIND
from shoematch.errors import DatasetError

SCALE = 0.5  # of FID-300's 20 px/cm: 10 px/cm, the dense matcher's resolution


@dataclass
class Probe:
    query_id: str
    image: np.ndarray  # uint8, 255 = ink, on the canvas
    mask: np.ndarray  # bool, the canvas area the probe covers
    targets: list[str]


@dataclass
class FidData:
    reference_prints: list[np.ndarray]
    reference_models: list[str]
    probes: list[Probe]
    px_per_cm: float
    refdb: str
    queries: str


def source_digest(src: str) -> str:
    """Which folder and which labels: another probe set gets its own ingested copy."""
    labels = Path(src) / "labels_dev.csv"
    if not labels.is_file():
        raise DatasetError(f"{labels}: no labels file (probe_id,reference_id)")
    body = f"{os.path.abspath(src)}\n".encode() + labels.read_bytes()
    return hashlib.sha256(body).hexdigest()[:12]


def load_fid(src: str, data_root: str) -> FidData:
    data = os.path.join(data_root, source_digest(src))
    if not os.path.exists(os.path.join(data, "queries", "manifest.json")):
        subprocess.run([sys.executable, "-m", "jobs.ingest", "--format", "fid300", "--src", src,
                        "--out", data, "--scale", str(SCALE)], check=True)
    refdb = open_dataset(os.path.join(data, "references"), REFERENCE_KIND)
    queries = open_dataset(os.path.join(data, "queries"), QUERY_KIND)
    px_per_cm = refdb.manifest.params.get("px_per_cm")
    prints, models = [], []
    for record in refdb.iter_records(["instance_id", "model_id", "print"]):
        prints.append(decode_image(record["print"], record["instance_id"]))
        models.append(record["model_id"])
    probes = [Probe(r["query_id"], decode_image(r["print"], r["query_id"]),
                    decode_image(r["mask"], r["query_id"]) > 127, list(r["targets"]))
              for r in queries.iter_records(["query_id", "print", "mask", "targets"])]
    return FidData(prints, models, probes, px_per_cm, refdb.uri, queries.uri)
