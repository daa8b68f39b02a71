"""Loading an index version (all shards or a serving slot's share) and searching it.

The in-process search and the Ray Serve shard deployments use this same code, and the same
exact merge, so HTTP results equal in-process results by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np
import torch

from shoematch.dense.cascade import cascade_ranking, scan_order
from shoematch.dense.matcher import DenseConfig
from shoematch.dense.mcncc import ReferenceSpectra
from shoematch.dense.rerank import Variant, variant_scores
from shoematch.dense.scan import (
    Projection,
    ScanConfig,
    ScanGallery,
    ScanProbe,
    coarse_grid,
    scan_probe,
)
from shoematch.errors import IndexComponentMissing, QueryError, SearchIndexError
from shoematch.index.device_search import DeviceShardSearcher
from shoematch.index.filters import FilterColumns, SearchFilters, parse_filters
from shoematch.index.layout import DenseComponent, IndexManifest, ShardEntry, read_manifest
from shoematch.index.merge import merge_top_k
from shoematch.index.search import PhotoSearcher, SearchStats, ShardSearcher
from shoematch.index.shard_io import read_shard, release_pages
from shoematch.log import get_logger
from shoematch.storage import Store, open_store

log = get_logger(__name__)
MAX_K = 1000


@dataclass(frozen=True)
class Match:
    """One ranked shoe model with the evidence an examiner needs to check it."""

    model: str
    score: float
    order: int
    instance_id: str
    pattern_id: str
    descriptors: list[str]
    attributes: dict[str, str]
    descriptor_source: str
    attribute_source: str
    shard: str
    cell_scores: list[list[float]]  # [h][w] per-cell similarity of the best instance

    def to_dict(self) -> dict:
        return asdict(self)


class LoadedShard:
    def __init__(self, entry: ShardEntry, store: Store, order_offset: int,
                 grid: tuple[int, int], device: str | None = None,
                 scan_grid: tuple[int, int] | None = None) -> None:
        data = read_shard(store, entry, mmap_cells=True)
        self.entry = entry
        self.grid = grid
        self.order_offset = order_offset
        meta = data.metadata
        # Kept as Arrow columns (a few bytes per reference), not Python objects (~3 KB each):
        # only the k hits of a query are ever turned into Python values.
        self.metadata = meta.select(["instance_id", "pattern_id", "descriptors", "attributes",
                                     "descriptor_source", "attribute_source"]).combine_chunks()
        models = meta.column("model_id").to_pylist()
        self.searcher = ShardSearcher(data.cells, models, order_offset) if device is None \
            else DeviceShardSearcher(data.cells, models, device, order_offset)
        release_pages(data.cells)  # the int8 copy is built: the truth goes back to disk
        self.photos = None if data.photos is None else PhotoSearcher(data.photos, self.searcher)
        self.filters = FilterColumns(meta)
        self.dense = data.dense  # [n, C, h, w] float16 (memory-mapped when local), or None
        # The scan's spectra stay on the replica's device (GPU when it has one).
        self.scan = None if data.scan is None or scan_grid is None else \
            ScanGallery(torch.from_numpy(data.scan).to(device or "cpu"), scan_grid)

    @cached_property
    def rows(self) -> dict[str, int]:
        """Row of each instance id (dense re-ranking only, so built on first use)."""
        return {iid: i for i, iid in enumerate(self.metadata.column("instance_id").to_pylist())}

    def search(self, queries: torch.Tensor, k: int, filters: Sequence[SearchFilters],
               stats: SearchStats | None = None) -> list[list[Match]]:
        allowed = [self.filters.mask(f) for f in filters]
        hits = self.searcher.search(queries, k, None if all(a is None for a in allowed)
                                    else allowed, stats)
        matches = []
        for b, shard_hits in enumerate(hits):
            cells = self.searcher.cell_scores(queries[b], [hit.row for hit in shard_hits])
            matches.append([self._match(hit, cells[i].reshape(self.grid))
                            for i, hit in enumerate(shard_hits)])
        return matches

    def scan_search(self, probes: Sequence[ScanProbe] | None, n: int, k: int,
                    filters: SearchFilters, min_overlap: float) -> list[Match]:
        """This shard's best `n` instances by the cascade's scan score (after `filters`), and
        the best instance of each of its best `k` models (so a merge of shards finds the global
        top `n` instances and the global top `k` models). `probes` None: every allowed instance,
        score 0 (exhaustive: the exact pass scores all)."""
        allowed = self.filters.mask(filters)
        if probes is None:
            scores = np.zeros(len(self.searcher), dtype=np.float32)
            if allowed is not None:
                scores[~allowed] = -np.inf
        else:
            assert self.scan is not None
            scores = self.scan.scores(probes, min_overlap, allowed)
        finite = np.flatnonzero(np.isfinite(scores))
        order = finite[np.argsort(-scores[finite], kind="stable")]  # ties: lower row first
        codes = self.searcher.model_codes[order]
        _, first = np.unique(codes, return_index=True)
        rows = np.union1d(order[:n], order[np.sort(first)[:k]])
        rows = rows[np.lexsort((rows, -scores[rows]))]
        names = self.searcher.model_names[self.searcher.model_codes[rows]].tolist()
        empty = np.zeros((0, 0))
        return [self._match(_Hit(int(row), name, float(scores[row]), self.order_offset + row),
                            empty) for row, name in zip(rows, names, strict=True)]

    def search_photos(self, features: torch.Tensor, k: int,
                      filters: Sequence[SearchFilters]) -> list[list[Match]]:
        if self.photos is None:
            return [[] for _ in range(features.shape[0])]
        allowed = [self.filters.mask(f) for f in filters]
        hits = self.photos.search(features, k, allowed)
        return [[self._match(hit, np.zeros(self.grid)) for hit in shard_hits]
                for shard_hits in hits]

    def _value(self, column: str, row: int):
        return self.metadata.column(column)[row].as_py()

    def _match(self, hit, cells: np.ndarray) -> Match:
        row = hit.row
        return Match(
            model=hit.model, score=hit.score, order=hit.order,
            instance_id=self._value("instance_id", row),
            pattern_id=self._value("pattern_id", row),
            descriptors=list(self._value("descriptors", row) or []),
            attributes=dict(self._value("attributes", row) or []),
            descriptor_source=self._value("descriptor_source", row),
            attribute_source=self._value("attribute_source", row),
            shard=self.entry.id,
            cell_scores=np.round(cells, 4).tolist(),
        )


@dataclass(frozen=True)
class _Hit:
    """A scan hit in the shape `LoadedShard._match` reads."""

    row: int
    model: str
    score: float
    order: int


def check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise QueryError(f"k must be between 1 and {MAX_K}, got {k}")


def per_query(filters: Sequence[SearchFilters] | SearchFilters | None,
              batch: int) -> Sequence[SearchFilters]:
    """One filter set per query (a single one, or none, applies to all)."""
    if filters is None or isinstance(filters, SearchFilters):
        return [filters or SearchFilters()] * batch
    return filters


def shard_offsets(manifest: IndexManifest) -> dict[str, int]:
    """Global instance order of each shard's first row: the tie-break across shards."""
    offsets, total = {}, 0
    for entry in manifest.shards:
        offsets[entry.id] = total
        total += entry.rows
    return offsets


def scan_probe_grid(dense: DenseComponent | None) -> tuple[int, int] | None:
    """The coarse grid every cascade probe is padded to: the dense config's probe grid, at
    least the references' grid (a probe placed on the canvas never exceeds it)."""
    if dense is None or dense.scan is None:
        return None
    pool = ScanConfig.model_validate(dense.scan.config).pool
    probe = tuple(dense.config.get("probe_grid", dense.grid))
    fine = max(probe[0], dense.grid[0]), max(probe[1], dense.grid[1])
    return coarse_grid(fine, pool)


def slot_shards(manifest: IndexManifest, slot: int, slots: int) -> list[ShardEntry]:
    """The shards a serving slot holds: shard i goes to slot i mod slots."""
    return [entry for i, entry in enumerate(manifest.shards) if i % slots == slot]


class SearchIndex:
    """Some or all shards of one index version, searchable in process."""

    def __init__(self, root: str, manifest: IndexManifest, shards: list[LoadedShard],
                 device: str | None = None) -> None:
        self.root = root
        self.manifest = manifest
        self.shards = shards
        self.device = torch.device(device or "cpu")  # where the dense kernels run

    @classmethod
    def load(cls, root: str, version: str | None = None, slot: int = 0, slots: int = 1,
             device: str | None = None) -> SearchIndex:
        """The shards of `slot`; with a torch `device` their scan and exact pass run there
        (`DeviceShardSearcher`), else on the CPU kernels."""
        store = open_store(root)
        manifest = read_manifest(store, version)
        offsets = shard_offsets(manifest)
        grid = manifest.grid
        scan = scan_probe_grid(manifest.dense)
        shards = [LoadedShard(entry, store, offsets[entry.id], grid, device, scan)
                  for entry in slot_shards(manifest, slot, slots)]
        log.info("loaded index %s version %s: %d of %d shards, %d references", root,
                 manifest.version, len(shards), len(manifest.shards),
                 sum(len(s.searcher) for s in shards))
        return cls(root, manifest, shards, device)

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def cell_count(self) -> int:
        return self.manifest.grid[0] * self.manifest.grid[1]

    def check_queries(self, queries: np.ndarray | torch.Tensor) -> torch.Tensor:
        queries = torch.from_numpy(np.array(queries, dtype=np.float32)) \
            if isinstance(queries, np.ndarray) else queries.float()
        expected = (self.cell_count, self.manifest.dim)
        if queries.dim() != 3 or tuple(queries.shape[1:]) != expected:
            raise QueryError(f"query features {tuple(queries.shape)} do not fit index "
                             f"{self.version} ([B, {expected[0]}, {expected[1]}])")
        return queries

    def parse_filters(self, raw) -> SearchFilters:
        return parse_filters(raw, self.manifest.attribute_values)

    def search(self, queries: np.ndarray | torch.Tensor, k: int,
               filters: Sequence[SearchFilters] | SearchFilters | None = None,
               stats: SearchStats | None = None) -> list[list[Match]]:
        """Top-`k` unique models per query [B, S, C] over the loaded shards, merged exactly."""
        queries = self.check_queries(queries)
        check_k(k)
        if not self.manifest.shards:
            raise SearchIndexError(f"index {self.root} version {self.version} is empty")
        batch = queries.shape[0]
        filters = per_query(filters, batch)
        per_shard = [shard.search(queries, k, filters, stats) for shard in self.shards]
        return [merge_top_k([lists[b] for lists in per_shard], k) for b in range(batch)]

    def dense_scores(self, candidates: Sequence[tuple[str, str]], variants: Sequence[Variant],
                     min_overlap: float) -> np.ndarray:
        """Dense scores of re-rank candidates (shard id, instance id) held here, in their order:
        one batched MCNCC over the candidates' stored maps."""
        if self.manifest.dense is None:
            raise IndexComponentMissing(f"index {self.root} version {self.version} has no dense "
                                        "feature maps (re-index with --dense)")
        held = {shard.entry.id: shard for shard in self.shards}
        maps = []
        for shard_id, instance in candidates:
            shard = held.get(shard_id)
            if shard is None or shard.dense is None or instance not in shard.rows:
                raise SearchIndexError(f"instance {instance!r} of shard {shard_id} is not held "
                                       f"here (index {self.root} version {self.version})")
            maps.append(shard.dense[shard.rows[instance]])
        if not maps:
            return np.zeros(0, dtype=np.float32)
        references = ReferenceSpectra(torch.from_numpy(np.stack(maps)).to(self.device))
        return variant_scores(variants, references, min_overlap)

    @property
    def min_overlap(self) -> float:
        """The dense matcher's least overlap, as the index's dense config records it."""
        config = self.manifest.dense.config if self.manifest.dense else {}
        return float(config.get("min_overlap", DenseConfig().min_overlap))

    def scan_probes(self, variants: Sequence[Variant]) -> list[ScanProbe]:
        """The probe's dense variants in the cascade scan's terms (refused when the index has
        no scan maps)."""
        dense = self.manifest.dense
        if dense is None or dense.scan is None:
            raise IndexComponentMissing(
                f"index {self.root} version {self.version} has no dense cascade (scan maps): "
                "re-index with `jobs.reindex --dense`, or search by cells")
        config = ScanConfig.model_validate(dense.scan.config)
        projection = Projection.from_dict(dense.scan.projection)
        grid = scan_probe_grid(dense)
        assert grid is not None
        return [scan_probe(features, visible, projection, config.pool, grid)
                for features, visible in variants]

    def dense_scan(self, variants: Sequence[Variant], n: int, k: int = 1,
                   filters: SearchFilters | None = None, exhaustive: bool = False
                   ) -> list[Match]:
        """The first stage of the dense cascade over the loaded shards, in scan order: the `n`
        best instances by scan score and the best instance of each of the `k` best models, each
        as a Match whose score is its scan score. With `exhaustive`, no scan: every (allowed)
        instance, in index order, for the exact pass."""
        probes = None if exhaustive else self.scan_probes(variants)
        return scan_order([match for shard in self.shards
                           for match in shard.scan_search(probes, n, k,
                                                          filters or SearchFilters(),
                                                          self.min_overlap)])

    def cascade(self, variants: Sequence[Variant], k: int, n: int,
                filters: SearchFilters | None = None) -> list[tuple[Match, float | None]]:
        """Dense cascade in process: scan every reference, score the best `n` exactly, rank
        the models (the top `k`); Serve's gateway composes the same two stages over its shard
        replicas and ranks with the same `cascade_ranking`."""
        check_k(k)
        exhaustive = n >= self.manifest.references
        candidates = self.dense_scan(variants, n, k, filters, exhaustive)
        exact = self.dense_scores([(c.shard, c.instance_id) for c in candidates[:n]], variants,
                                  self.min_overlap)
        return cascade_ranking(candidates, exact.tolist())[:k]

    def search_photos(self, features: np.ndarray | torch.Tensor, k: int,
                      filters: Sequence[SearchFilters] | SearchFilters | None = None
                      ) -> list[list[Match]]:
        """Top-`k` unique models per sole-photo feature [B, D] against catalogue photos."""
        if not self.manifest.photo_dim:
            raise SearchIndexError(f"index {self.root} version {self.version} has no catalogue-"
                                   "photo features (re-index with --attribute-model)")
        features = torch.from_numpy(np.array(features, dtype=np.float32)) \
            if isinstance(features, np.ndarray) else features.float()
        check_k(k)
        batch = features.shape[0]
        filters = per_query(filters, batch)
        per_shard = [shard.search_photos(features, k, filters) for shard in self.shards]
        return [merge_top_k([lists[b] for lists in per_shard], k) for b in range(batch)]
