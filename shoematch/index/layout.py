"""On-storage layout of a versioned embedding index, and the atomic `CURRENT` pointer.

    INDEX_ROOT/CURRENT                          {"version": "<id>"}, replaced in one write
    INDEX_ROOT/versions/<id>/manifest.json      what one version holds
    INDEX_ROOT/shards/<shard id>/embeddings.npy cells [S, n, C], cell-major, float16/float32
    INDEX_ROOT/shards/<shard id>/metadata.parquet  one row per reference, same order
    INDEX_ROOT/shards/<shard id>/dense_maps.npy    optional: dense feature maps [n, C, h, w]
    INDEX_ROOT/shards/<shard id>/dense_scan.npy    optional: the cascade's scan maps [n, k, H, W]

Shards live outside versions so a new (incremental) version can list shards of older ones
unchanged. A version is visible only through its manifest, and current only once `CURRENT`
names it, which is written after every shard and the manifest: readers never see half an index.
"""

from __future__ import annotations

import json
import re
import time
import uuid

from pydantic import ConfigDict, Field, ValidationError

from shoematch.config import StrictModel
from shoematch.errors import SearchIndexError
from shoematch.storage import Store, open_store

POINTER = "CURRENT"
FORMAT_VERSION = 1
EMBEDDINGS_FILE = "embeddings.npy"
PHOTOS_FILE = "photos.npy"  # catalogue-photo features [n, D] (with an attribute model)
METADATA_FILE = "metadata.parquet"
# What `new_version_id` makes (and older ids of letters, digits, '-' and '_'): never a path.
VERSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
DENSE_FILE = "dense_maps.npy"  # dense feature maps [n, C, h, w] float16, reference-major
SCAN_FILE = "dense_scan.npy"  # the dense cascade's first-stage maps [n, k, H, W] float16


class ShardEntry(StrictModel):
    id: str
    path: str  # relative to the index root
    rows: int
    models: int
    embeddings_sha256: str
    metadata_sha256: str
    bytes: int
    photos_sha256: str | None = None
    dense_sha256: str | None = None
    scan_sha256: str | None = None


class ScanComponent(StrictModel):
    """The dense cascade's first stage: reduced maps every query scans (`dense.scan`)."""

    config: dict  # the ScanConfig
    projection: dict  # {"mean": [C], "basis": [C][k]}: fitted on references only
    grid: tuple[int, int]  # scan map (H, W) of one reference
    channels: int
    dtype: str = "float16"
    bytes_per_reference: int


class DenseComponent(StrictModel):
    """The optional dense component: per-reference feature maps for MCNCC re-ranking."""

    config: dict  # the DenseConfig the maps were computed with
    px_per_cm: float  # the maps' resolution (the config's matching scale)
    grid: tuple[int, int]  # feature map (h, w) of one reference
    channels: int
    stride: int  # pixels per feature cell at px_per_cm: a smaller probe cannot be matched
    dtype: str = "float16"
    bytes_per_reference: int
    scan: ScanComponent | None = None  # None: re-ranking only, no cascade


class IndexManifest(StrictModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    format_version: int = FORMAT_VERSION
    version: str
    created_at: float
    model_uri: str
    encoder: dict = Field(default_factory=dict)  # the encoder's config and provenance
    canvas: dict[str, int]  # {"height": H, "width": W}
    grid: tuple[int, int]  # feature cells (h, w)
    dim: int
    dtype: str  # "float16" | "float32"
    refdb: str
    refdb_digest: str
    previous_version: str | None = None
    descriptor_model: str | None = None  # filled descriptors of unlabelled references
    attribute_model: str | None = None  # filled attributes; catalogue-photo features
    photo_dim: int = 0
    px_per_cm: float | None = None  # the reference canvas's physical scale (None: unknown)
    dense: DenseComponent | None = None
    incremental: bool = False
    shards: list[ShardEntry]
    counts: dict[str, int] = Field(default_factory=dict)  # references, models, shards, …
    attribute_values: dict[str, list[str]] = Field(default_factory=dict)  # filterable values
    label_sources: dict[str, dict[str, int]] = Field(default_factory=dict)  # label/predicted

    @property
    def references(self) -> int:
        return sum(shard.rows for shard in self.shards)


def new_version_id() -> str:
    """Sortable by creation time, unique across concurrent writers."""
    return time.strftime("v%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def check_version_id(version: object, where: str) -> str:
    """`version` if it is a well-formed id; anything else (`..`, `/`, not a string) is refused
    before it can name a storage path."""
    if not isinstance(version, str) or not VERSION_ID.fullmatch(version):
        shown = repr(version)[:80] if isinstance(version, str) else type(version).__name__
        raise SearchIndexError(f"{where}: malformed index version id {shown} (expected "
                               f"letters, digits, '-' or '_', like {new_version_id()})")
    return version


def manifest_path(version: str) -> str:
    return f"versions/{check_version_id(version, 'index version')}/manifest.json"


def shard_dir(shard_id: str) -> str:
    return f"shards/{shard_id}"


def read_current(root: str | Store) -> str | None:
    """The current version id, or None when nothing has been published yet."""
    store = root if isinstance(root, Store) else open_store(root)
    if not store.exists(POINTER):
        return None
    try:
        version = json.loads(store.read_bytes(POINTER))["version"]
    except (ValueError, KeyError, TypeError) as exc:
        raise SearchIndexError(f"{store.child_uri(POINTER)}: malformed pointer ({exc})") from exc
    return check_version_id(version, store.child_uri(POINTER))


def read_manifest(root: str | Store, version: str | None = None) -> IndexManifest:
    """The manifest of `version` (default: the current one)."""
    store = root if isinstance(root, Store) else open_store(root)
    version = version or read_current(store)
    if version is None:
        raise SearchIndexError(f"{store.uri}: no index has been published here "
                               f"(no {POINTER}; run jobs.reindex first)")
    path = manifest_path(version)
    if not store.exists(path):
        raise SearchIndexError(f"{store.child_uri(path)}: index version {version} not found")
    try:
        return IndexManifest.model_validate_json(store.read_bytes(path))
    except ValidationError as exc:
        raise SearchIndexError(f"{store.child_uri(path)}: malformed manifest ({exc})") from exc


def publish(store: Store, manifest: IndexManifest) -> None:
    """Write the manifest, then switch `CURRENT` to it (each one atomic write)."""
    store.write_bytes(manifest_path(manifest.version),
                      manifest.model_dump_json(indent=2).encode())
    store.write_bytes(POINTER, json.dumps({"version": manifest.version}).encode())


def list_versions(root: str | Store) -> list[str]:
    store = root if isinstance(root, Store) else open_store(root)
    return [name for name in store.list("versions")
            if VERSION_ID.fullmatch(name) and store.exists(manifest_path(name))]
