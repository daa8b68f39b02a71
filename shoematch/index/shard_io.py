"""Writing and reading one index shard: cell-major embeddings (.npy) plus Parquet metadata.

A shard on local storage can be opened with its embeddings memory-mapped (`read_shard(...,
mmap=True)`): the search keeps only its int8 copy in RAM and reads the float16 truth page by page
for the few rows it scores exactly; `release_pages` drops the pages the int8 copy was built from.
"""

from __future__ import annotations

import hashlib
import io
import mmap
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from shoematch.data.dataset import table_to_parquet_bytes
from shoematch.errors import SearchIndexError
from shoematch.index.layout import (
    DENSE_FILE,
    EMBEDDINGS_FILE,
    METADATA_FILE,
    PHOTOS_FILE,
    SCAN_FILE,
    ShardEntry,
    shard_dir,
)
from shoematch.storage import Store, is_s3

METADATA_SCHEMA = pa.schema([
    pa.field("instance_id", pa.string(), nullable=False),
    pa.field("model_id", pa.string(), nullable=False),
    pa.field("pattern_id", pa.string(), nullable=False),
    pa.field("descriptors", pa.list_(pa.string())),
    pa.field("attributes", pa.map_(pa.string(), pa.string())),
    pa.field("descriptor_source", pa.string(), nullable=False),  # label | predicted | none
    pa.field("attribute_source", pa.string(), nullable=False),
    pa.field("input_digest", pa.string(), nullable=False),  # what was encoded (incremental)
])
DTYPES = {"float16": np.float16, "float32": np.float32}


@dataclass
class ShardData:
    cells: np.ndarray  # [S, n, C]
    metadata: pa.Table
    photos: np.ndarray | None = None  # [n, D] catalogue-photo features
    dense: np.ndarray | None = None  # [n, C, h, w] dense feature maps
    scan: np.ndarray | None = None  # [n, k, H, W] the dense cascade's scan maps


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def write_shard(store: Store, shard_id: str, cells: np.ndarray, metadata: pa.Table,
                dtype: str, photos: np.ndarray | None = None,
                dense: np.ndarray | None = None, scan: np.ndarray | None = None) -> ShardEntry:
    """Write `cells` [n, S, C] (reference-major, as encoded) cell-major, its metadata, and the
    optional photo features, dense maps (reference-major: a candidate's map is one slice) and
    scan maps."""
    if cells.ndim != 3 or cells.shape[0] != metadata.num_rows:
        raise SearchIndexError(f"shard {shard_id}: {cells.shape} embeddings for "
                               f"{metadata.num_rows} metadata rows")
    for name, rows in (("dense", dense), ("scan", scan)):
        if rows is not None and len(rows) != metadata.num_rows:
            raise SearchIndexError(f"shard {shard_id}: {len(rows)} {name} maps for "
                                   f"{metadata.num_rows} metadata rows")
    embeddings = _npy(np.ascontiguousarray(cells.astype(DTYPES[dtype]).transpose(1, 0, 2)))
    meta_bytes = table_to_parquet_bytes(metadata.select(METADATA_SCHEMA.names)
                                        .cast(METADATA_SCHEMA))
    base = shard_dir(shard_id)
    store.write_bytes(f"{base}/{EMBEDDINGS_FILE}", embeddings)
    store.write_bytes(f"{base}/{METADATA_FILE}", meta_bytes)
    photo_bytes = None if photos is None else _npy(photos.astype(np.float16))
    if photo_bytes is not None:
        store.write_bytes(f"{base}/{PHOTOS_FILE}", photo_bytes)
    dense_bytes = None if dense is None else _npy(np.ascontiguousarray(dense, np.float16))
    if dense_bytes is not None:
        store.write_bytes(f"{base}/{DENSE_FILE}", dense_bytes)
    scan_bytes = None if scan is None else _npy(np.ascontiguousarray(scan, np.float16))
    if scan_bytes is not None:
        store.write_bytes(f"{base}/{SCAN_FILE}", scan_bytes)
    return ShardEntry(
        id=shard_id, path=base, rows=metadata.num_rows,
        models=len(set(metadata.column("model_id").to_pylist())),
        embeddings_sha256=hashlib.sha256(embeddings).hexdigest(),
        metadata_sha256=hashlib.sha256(meta_bytes).hexdigest(),
        bytes=len(embeddings) + len(meta_bytes) + len(photo_bytes or b"") +
        len(dense_bytes or b"") + len(scan_bytes or b""),
        photos_sha256=hashlib.sha256(photo_bytes).hexdigest() if photo_bytes else None,
        dense_sha256=hashlib.sha256(dense_bytes).hexdigest() if dense_bytes else None,
        scan_sha256=hashlib.sha256(scan_bytes).hexdigest() if scan_bytes else None,
    )


def _verified(store: Store, rel: str, sha256: str) -> bytes:
    data = store.read_bytes(rel)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise SearchIndexError(f"{store.child_uri(rel)}: checksum mismatch (corrupt or "
                               "overwritten shard)")
    return data


def _mapped(store: Store, rel: str, sha256: str) -> np.ndarray:
    """A local .npy file memory-mapped read-only, after a streamed checksum (no copy in RAM)."""
    path = store.path(rel)
    try:
        with open(path, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        if digest != sha256:
            raise SearchIndexError(f"{store.child_uri(rel)}: checksum mismatch (corrupt or "
                                   "overwritten shard)")
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except OSError as exc:
        raise SearchIndexError(f"{store.child_uri(rel)}: cannot map ({exc})") from exc


def release_pages(array: np.ndarray) -> bool:
    """Unmap the resident pages of a memory-mapped array from this process (they stay in the page
    cache; later reads fault them back in) and mark the mapping as randomly accessed: from now on
    only the exact pass reads it, a few 256-byte rows per page, and the kernel's readahead (up to
    128 KiB per fault) would read ~500× the bytes needed when the truth is not all in the page
    cache (1 M references on 24 GiB). False if `array` is not memory-mapped."""
    base: object = array  # numpy types `.base` as an array, but a memmap's root is the mmap
    while isinstance(base, np.ndarray):
        base = base.base
    if not isinstance(base, mmap.mmap):
        return False
    base.madvise(mmap.MADV_DONTNEED)
    base.madvise(mmap.MADV_RANDOM)
    return True


def read_shard(store: Store, entry: ShardEntry, mmap_cells: bool = False) -> ShardData:
    """Load and verify one shard (checksums from the manifest). With `mmap_cells` and local
    storage, the embeddings are memory-mapped instead of read into RAM."""
    rel = f"{entry.path}/{EMBEDDINGS_FILE}"
    if mmap_cells and not is_s3(store.uri):
        cells = _mapped(store, rel, entry.embeddings_sha256)
    else:
        cells = np.load(io.BytesIO(_verified(store, rel, entry.embeddings_sha256)),
                        allow_pickle=False)
    metadata = pq.read_table(io.BytesIO(_verified(store, f"{entry.path}/{METADATA_FILE}",
                                                  entry.metadata_sha256)))
    if cells.ndim != 3 or not cells.shape[1] == metadata.num_rows == entry.rows:
        raise SearchIndexError(f"shard {entry.id}: embeddings {cells.shape} do not match "
                               f"{metadata.num_rows} metadata rows")
    photos = None
    if entry.photos_sha256:
        photos = np.load(io.BytesIO(_verified(store, f"{entry.path}/{PHOTOS_FILE}",
                                              entry.photos_sha256)), allow_pickle=False)
    dense = _optional_maps(store, entry, DENSE_FILE, entry.dense_sha256, "dense",
                           mmap_cells and not is_s3(store.uri))
    scan = _optional_maps(store, entry, SCAN_FILE, entry.scan_sha256, "scan", False)
    return ShardData(cells, metadata, photos, dense, scan)


def _optional_maps(store: Store, entry: ShardEntry, name: str, sha256: str | None, what: str,
                   mapped: bool) -> np.ndarray | None:
    """A shard's optional per-reference maps, verified (memory-mapped when `mapped`: the exact
    dense pass reads a few candidates' maps per query, never all of them)."""
    if not sha256:
        return None
    rel = f"{entry.path}/{name}"
    maps = _mapped(store, rel, sha256) if mapped else \
        np.load(io.BytesIO(_verified(store, rel, sha256)), allow_pickle=False)
    if len(maps) != entry.rows:
        raise SearchIndexError(f"shard {entry.id}: {len(maps)} {what} maps for {entry.rows} rows")
    return maps
