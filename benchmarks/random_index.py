"""Random unit-cell index versions written straight to disk: scale benchmarks without an encoder.

Each shard's cell-major float16 embeddings are written chunk by chunk into a memory-mapped .npy
(never a whole shard in RAM), then hashed from the file, so a million references take a few GB
of disk and little memory. The layout, metadata schema and manifest are the project's own
(`shoematch.index.layout` / `shard_io`): `SearchIndex.load` and the Serve shards read it as they
read a re-indexed version.
"""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np
import pyarrow as pa

from shoematch.data.dataset import table_to_parquet_bytes
from shoematch.index.layout import (
    EMBEDDINGS_FILE,
    METADATA_FILE,
    IndexManifest,
    ShardEntry,
    new_version_id,
    publish,
    read_current,
    read_manifest,
    shard_dir,
)
from shoematch.index.shard_io import METADATA_SCHEMA
from shoematch.storage import open_store

GRID, DIM = (6, 12), 128
STRIDE = 32  # the CriSp encoder's: its 192×384 canvas gives the 6×12 grid
INSTANCES_PER_MODEL = 3
CHUNK = 8192  # references generated at once: 8192 × 72 × 128 float32 = 302 MB


def unit_cells(rng: np.random.Generator, count: int, cells: int, dim: int) -> np.ndarray:
    values = rng.standard_normal((cells, count, dim), dtype=np.float32)
    values /= np.linalg.norm(values, axis=-1, keepdims=True)
    return values


def _metadata(start: int, count: int) -> pa.Table:
    ids = [f"r{start + i:08d}" for i in range(count)]
    models = [f"M{(start + i) // INSTANCES_PER_MODEL:07d}" for i in range(count)]
    return pa.table({
        "instance_id": ids, "model_id": models, "pattern_id": models,
        "descriptors": pa.array([[] for _ in range(count)], pa.list_(pa.string())),
        "attributes": pa.array([[] for _ in range(count)], pa.map_(pa.string(), pa.string())),
        "descriptor_source": ["none"] * count, "attribute_source": ["none"] * count,
        "input_digest": ids,
    }, schema=METADATA_SCHEMA)


def _write_shard(root: str, shard_id: str, start: int, count: int, seed: int) -> ShardEntry:
    store = open_store(root)
    base = shard_dir(shard_id)
    os.makedirs(store.path(base), exist_ok=True)
    path = store.path(f"{base}/{EMBEDDINGS_FILE}")
    cells = GRID[0] * GRID[1]
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(cells, count, DIM))
    rng = np.random.default_rng(seed)
    for lo in range(0, count, CHUNK):
        hi = min(count, lo + CHUNK)
        out[:, lo:hi] = unit_cells(rng, hi - lo, cells, DIM)
    out.flush()
    del out
    with open(path, "rb") as handle:
        embeddings_sha = hashlib.file_digest(handle, "sha256").hexdigest()
    meta = table_to_parquet_bytes(_metadata(start, count))
    store.write_bytes(f"{base}/{METADATA_FILE}", meta)
    return ShardEntry(id=shard_id, path=base, rows=count,
                      models=len({(start + i) // INSTANCES_PER_MODEL for i in range(count)}),
                      embeddings_sha256=embeddings_sha,
                      metadata_sha256=hashlib.sha256(meta).hexdigest(),
                      bytes=os.path.getsize(path) + len(meta))


def write_random_index(root: str, references: int, shards: int, seed: int = 0) -> IndexManifest:
    """Publish a version of `references` random unit-cell references in `shards` shards under
    `root` (reused when the current version there already has that shape)."""
    if read_current(root) is not None:
        current = read_manifest(root)
        if current.references == references and len(current.shards) == shards:
            return current
    bounds = np.linspace(0, references, shards + 1).astype(int)
    entries = [_write_shard(root, f"random-{references}-{i:03d}", int(bounds[i]),
                            int(bounds[i + 1] - bounds[i]), seed + i) for i in range(shards)]
    manifest = IndexManifest(
        version=new_version_id(), created_at=time.time(), model_uri="none:random-unit-cells",
        canvas={"height": GRID[0] * STRIDE, "width": GRID[1] * STRIDE}, grid=GRID, dim=DIM,
        dtype="float16",
        refdb="none:random", refdb_digest="", shards=entries,
        counts={"references": references,
                "models": -(-references // INSTANCES_PER_MODEL), "shards": shards})
    publish(open_store(root), manifest)
    return manifest
