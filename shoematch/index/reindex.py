"""Re-indexing as one plan and interchangeable executors.

`make_plan` checks every input before any work (reference db, encoder, store, label models,
incremental compatibility) and fixes what to encode; an executor (`LocalExecutor` here,
`shoematch.ray.reindex.RayDataExecutor` on a cluster) encodes the planned records with
`EncodeBatch` and writes one index shard per shard group; `run_reindex` adds the reused and
rewritten shards, writes the manifest and makes the version current — or removes the attempt's
shards on any failure, leaving the previous version current.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import torch

from shoematch.crisp.store import LoadedEncoder, load_encoder
from shoematch.data.dataset import Dataset, open_dataset
from shoematch.data.schema import REFERENCE_KIND
from shoematch.dense.component import dataset_px_per_cm
from shoematch.dense.matcher import DenseConfig
from shoematch.dense.scan import ScanConfig
from shoematch.errors import SearchIndexError, ShoematchError
from shoematch.index.build import (
    READ_COLUMNS,
    SHARD,
    EncodeBatch,
    IncrementalPlan,
    entries_from,
    input_digest,
    plan_incremental,
    rewrite_shard,
    write_group,
)
from shoematch.index.dense import dense_component, fit_scan_component
from shoematch.index.layout import (
    DenseComponent,
    IndexManifest,
    ShardEntry,
    new_version_id,
    publish,
    read_current,
    read_manifest,
    shard_dir,
)
from shoematch.index.version_manifest import build_manifest
from shoematch.log import get_logger
from shoematch.storage import Store, open_store

log = get_logger(__name__)


@dataclass
class ReindexSettings:
    model: str  # encoder dir, checkpoint, s3:// or MLflow URI
    refdb: str
    out: str  # index root
    shards: int = 4
    incremental: bool = False
    dtype: str = "float16"
    batch_size: int = 16
    threads: int = 1  # torch threads per encoder
    descriptor_model: str | None = None
    attribute_model: str | None = None
    dense: DenseConfig | None = None  # also store dense feature maps (re-ranking component)
    scan: ScanConfig | None = None  # with `dense`: the cascade's scan maps (first stage)


@dataclass
class ReindexPlan:
    settings: ReindexSettings
    refdb: Dataset
    encoder: LoadedEncoder
    store: Store
    grid: tuple[int, int]
    dim: int
    version: str
    previous: IndexManifest | None
    update: IncrementalPlan | None  # None: encode every record
    dense: DenseComponent | None = None  # the manifest's dense entry (None: no dense maps)

    @property
    def wanted_ids(self) -> pa.Array | None:
        """Instance ids to encode (None: all of them)."""
        return None if self.update is None else pa.array(sorted(self.update.new_ids), pa.string())

    def encoder_kwargs(self, device: str = "cpu") -> dict[str, Any]:
        """`EncodeBatch` arguments, the same for every executor."""
        s = self.settings
        return {"model_uri": s.model, "shards": s.shards, "dtype": s.dtype, "device": device,
                "threads": s.threads, "descriptor_model": s.descriptor_model,
                "attribute_model": s.attribute_model, "dense": self.dense_request}

    @property
    def dense_request(self) -> dict | None:
        """What the encoder actors need to compute dense maps (None: none wanted)."""
        if self.settings.dense is None or self.dense is None:
            return None
        scan = self.dense.scan
        return {"config": self.settings.dense.model_dump(mode="json"),
                "px_per_cm": dataset_px_per_cm(self.refdb),  # the references' own scale
                "scan": None if scan is None else {"config": scan.config,
                                                   "projection": scan.projection}}


def select_rows(table: pa.Table, wanted: pa.Array | None) -> pa.Table:
    """The rows of `table` to encode: all, or those whose instance id is in `wanted`."""
    return table if wanted is None else table.filter(pc.is_in(table["instance_id"], wanted))


class Executor(Protocol):
    def encode(self, plan: ReindexPlan) -> tuple[list[ShardEntry], int]:
        """Encode the planned records and write their shards; (shard entries, records)."""


@dataclass
class ReindexResult:
    manifest: IndexManifest
    encoded: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.encoded / self.seconds if self.seconds > 0 else 0.0


def grid_of(encoder: LoadedEncoder, refdb: Dataset) -> tuple[tuple[int, int], int]:
    """Feature grid and channels for the reference canvas (one forward pass on zeros)."""
    with torch.no_grad():
        out = encoder.model(torch.zeros(1, 2, refdb.canvas.height, refdb.canvas.width))
    return (int(out.shape[2]), int(out.shape[3])), int(out.shape[1])


def check_label_models(settings: ReindexSettings) -> None:
    """Load the optional label models once here, so a bad URI fails before cluster work."""
    if settings.descriptor_model:
        from shoematch.descriptors.predict import load_descriptor_model

        load_descriptor_model(settings.descriptor_model)
    if settings.attribute_model:
        from shoematch.attributes.predict import load_attribute_model

        load_attribute_model(settings.attribute_model)


def wanted_digests(refdb: Dataset, dense: bool) -> dict[str, str]:
    table = refdb.read_table(["instance_id", "depth", "print"])
    return {iid: input_digest(d, p, dense) for iid, d, p in zip(
        table.column("instance_id").to_pylist(), table.column("depth").to_pylist(),
        table.column("print").to_pylist(), strict=True)}


def make_plan(settings: ReindexSettings) -> ReindexPlan:
    """Everything that can be wrong with the inputs is found here, before any encoding."""
    if settings.shards < 1:
        raise SearchIndexError(f"{settings.out}: shards must be ≥ 1, got {settings.shards}")
    refdb = open_dataset(settings.refdb, REFERENCE_KIND)
    encoder = load_encoder(settings.model)
    store = open_store(settings.out)
    store.check()
    grid, dim = grid_of(encoder, refdb)
    check_label_models(settings)
    current = read_current(store)
    previous = read_manifest(store, current) if current else None
    dense = None if settings.dense is None else plan_dense(settings, refdb, previous)
    update = None
    if settings.incremental:
        if previous is None:
            raise SearchIndexError(f"{settings.out}: no current index to update; run without "
                                   "--incremental first")
        built = (previous.model_uri, previous.dtype, previous.descriptor_model,
                 previous.attribute_model)
        wanted = (encoder.uri, settings.dtype, settings.descriptor_model,
                  settings.attribute_model)
        if built != wanted:
            raise SearchIndexError(
                f"{settings.out}: current version {current} was built with (model, dtype, "
                f"descriptor model, attribute model) = {built}; --incremental needs the same, "
                f"got {wanted}; run a full re-index instead")
        if previous.dense != dense:
            raise SearchIndexError(
                f"{settings.out}: current version {current} has dense component "
                f"{describe_dense(previous.dense)}, this run asks for {describe_dense(dense)}; "
                "--incremental needs the same (same --dense and --dense-config); run a full "
                "re-index instead")
        update = plan_incremental(store, previous.shards,
                                  wanted_digests(refdb, dense is not None))
    return ReindexPlan(settings, refdb, encoder, store, grid, dim, new_version_id(), previous,
                       update, dense)


def plan_dense(settings: ReindexSettings, refdb: Dataset,
               previous: IndexManifest | None) -> DenseComponent:
    """The dense component this run writes. Its scan projection is fitted on the references,
    except in an incremental run over an index that has one for the same scan config: the old
    shards' scan maps were made with it, so it is kept."""
    assert settings.dense is not None
    px_per_cm = dataset_px_per_cm(refdb)
    scan = None
    if settings.scan is not None:
        kept = previous.dense.scan if previous and previous.dense else None
        same = kept is not None and kept.config == settings.scan.model_dump(mode="json")
        scan = kept if settings.incremental and same else \
            fit_scan_component(refdb, settings.dense, settings.scan, px_per_cm)
    return dense_component(settings.dense, refdb.canvas, px_per_cm, scan)


def describe_dense(dense: DenseComponent | None) -> str:
    return "none" if dense is None else \
        f"{dense.config} at {dense.px_per_cm:g} px/cm, grid {dense.grid}"


class LocalExecutor:
    """The same encoder and writer in this process, one batch at a time: the baseline for
    Ray's overhead and a laptop fallback."""

    def encode(self, plan: ReindexPlan) -> tuple[list[ShardEntry], int]:
        encoder = EncodeBatch(**{**plan.encoder_kwargs(), "threads": None})  # all cores
        table = select_rows(plan.refdb.read_table(READ_COLUMNS), plan.wanted_ids)
        if table.num_rows == 0:
            return [], 0
        size = plan.settings.batch_size
        encoded = pa.concat_tables(encoder(table.slice(start, size))
                                   for start in range(0, table.num_rows, size))
        groups = [encoded.filter(pc.equal(encoded[SHARD], shard))
                  for shard in sorted(set(encoded.column(SHARD).to_pylist()))]
        entries = entries_from(write_group(group, plan.settings.out, plan.version,
                                           plan.settings.dtype) for group in groups)
        return entries, encoded.num_rows


def run_reindex(plan: ReindexPlan, executor: Executor) -> ReindexResult:
    """Encode with `executor`, then publish the new version (or discard the attempt)."""
    s, store, update = plan.settings, plan.store, plan.update
    log.info("re-indexing %s (%d references) with %s into %s version %s%s", plan.refdb.uri,
             len(plan.refdb), plan.encoder.uri, store.uri, plan.version,
             f" (incremental: {update.summary})" if update else "")
    started = time.perf_counter()
    try:
        shards, encoded = executor.encode(plan)
        seconds = time.perf_counter() - started
        if update:
            shards += update.keep
            for i, (entry, rows) in enumerate(update.rewrite):
                shards.append(rewrite_shard(store, entry, rows, f"{plan.version}-r{i:03d}",
                                            s.dtype))
        manifest = build_manifest(store, plan.version, plan.encoder, plan.refdb, plan.grid,
                                  plan.dim, s.dtype, shards,
                                  plan.previous.version if plan.previous else None,
                                  bool(update), s.descriptor_model, s.attribute_model,
                                  plan.refdb.manifest.params.get("px_per_cm"), plan.dense)
        publish(store, manifest)
    except BaseException:
        discard(store, plan.version)
        raise
    log.info("version %s is current: %d references in %d shards; encoded %d in %.1f s",
             plan.version, manifest.references, len(manifest.shards), encoded, seconds)
    return ReindexResult(manifest, encoded, seconds)


def discard(store: Store, version: str) -> None:
    """Best effort: remove this attempt's shards (the previous version stays current)."""
    try:
        for name in store.list("shards"):
            if name.startswith(version):
                store.delete_dir(shard_dir(name))
    except ShoematchError as exc:
        log.warning("could not remove the failed attempt's shards (%s); they are unused", exc)
