"""CriSp's one-row-per-class table without a Ray Data groupby (whose hash shuffle once aborted
a worker natively in the demo): from the label column, runs of whole classes are read from
the shards they are in, and give exactly the rows a groupby gives — also when a class's
instances are spread over several shards."""

from __future__ import annotations

import numpy as np

from shoematch.crisp.data import IMAGE_FIELDS, class_rows, partition_classes, read_classes
from shoematch.data.dataset import DatasetWriter, open_dataset
from shoematch.data.schema import REFERENCE_KIND


def instances(table, label_field: str, split: str) -> dict[str, list[tuple]]:
    """label → sorted (depth, print, mask) of each instance of `split`: what a groupby holds."""
    out: dict[str, list[tuple]] = {}
    for row in table.to_pylist():
        if row["split"] == split:
            out.setdefault(row[label_field], []).append(tuple(row[f] for f in IMAGE_FIELDS))
    return {label: sorted(rows, key=repr) for label, rows in out.items()}


def test_classes_read_from_their_shards_equal_a_groupby(tiny_refs, tmp_path):
    source = open_dataset(f"{tiny_refs}/references", REFERENCE_KIND)
    records = list(source.iter_records())
    order = np.random.default_rng(4).permutation(len(records))  # classes spread over shards
    uri = str(tmp_path / "scattered")
    with DatasetWriter(uri, REFERENCE_KIND, source.canvas, "test", shard_rows=5) as writer:
        writer.add(records[i] for i in order)
    scattered = open_dataset(uri, REFERENCE_KIND)
    assert len(scattered.manifest.shards) > 3

    for label_field in ("pattern_id", "model_id"):
        layout = class_rows(scattered, label_field, "train")
        groups = partition_classes(layout, 3)
        assert len(groups) == 3
        labels = [label for group in groups for label in group]
        assert sorted(labels) == sorted(layout) and len(set(labels)) == len(labels)
        got: dict[str, list[tuple]] = {}
        for group in groups:
            table = read_classes(scattered, group)
            assert table.column_names == ["label", *IMAGE_FIELDS]
            for row in table.to_pylist():
                got[row["label"]] = sorted(zip(*(row[f] for f in IMAGE_FIELDS), strict=True),
                                           key=repr)
        assert got and got == instances(source.read_table(), label_field, "train")


def test_a_run_of_classes_reads_only_the_shards_it_needs(tiny_refs, tmp_path):
    """Written class by class (as the writers do), each run of classes touches few shards."""
    source = open_dataset(f"{tiny_refs}/references", REFERENCE_KIND)
    uri = str(tmp_path / "in-order")
    with DatasetWriter(uri, REFERENCE_KIND, source.canvas, "test", shard_rows=4) as writer:
        writer.add(sorted(source.iter_records(), key=lambda r: r["model_id"]))
    layout = class_rows(open_dataset(uri, REFERENCE_KIND), "model_id", "train")
    shards = len(open_dataset(uri, REFERENCE_KIND).manifest.shards)
    groups = partition_classes(layout, shards)
    touched = [{shard for rows in group.values() for shard, _ in rows} for group in groups]
    assert sum(len(t) for t in touched) <= shards + len(groups)
    assert partition_classes(layout, 1000) and len(partition_classes(layout, 1000)) == len(layout)
