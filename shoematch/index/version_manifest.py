"""The manifest of a new index version, assembled once all of its shards are written."""

from __future__ import annotations

import io
import time

import numpy as np
import pyarrow.parquet as pq

from shoematch.crisp.store import LoadedEncoder
from shoematch.data.dataset import Dataset
from shoematch.index.build import summarize_labels
from shoematch.index.layout import (
    METADATA_FILE,
    PHOTOS_FILE,
    DenseComponent,
    IndexManifest,
    ShardEntry,
)
from shoematch.storage import Store


def build_manifest(store: Store, version: str, encoder: LoadedEncoder, refdb: Dataset,
                   grid: tuple[int, int], dim: int, dtype: str, shards: list[ShardEntry],
                   previous: str | None, incremental: bool, descriptor_model: str | None,
                   attribute_model: str | None, px_per_cm: float | None = None,
                   dense: DenseComponent | None = None) -> IndexManifest:
    metas = [pq.read_table(store.path(f"{e.path}/{METADATA_FILE}"), filesystem=store.fs,
                           columns=["model_id", "attributes", "descriptor_source",
                                    "attribute_source"]) for e in shards]
    attribute_values, label_sources = summarize_labels(metas)
    models = {m for meta in metas for m in meta.column("model_id").to_pylist()}
    return IndexManifest(
        version=version, created_at=time.time(), model_uri=encoder.uri,
        encoder={"config": encoder.config.model_dump(mode="json"), "info": encoder.info},
        canvas={"height": refdb.canvas.height, "width": refdb.canvas.width},
        grid=grid, dim=dim, dtype=dtype, refdb=refdb.uri, refdb_digest=refdb.manifest.digest(),
        previous_version=previous, incremental=incremental, shards=shards,
        descriptor_model=descriptor_model, attribute_model=attribute_model,
        photo_dim=photo_dim(store, shards), px_per_cm=px_per_cm, dense=dense,
        counts={"references": sum(e.rows for e in shards), "models": len(models),
                "shards": len(shards)},
        attribute_values=attribute_values, label_sources=label_sources,
    )


def photo_dim(store: Store, shards: list[ShardEntry]) -> int:
    """Width of the catalogue-photo features (read from one .npy header), 0 without photos."""
    for entry in shards:
        if entry.photos_sha256:
            with store.fs.open_input_stream(store.path(f"{entry.path}/{PHOTOS_FILE}")) as f:
                header = io.BytesIO(f.read(256))
            fmt = np.lib.format
            version = fmt.read_magic(header)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape = read(header)[0]
            return int(shape[1])
    return 0
