"""Paired sampling for contrastive training: one row per class, two of its instances per epoch.

Rows hold every instance of one class (lists of images); each time the data is read the map
stage picks two distinct instances of each row (the same one twice if the class has only one:
its two augmented prints then form the positive pair). A batch of N/2 rows is therefore N/2
classes × 2 instances on every DDP worker, and no class repeats within an epoch or a batch.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

IMAGE_FIELDS = ("depth", "print", "mask")


def label_column(label: str) -> str:
    """The record field that defines a contrastive class."""
    return "pattern_id" if label == "pattern" else "model_id"


def collect_group(group: pa.Table, label_field: str) -> pa.Table:
    """All instances of one class as a single row of image lists."""
    columns = {"label": pa.array([group.column(label_field)[0].as_py()], pa.string())}
    for field in IMAGE_FIELDS:
        columns[field] = pa.array([group.column(field).to_pylist()], pa.list_(pa.binary()))
    return pa.table(columns)


def pick_pair(count: int, rng: np.random.Generator) -> tuple[int, int]:
    """Two distinct instance indices out of `count` (0, 0 for a single instance)."""
    if count < 2:
        return 0, 0
    first, second = rng.choice(count, size=2, replace=False)
    return int(first), int(second)


def label_hash(labels: np.ndarray) -> np.ndarray:
    """Stable int64 ids for string labels (only equality within a batch matters)."""
    return np.array(
        [int.from_bytes(hashlib.blake2b(str(v).encode(), digest_size=8).digest(), "little",
                        signed=True) for v in labels],
        dtype=np.int64,
    )
