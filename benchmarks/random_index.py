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
from functools import partial

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


def _write_maps(path: str, count: int, shape: tuple[int, ...], make) -> str:
    """A reference-major float16 .npy of `count` maps written chunk by chunk; its sha256."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(count, *shape))
    for lo in range(0, count, DENSE_CHUNK):
        hi = min(count, lo + DENSE_CHUNK)
        out[lo:hi] = make(lo, hi)
    out.flush()
    del out
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


DENSE_CHUNK = 512


def _random_maps(rng: np.random.Generator, shape: tuple[int, ...], lo: int, hi: int
                 ) -> np.ndarray:
    return rng.standard_normal((hi - lo, *shape), dtype=np.float32).astype(np.float16)


def _scan_of(maps: np.ndarray, projection, pool: int, lo: int, hi: int) -> np.ndarray:
    import torch

    from shoematch.dense.scan import reduce_references

    return reduce_references(torch.from_numpy(np.asarray(maps[lo:hi], np.float32)),
                             projection, pool)


def write_random_dense_index(root: str, references: int, shards: int, seed: int = 0
                             ) -> IndexManifest:
    """A random index with the dense cascade's components: random dense maps on the default
    matcher's grid (80 × 24 × 48 at 20 px/cm on a 192 × 384 canvas at 10 px/cm) and their scan
    maps with a projection fitted on some of them, as `jobs.reindex --dense` writes them."""
    import torch

    from shoematch.dense.matcher import DenseConfig
    from shoematch.dense.scan import ScanConfig, fit_projection, reduce_references
    from shoematch.index.layout import DENSE_FILE, SCAN_FILE, DenseComponent, ScanComponent

    if read_current(root) is not None:
        current = read_manifest(root)
        if current.references == references and current.dense and current.dense.scan:
            return current
    config, scan = DenseConfig(), ScanConfig()
    shape = (80, 24, 48)
    sample = torch.from_numpy(np.random.default_rng(seed).standard_normal(
        (64, *shape), dtype=np.float32))
    projection = fit_projection(sample, scan.channels, seed=seed)
    scan_grid = reduce_references(sample[:1], projection, scan.pool).shape[1:]
    manifest = write_random_index(root, references, shards, seed)
    store = open_store(root)
    entries = []
    for i, entry in enumerate(manifest.shards):
        dense_path = store.path(f"{entry.path}/{DENSE_FILE}")
        dense_sha = _write_maps(dense_path, entry.rows, shape,
                                partial(_random_maps, np.random.default_rng(seed + 1000 + i),
                                        shape))
        scan_sha = _write_maps(store.path(f"{entry.path}/{SCAN_FILE}"), entry.rows, scan_grid,
                               partial(_scan_of, np.load(dense_path, mmap_mode="r"),
                                       projection, scan.pool))
        entries.append(entry.model_copy(update={"dense_sha256": dense_sha,
                                                "scan_sha256": scan_sha}))
    component = DenseComponent(
        config=config.model_dump(mode="json"), px_per_cm=config.px_per_cm, grid=shape[1:],
        channels=shape[0], stride=16, bytes_per_reference=int(np.prod(shape)) * 2,
        scan=ScanComponent(config=scan.model_dump(mode="json"),
                           projection=projection.to_dict(), grid=tuple(scan_grid[1:]),
                           channels=scan.channels,
                           bytes_per_reference=int(np.prod(scan_grid)) * 2))
    manifest = manifest.model_copy(update={"version": new_version_id(), "shards": entries,
                                           "dense": component, "px_per_cm": 10.0,
                                           "canvas": {"height": 192, "width": 384}})
    publish(store, manifest)
    return manifest
