"""Versioned Parquet datasets: shards of records plus a manifest written last.

Layout under a dataset root (local dir or s3://…):
    manifest.json                     the only thing readers trust; written last, atomically
    shards/<write_id>-<n>.parquet     record shards, named by the write that produced them

A dataset is visible only once its manifest exists, so an interrupted write leaves nothing that
looks whole. Re-writing a dataset writes new shards beside the old ones, swaps the manifest, then
removes shards no manifest names: a failed re-write leaves the previous dataset intact.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from shoematch.data.schema import (
    ID_FIELDS,
    SCHEMA_VERSION,
    Canvas,
    from_row,
    schema_for,
    to_table,
    validate_records,
)
from shoematch.errors import DatasetError, StorageError
from shoematch.log import get_logger
from shoematch.storage import Store, new_write_id, open_store

MANIFEST = "manifest.json"
SHARD_DIR = "shards"
DEFAULT_SHARD_ROWS = 256

log = get_logger(__name__)


@dataclass(frozen=True)
class ShardInfo:
    path: str  # relative to the dataset root
    rows: int
    sha256: str
    bytes: int


@dataclass
class Manifest:
    kind: str
    canvas: Canvas
    shards: list[ShardInfo]
    source: str
    params: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    write_id: str = ""
    created_at: float = 0.0

    @property
    def count(self) -> int:
        return sum(s.rows for s in self.shards)

    def to_json(self) -> str:
        body = asdict(self)
        body["count"] = self.count
        return json.dumps(body, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> Manifest:
        try:
            body = json.loads(text)
            return cls(
                kind=body["kind"],
                canvas=Canvas(**body["canvas"]),
                shards=[ShardInfo(**s) for s in body["shards"]],
                source=body["source"],
                params=body.get("params", {}),
                schema_version=body["schema_version"],
                write_id=body.get("write_id", ""),
                created_at=body.get("created_at", 0.0),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{where}: malformed manifest ({exc})") from exc

    def digest(self) -> str:
        """A hash of the dataset's content (shard checksums), stable across re-writes."""
        joined = "\n".join(sorted(s.sha256 for s in self.shards))
        return hashlib.sha256(f"{self.kind}\n{joined}".encode()).hexdigest()


def table_to_parquet_bytes(table: pa.Table) -> bytes:
    """Serialise deterministically (same table → same bytes) so checksums are reproducible."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", write_statistics=False)
    return sink.getvalue()


def write_shard(dataset_uri: str, kind: str, name: str, records: Sequence[Mapping[str, Any]],
                canvas: Canvas, validate: bool = True) -> ShardInfo:
    """Validate `records` and write them as one shard; safe to call from many Ray tasks at once."""
    if validate:
        validate_records(kind, records, canvas)
    data = table_to_parquet_bytes(to_table(kind, list(records)))
    rel = f"{SHARD_DIR}/{name}.parquet"
    open_store(dataset_uri).write_bytes(rel, data)
    return ShardInfo(rel, len(records), hashlib.sha256(data).hexdigest(), len(data))


def commit_manifest(dataset_uri: str, manifest: Manifest) -> None:
    """Publish a dataset: write the manifest last, then drop shards no longer referenced."""
    store = open_store(dataset_uri)
    if not manifest.shards:
        raise DatasetError(f"{dataset_uri}: refusing to publish a dataset with no records")
    manifest.created_at = manifest.created_at or time.time()
    store.write_bytes(MANIFEST, manifest.to_json().encode())
    keep = {posixpath.basename(s.path) for s in manifest.shards}
    for name in store.list(SHARD_DIR):
        if name.endswith(".parquet") and name not in keep:
            store.delete(f"{SHARD_DIR}/{name}")


def discard_write(dataset_uri: str, write_id: str) -> None:
    """Remove the shards of an unfinished write (best effort; they are invisible anyway)."""
    store = open_store(dataset_uri)
    try:
        for name in store.list(SHARD_DIR):
            if name.startswith(f"{write_id}-"):
                store.delete(f"{SHARD_DIR}/{name}")
    except StorageError as exc:
        log.warning("could not clean up unfinished write %s: %s", write_id, exc)


class DatasetWriter:
    """Streams records into shards of `shard_rows` and publishes the manifest on success.

    Use as a context manager: leaving it with an exception removes this write's shards and never
    writes a manifest, so the previous dataset at `uri` (if any) stays current and whole.
    """

    def __init__(self, uri: str, kind: str, canvas: Canvas, source: str,
                 params: Mapping[str, Any] | None = None,
                 shard_rows: int = DEFAULT_SHARD_ROWS) -> None:
        schema_for(kind)
        if shard_rows < 1:
            raise DatasetError(f"shard_rows must be >= 1, got {shard_rows}")
        self.uri, self.kind, self.canvas, self.source = uri, kind, canvas, source
        self.params = dict(params or {})
        self.shard_rows = shard_rows
        self.write_id = new_write_id()
        self._buffer: list[Mapping[str, Any]] = []
        self._shards: list[ShardInfo] = []
        self._ids: set[str] = set()
        open_store(uri).check()

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def add(self, records: Iterable[Mapping[str, Any]]) -> None:
        for record in records:
            validate_records(self.kind, [record], self.canvas, seen_ids=self._ids)
            self._buffer.append(record)
            if len(self._buffer) >= self.shard_rows:
                self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        name = f"{self.write_id}-{len(self._shards):05d}"
        self._shards.append(
            write_shard(self.uri, self.kind, name, self._buffer, self.canvas, validate=False)
        )
        self._buffer = []

    def finish(self) -> Manifest:
        """Write the last shard and return the manifest, unpublished (see `close`)."""
        self._flush()
        if not self._shards:
            raise DatasetError(f"{self.uri}: no records were written")
        return Manifest(self.kind, self.canvas, self._shards, self.source, self.params,
                        write_id=self.write_id)

    def close(self) -> Manifest:
        """Finish and publish."""
        manifest = self.finish()
        commit_manifest(self.uri, manifest)
        log.info("wrote %s: %d %s in %d shard(s)", self.uri, manifest.count, self.kind,
                 len(self._shards))
        return manifest

    def abort(self) -> None:
        discard_write(self.uri, self.write_id)


class Dataset:
    """A published dataset: its manifest, and readers over its shards."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.store: Store = open_store(uri)
        if not self.store.exists(MANIFEST):
            raise DatasetError(
                f"{uri}: no {MANIFEST} — not a shoematch dataset, or its write did not finish"
            )
        self.manifest = Manifest.from_json(self.store.read_bytes(MANIFEST).decode(), uri)
        if self.manifest.schema_version != SCHEMA_VERSION:
            raise DatasetError(
                f"{uri}: schema version {self.manifest.schema_version}, this shoematch reads "
                f"{SCHEMA_VERSION}"
            )

    @property
    def kind(self) -> str:
        return self.manifest.kind

    @property
    def canvas(self) -> Canvas:
        return self.manifest.canvas

    def __len__(self) -> int:
        return self.manifest.count

    @property
    def shard_paths(self) -> list[str]:
        """Shard paths inside `self.store.fs` (for pyarrow or Ray Data with that filesystem)."""
        return [self.store.path(s.path) for s in self.manifest.shards]

    @property
    def shard_uris(self) -> list[str]:
        return [self.store.child_uri(s.path) for s in self.manifest.shards]

    def read_table(self, columns: list[str] | None = None) -> pa.Table:
        tables = [self.read_shard(i, columns) for i in range(len(self.manifest.shards))]
        return pa.concat_tables(tables)

    def read_shard(self, index: int, columns: list[str] | None) -> pa.Table:
        shard = self.manifest.shards[index]
        try:
            return pq.read_table(self.store.path(shard.path), columns=columns,
                                 filesystem=self.store.fs)
        except (OSError, pa.ArrowException) as exc:
            raise DatasetError(f"{self.store.child_uri(shard.path)}: cannot read shard ({exc})") \
                from exc

    def iter_records(self, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
        for index in range(len(self.manifest.shards)):
            for row in self.read_shard(index, columns).to_pylist():
                yield from_row(row)

    def ids(self) -> list[str]:
        field_name = ID_FIELDS[self.kind]
        return self.read_table([field_name]).column(field_name).to_pylist()

    def verify(self) -> None:
        """Check every shard's checksum and row count against the manifest."""
        for shard in self.manifest.shards:
            data = self.store.read_bytes(shard.path)
            if hashlib.sha256(data).hexdigest() != shard.sha256:
                raise DatasetError(f"{self.store.child_uri(shard.path)}: checksum mismatch")
            rows = pq.read_metadata(pa.BufferReader(data)).num_rows
            if rows != shard.rows:
                raise DatasetError(
                    f"{self.store.child_uri(shard.path)}: {rows} rows, manifest says {shard.rows}"
                )


def open_dataset(uri: str, kind: str | None = None) -> Dataset:
    """Open a published dataset, optionally insisting on its kind (references / queries)."""
    dataset = Dataset(uri)
    if kind is not None and dataset.kind != kind:
        raise DatasetError(f"{uri}: holds {dataset.kind}, expected {kind}")
    return dataset
