"""CriSp's training data, Ray-free: input checks, one row per class with two of its instances
picked each time the row is read, and the decode + augment map stage.

Rows hold every instance of one class (lists of images); each time a row is read the map stage
picks two distinct instances of it (the same one twice if the class has only one: its two
augmented prints then form the positive pair). A batch of N/2 rows is therefore N/2 classes × 2
instances on every DDP worker; the workers batch their rows so that no class repeats within a
batch (`shoematch.training.passes`: a pass of the pipeline holds several epochs).

`AugmentPairs` is a plain callable class: Ray Data runs it on an actor pool (with a share of a
GPU when the cluster has GPUs, see `shoematch.ray.crisp`), tests call it directly.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pyarrow as pa
import torch

from shoematch.augment.config import AugConfig
from shoematch.augment.crime_scene import augment_prints
from shoematch.crisp.config import CrispTrainConfig
from shoematch.data.dataset import Dataset, open_dataset
from shoematch.data.images import decode_image
from shoematch.data.schema import QUERY_KIND, REFERENCE_KIND
from shoematch.errors import DatasetError

IMAGE_FIELDS = ("depth", "print", "mask")


def check_crisp_data(config: CrispTrainConfig) -> dict:
    """Fail before any cluster work on missing data or an empty split; returns provenance."""
    refdb = open_dataset(config.data.refdb, REFERENCE_KIND)
    splits = refdb.read_table(["split"]).column("split").to_pylist()
    if config.data.train_split not in splits:
        raise DatasetError(f"{config.data.refdb}: no records with split "
                           f"{config.data.train_split!r} (found {sorted(set(splits))})")
    info = {"refdb_manifest_sha256": refdb.manifest.digest(), "refdb_count": len(refdb)}
    if config.data.val_queries:
        queries = open_dataset(config.data.val_queries, QUERY_KIND)
        table = queries.read_table(["split"])
        wanted = [s for s in table.column("split").to_pylist()
                  if config.data.val_split is None or s == config.data.val_split]
        if not wanted:
            raise DatasetError(f"{config.data.val_queries}: validation set is empty "
                               f"(no queries with split {config.data.val_split!r})")
        info["val_manifest_sha256"] = queries.manifest.digest()
        info["val_queries"] = len(wanted)
    return info


def label_column(label: str) -> str:
    """The record field that defines a contrastive class."""
    return "pattern_id" if label == "pattern" else "model_id"


def collect_group(group: pa.Table, label_field: str) -> pa.Table:
    """All instances of one class as a single row of image lists."""
    columns = {"label": pa.array([group.column(label_field)[0].as_py()], pa.string())}
    for field in IMAGE_FIELDS:
        columns[field] = pa.array([group.column(field).to_pylist()], pa.list_(pa.binary()))
    return pa.table(columns)


ClassRows = dict[str, list[tuple[int, int]]]  # class → (shard, row) of each of its instances


def class_rows(dataset: Dataset, label_field: str, split: str) -> ClassRows:
    """Where every class of `split` has its instances, from the label and split columns only
    (strings: the images stay where they are)."""
    layout: ClassRows = {}
    for shard in range(len(dataset.manifest.shards)):
        table = dataset.read_shard(shard, ["split", label_field])
        for row, (label, row_split) in enumerate(zip(table.column(label_field).to_pylist(),
                                                     table.column("split").to_pylist(),
                                                     strict=True)):
            if row_split == split:
                layout.setdefault(label, []).append((shard, row))
    return layout


def partition_classes(layout: ClassRows, partitions: int) -> list[ClassRows]:
    """`partitions` groups of whole classes, each reading few shards: classes in the order of
    their first instance (a writer stores a class's instances together), cut into contiguous
    runs; within a run, ordered by a hash of the label so that a batch's classes are not write-
    order neighbours (as a hash partition mixes them)."""
    ordered = sorted(layout, key=lambda label: (layout[label][0], label))
    runs = [list(run) for run in np.array_split(np.asarray(ordered, dtype=object),
                                                 min(partitions, len(ordered))) if len(run)]
    return [{label: layout[label]
             for label in sorted(run, key=lambda value: int(label_hash(np.array([value]))[0]))}
            for run in runs]


def read_classes(dataset: Dataset, classes: ClassRows) -> pa.Table:
    """One row per class (label, lists of depth/print/mask), reading only the shards its
    instances are in: the grouping a Ray Data groupby would do, without its hash shuffle."""
    shards = sorted({shard for rows in classes.values() for shard, _ in rows})
    tables = {shard: dataset.read_shard(shard, list(IMAGE_FIELDS)) for shard in shards}
    columns: dict[str, list] = {"label": list(classes), **{f: [] for f in IMAGE_FIELDS}}
    for rows in classes.values():
        for field in IMAGE_FIELDS:
            columns[field].append([tables[shard].column(field)[row].as_py()
                                   for shard, row in rows])
    return pa.table({"label": pa.array(columns["label"], pa.string()),
                     **{f: pa.array(columns[f], pa.list_(pa.binary())) for f in IMAGE_FIELDS}})


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


def decode_stack(values: np.ndarray, name: str, shape: tuple[int, int] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Decode a column of PNG bytes to uint8 [n,H,W]; missing images (None) become zeros.

    Returns the stack and a bool [n] of which images were present.
    """
    present = np.array([v is not None for v in values])
    decoded = [decode_image(v, f"{name}[{i}]") if v is not None else None
               for i, v in enumerate(values)]
    if shape is None:
        shape = next(d.shape for d in decoded if d is not None)
    out = np.zeros((len(values), *shape), dtype=np.uint8)
    for i, image in enumerate(decoded):
        if image is not None:
            out[i] = image
    return out, present


class AugmentPairs:
    """Pick two instances per class row, decode them, augment both prints."""

    def __init__(self, aug: AugConfig | dict, seed: int | None = None,
                 device: str | None = None) -> None:
        self.aug = aug if isinstance(aug, AugConfig) else AugConfig.model_validate(aug)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.generator = torch.Generator(device=self.device)
        # Distinct streams per actor unless a seed is fixed (tests, reproducible grids).
        seed = seed if seed is not None else int.from_bytes(os.urandom(7), "little")
        self.generator.manual_seed(seed)
        self.rng = np.random.default_rng(seed)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pairs = [pick_pair(len(images), self.rng) for images in batch["print"]]
        out: dict[str, np.ndarray] = {"label": label_hash(batch["label"])}
        for side, pick in (("a", 0), ("b", 1)):
            chosen = {field: np.array([batch[field][row][pair[pick]]
                                       for row, pair in enumerate(pairs)], dtype=object)
                      for field in IMAGE_FIELDS}
            prints, _ = decode_stack(chosen["print"], f"print_{side}")
            shape = prints.shape[1:]
            depths, has_depth = decode_stack(chosen["depth"], f"depth_{side}", shape)
            masks, _ = decode_stack(chosen["mask"], f"mask_{side}", shape)
            clean = torch.from_numpy(prints).to(self.device).unsqueeze(1).float() / 255.0
            augmented, params = augment_prints(clean, self.aug, self.generator,
                                               return_params=True)
            if self.aug.mask_follows:  # ink the augmentation hid is no longer visible
                visible = params.visible(clean.shape, self.device)[:, 0].cpu().numpy()
                masks = np.where(visible, masks, 0).astype(np.uint8)
            out[f"print_{side}"] = (augmented * 255).round().to(torch.uint8).cpu().numpy()
            out[f"depth_{side}"] = depths[:, None]
            out[f"mask_{side}"] = masks[:, None]
            out[f"has_depth_{side}"] = has_depth
        return out
