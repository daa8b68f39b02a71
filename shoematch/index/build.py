"""Turning reference records into index shards: encode, assign to shards, write, plan updates.

`EncodeBatch` and `write_group` are plain callables on pyarrow tables, so the same code runs in
Ray Data (actor pool + groupby) and in a single-process loop (`encode_locally`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from shoematch.crisp.store import load_encoder
from shoematch.data.images import decode_image
from shoematch.errors import DatasetError
from shoematch.evaluation.encode import reference_input
from shoematch.index.encoding import reference_cells
from shoematch.index.layout import METADATA_FILE, ShardEntry
from shoematch.index.shard_io import DTYPES, METADATA_SCHEMA, read_shard, write_shard
from shoematch.storage import Store, open_store

READ_COLUMNS = ["instance_id", "model_id", "pattern_id", "depth", "print", "photo",
                "descriptors", "attributes"]
EMBEDDING = "embedding"
PHOTO_EMBEDDING = "photo_embedding"
DENSE_MAP = "dense_map"
DENSE_SHAPE = "dense_shape"
SCAN_MAP = "scan_map"
SCAN_SHAPE = "scan_shape"
SHARD = "shard"


def input_digest(depth: bytes | None, print_: bytes | None, dense: bool = False) -> str:
    """Hash of what the encoders see (depth if present, else print; with dense maps the print
    too): detects changed records."""
    seen = depth if depth else (print_ or b"")
    if dense and depth:
        seen = hashlib.sha256(depth).digest() + (print_ or b"")
    return hashlib.sha256(seen).hexdigest()[:24]


def shard_of(model_id: str, shards: int) -> int:
    """Stable model → shard assignment, so all instances of a model share a shard."""
    return int.from_bytes(hashlib.sha1(model_id.encode()).digest()[:4], "big") % shards


def _pairs(attributes) -> list[tuple[str, str]]:
    if isinstance(attributes, dict):
        return list(attributes.items())
    return [tuple(pair) for pair in attributes or []]


class EncodeBatch:
    """Encoder actor: decode inputs, compute per-cell-normalised cells, keep the metadata.

    With label models it also fills descriptors / attributes of references that have none
    (given labels win; the source column says which) and computes catalogue-photo features
    for photo search, and with `dense` ({"config": DenseConfig fields, "px_per_cm": the
    references' scale, "scan": None or {"config": ScanConfig fields, "projection": …}}) each
    reference's dense feature maps and the dense cascade's scan maps.
    """

    def __init__(self, model_uri: str, shards: int, dtype: str, device: str = "cpu",
                 threads: int | None = None, descriptor_model: str | None = None,
                 attribute_model: str | None = None, dense: dict | None = None) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.model = load_encoder(model_uri).model.to(self.device).eval()
        self.shards = shards
        self.dtype = DTYPES[dtype]
        self.descriptors = self.attributes = None
        if descriptor_model:
            from shoematch.descriptors.predict import load_descriptor_model

            self.descriptors = load_descriptor_model(descriptor_model)
        if attribute_model:
            from shoematch.attributes.predict import load_attribute_model

            self.attributes = load_attribute_model(attribute_model)
        self.dense = None
        if dense:
            from shoematch.dense.matcher import DenseConfig, DenseMatcher

            self.dense = DenseMatcher(DenseConfig.model_validate(dense["config"]), self.device)
            self.px_per_cm = float(dense["px_per_cm"])
            self.scan = dense.get("scan")

    def _dense_maps(self, records: list[dict]) -> np.ndarray:
        """[n, C, h, w] float16 dense maps of the references' prints."""
        from shoematch.dense.component import reference_maps

        assert self.dense is not None
        missing = [r["instance_id"] for r in records if not r.get("print")]
        if missing:
            raise DatasetError(f"reference {missing[0]!r} has no print: dense maps are taken "
                               "from prints")
        prints = [decode_image(r["print"], f"{r['instance_id']} print") for r in records]
        return reference_maps(self.dense, prints, self.px_per_cm)

    def _labels(self, records: list[dict]) -> list[dict]:
        rows = [{
            "instance_id": r["instance_id"], "model_id": r["model_id"],
            "pattern_id": r["pattern_id"], "descriptors": list(r.get("descriptors") or []),
            "attributes": _pairs(r.get("attributes")),
            "descriptor_source": "label" if r.get("descriptors") else "none",
            "attribute_source": "label" if r.get("attributes") else "none",
            "input_digest": input_digest(r.get("depth"), r.get("print"), self.dense is not None),
        } for r in records]
        missing = [i for i, row in enumerate(rows) if not row["descriptors"]]
        if self.descriptors is not None and missing:
            prints = [decode_image(records[i]["print"], records[i]["instance_id"])
                      for i in missing]
            for i, codes in zip(missing, self.descriptors.labels(prints), strict=True):
                rows[i]["descriptors"], rows[i]["descriptor_source"] = codes, "predicted"
        missing = [i for i, row in enumerate(rows)
                   if not row["attributes"] and records[i].get("photo")]
        if self.attributes is not None and missing:
            photos = [decode_image(records[i]["photo"], records[i]["instance_id"], "RGB")
                      for i in missing]
            for i, values in zip(missing, self.attributes.predict(photos), strict=True):
                rows[i]["attributes"] = [(name, value) for name, (value, _) in values.items()]
                rows[i]["attribute_source"] = "predicted"
        return rows

    def _photo_features(self, records: list[dict]) -> list[bytes | None]:
        """float16 features of each reference's catalogue photo (None without a photo)."""
        have = [i for i, r in enumerate(records) if r.get("photo")]
        out: list[bytes | None] = [None] * len(records)
        if self.attributes is None or not have:
            return out
        photos = [decode_image(records[i]["photo"], records[i]["instance_id"], "RGB")
                  for i in have]
        for i, feature in zip(have, self.attributes.embed(photos), strict=True):
            out[i] = feature.astype(np.float16).tobytes()
        return out

    def __call__(self, table: pa.Table) -> pa.Table:
        records = table.to_pylist()
        if not records:
            return pa.table({})
        inputs = torch.cat([reference_input(r) for r in records]).to(self.device)
        cells = reference_cells(self.model, inputs).cpu().numpy().astype(self.dtype)
        out = pa.Table.from_pylist(self._labels(records), schema=METADATA_SCHEMA)
        out = out.append_column(EMBEDDING, pa.array([c.tobytes() for c in cells], pa.binary()))
        out = out.append_column(PHOTO_EMBEDDING, pa.array(self._photo_features(records),
                                                          pa.binary()))
        out = out.append_column(SHARD, pa.array([shard_of(r["model_id"], self.shards)
                                                 for r in records], pa.int32()))
        if self.dense is not None:
            maps = self._dense_maps(records)
            out = _append_maps(out, DENSE_MAP, DENSE_SHAPE, maps)
            if self.scan is not None:
                out = _append_maps(out, SCAN_MAP, SCAN_SHAPE, scan_maps(maps, self.scan))
        return out.append_column("cells_shape", pa.array([list(cells.shape[1:])] * len(records),
                                                         pa.list_(pa.int32())))


def write_group(table: pa.Table, root: str, version: str, dtype: str) -> pa.Table:
    """Write one group of encoded rows (one shard number) as one index shard."""
    table = table.sort_by("instance_id")
    shard = int(table.column(SHARD)[0].as_py())
    cells_shape = tuple(table.column("cells_shape")[0].as_py())
    flat = b"".join(v.as_py() for v in table.column(EMBEDDING))
    cells = np.frombuffer(flat, dtype=DTYPES[dtype]).reshape(-1, *cells_shape)
    entry = write_shard(open_store(root), f"{version}-{shard:04d}", cells,
                        table.select(METADATA_SCHEMA.names), dtype,
                        photo_matrix(table.column(PHOTO_EMBEDDING).to_pylist()),
                        maps_matrix(table, DENSE_MAP, DENSE_SHAPE),
                        maps_matrix(table, SCAN_MAP, SCAN_SHAPE))
    return pa.table({"entry": [entry.model_dump_json()]})


def scan_maps(maps: np.ndarray, scan: dict) -> np.ndarray:
    """The cascade's scan maps of dense maps, with the index's fitted projection."""
    from shoematch.dense.scan import Projection, ScanConfig, reduce_references

    config = ScanConfig.model_validate(scan["config"])
    return reduce_references(maps, Projection.from_dict(scan["projection"]), config.pool)


def _append_maps(table: pa.Table, column: str, shape_column: str, maps: np.ndarray) -> pa.Table:
    table = table.append_column(column, pa.array([m.tobytes() for m in maps], pa.binary()))
    return table.append_column(shape_column, pa.array([list(maps.shape[1:])] * len(maps),
                                                      pa.list_(pa.int32())))


def maps_matrix(table: pa.Table, column: str, shape_column: str) -> np.ndarray | None:
    """[n, …] float16 per-reference maps of encoded rows (dense or scan), or None when not
    computed."""
    if column not in table.column_names:
        return None
    shape = tuple(table.column(shape_column)[0].as_py())
    flat = b"".join(v.as_py() for v in table.column(column))
    return np.frombuffer(flat, dtype=np.float16).reshape(-1, *shape)


def photo_matrix(features: list[bytes | None]) -> np.ndarray | None:
    """[n, D] float16 photo features (zero rows for references without a photo), or None."""
    present = [np.frombuffer(f, dtype=np.float16) for f in features if f]
    if not present:
        return None
    matrix = np.zeros((len(features), len(present[0])), dtype=np.float16)
    for i, feature in enumerate(features):
        if feature:
            matrix[i] = np.frombuffer(feature, dtype=np.float16)
    return matrix


def entries_from(tables: Iterable[pa.Table]) -> list[ShardEntry]:
    return sorted((ShardEntry.model_validate_json(value)
                   for table in tables for value in table.column("entry").to_pylist()),
                  key=lambda entry: entry.id)


@dataclass
class IncrementalPlan:
    keep: list[ShardEntry]  # unchanged shards, listed again as they are
    rewrite: list[tuple[ShardEntry, list[int]]]  # shards losing rows: rows to keep
    new_ids: set[str]  # instance ids to encode

    @property
    def summary(self) -> dict[str, int]:
        return {"reused_shards": len(self.keep), "rewritten_shards": len(self.rewrite),
                "new_records": len(self.new_ids)}


def plan_incremental(store: Store, shards: list[ShardEntry],
                     wanted: dict[str, str]) -> IncrementalPlan:
    """Compare indexed (instance id, input digest) pairs with the reference db's (`wanted`)."""
    indexed: set[str] = set()
    keep, rewrite = [], []
    for entry in shards:
        meta = pq.read_table(store.path(f"{entry.path}/{METADATA_FILE}"),
                             filesystem=store.fs, columns=["instance_id", "input_digest"])
        ids = meta.column("instance_id").to_pylist()
        digests = meta.column("input_digest").to_pylist()
        rows = [i for i, (iid, dig) in enumerate(zip(ids, digests, strict=True))
                if wanted.get(iid) == dig]
        indexed.update(ids[i] for i in rows)
        if len(rows) == len(ids):
            keep.append(entry)
        elif rows:
            rewrite.append((entry, rows))
    return IncrementalPlan(keep, rewrite, set(wanted) - indexed)


def rewrite_shard(store: Store, entry: ShardEntry, rows: list[int], shard_id: str,
                  dtype: str) -> ShardEntry:
    """Copy the kept rows of an old shard into a new one (no re-encoding)."""
    data = read_shard(store, entry)
    cells = np.ascontiguousarray(data.cells[:, rows].transpose(1, 0, 2))
    photos = None if data.photos is None else data.photos[rows]
    dense = None if data.dense is None else data.dense[rows]
    scan = None if data.scan is None else data.scan[rows]
    return write_shard(store, shard_id, cells, data.metadata.take(rows), dtype, photos, dense,
                       scan)


def summarize_labels(tables: Iterable[pa.Table]) -> tuple[dict, dict]:
    """Attribute values present (for filter validation) and label-source counts."""
    values: dict[str, set[str]] = {}
    sources: dict[str, dict[str, int]] = {"descriptors": {}, "attributes": {}}
    for table in tables:
        for pairs in table.column("attributes").to_pylist():
            for name, value in pairs or []:
                values.setdefault(name, set()).add(value)
        for field, key in (("descriptor_source", "descriptors"),
                           ("attribute_source", "attributes")):
            for source in table.column(field).to_pylist():
                sources[key][source] = sources[key].get(source, 0) + 1
    return {name: sorted(v) for name, v in values.items()}, sources
