"""Descriptor training data: which records form the train / val / eval parts, and their model
inputs decoded into memory (small enough on the scales these jobs run at; each DDP worker
decodes only its own share).

Parts: `train` is the training split minus the validation patterns, `val` those patterns (a
stable hash of pattern_id: all models of a pattern share its descriptors, so splitting by
pattern keeps val honest), `eval` the evaluation split. Records without descriptors are skipped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from shoematch.data.dataset import Dataset, open_dataset
from shoematch.data.images import decode_image
from shoematch.data.schema import DESCRIPTOR_CODES, REFERENCE_KIND
from shoematch.descriptors.channels import resampled_channels
from shoematch.descriptors.config import DescriptorDataConfig
from shoematch.descriptors.losses import positive_weights
from shoematch.errors import DatasetError

PARTS = ("train", "val", "eval")


@dataclass
class DescriptorData:
    ids: list[str]
    inputs: np.ndarray  # uint8 [n, 3, h, w]
    labels: np.ndarray  # bool [n, 17], DESCRIPTOR_CODES order

    def __len__(self) -> int:
        return len(self.ids)


def label_matrix(descriptors: list[list[str]], where: str) -> np.ndarray:
    """NFRC code lists → bool [n, 17]; an unknown code is a DatasetError naming the record."""
    index = {code: k for k, code in enumerate(DESCRIPTOR_CODES)}
    out = np.zeros((len(descriptors), len(DESCRIPTOR_CODES)), dtype=bool)
    for row, codes in enumerate(descriptors):
        for code in codes:
            if code not in index:
                raise DatasetError(f"{where} record #{row}: unknown descriptor code {code!r}")
            out[row, index[code]] = True
    return out


def in_val(pattern_id: str, fraction: float) -> bool:
    digest = hashlib.blake2b(pattern_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0 ** 64 < fraction


def part_rows(table: pa.Table, config: DescriptorDataConfig, part: str) -> list[int]:
    """Row numbers of `part` in a table with split, pattern_id and descriptors columns."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; expected one of {PARTS}")
    splits = table.column("split").to_pylist()
    patterns = table.column("pattern_id").to_pylist()
    labelled = [bool(d) for d in table.column("descriptors").to_pylist()]
    wanted = config.eval_split if part == "eval" else config.train_split
    rows = [i for i, (split, ok) in enumerate(zip(splits, labelled, strict=True))
            if ok and split == wanted]
    if part != "eval":
        rows = [i for i in rows if in_val(patterns[i], config.val_fraction) == (part == "val")]
    return rows[:config.max_records] if config.max_records else rows


def load_part(refdb: Dataset, config: DescriptorDataConfig, part: str,
              size: tuple[int, int], channels: str, rank: int = 0,
              world: int = 1) -> DescriptorData:
    """Decode every `world`-th record of `part` (starting at `rank`) into model inputs."""
    table = refdb.read_table(["instance_id", "pattern_id", "split", "descriptors"])
    rows = part_rows(table, config, part)[rank::world]
    prints = refdb.read_table(["print"]).column("print")
    ids = table.column("instance_id").to_pylist()
    inputs = np.zeros((len(rows), 3, *size), dtype=np.uint8)
    for n, row in enumerate(rows):
        image = decode_image(prints[row].as_py(), f"{ids[row]}.print")
        inputs[n] = resampled_channels(image, size, channels)
    descriptors = table.column("descriptors").to_pylist()
    return DescriptorData([ids[r] for r in rows], inputs,
                          label_matrix([descriptors[r] for r in rows], refdb.uri))


def check_descriptor_data(config: DescriptorDataConfig, workers: int) -> dict:
    """Fail before any cluster work on missing data or empty parts; returns provenance and the
    class weights (from every training label, so all workers and trials weigh alike)."""
    refdb = open_dataset(config.refdb, REFERENCE_KIND)
    table = refdb.read_table(["split", "pattern_id", "descriptors"])
    rows = {part: part_rows(table, config, part) for part in PARTS}
    if len(rows["train"]) < 2 * workers:
        raise DatasetError(f"{config.refdb}: {len(rows['train'])} labelled training records "
                           f"(split {config.train_split!r}); {workers} worker(s) need at least "
                           f"{2 * workers}")
    if not rows["eval"]:
        raise DatasetError(f"{config.refdb}: no labelled records with split "
                           f"{config.eval_split!r} to evaluate on")
    descriptors = table.column("descriptors").to_pylist()
    labels = label_matrix([descriptors[i] for i in rows["train"]], config.refdb)
    return {"refdb_manifest_sha256": refdb.manifest.digest(),
            **{f"{part}_records": len(found) for part, found in rows.items()},
            "pos_weight": positive_weights(labels).tolist()}
