"""One index-shard deployment: holds its slot's shards of one or two index versions.

Shards are loaded from storage inside the replica (never passed through `.bind()`). A replica
keeps the version it serves while loading the next (`prepare`), answers for whichever version a
request names, and loads a missing version on demand — so a restarted replica, or one that
missed a reload, still answers correctly instead of mixing versions.
"""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np
import ray
import torch
from ray import serve

from serve.settings import ServeSettings
from shoematch.index.filters import SearchFilters
from shoematch.index.layout import read_current
from shoematch.index.reader import SearchIndex
from shoematch.index.search import SearchStats
from shoematch.index.threads import set_search_threads
from shoematch.log import get_logger

log = get_logger(__name__)


@serve.deployment(max_ongoing_requests=16, health_check_period_s=2, health_check_timeout_s=10)
class IndexShard:
    def __init__(self, settings: dict, slot: int) -> None:
        self.settings = ServeSettings.model_validate(settings)
        self.slot = slot
        torch.set_num_threads(self.settings.shard_threads)
        set_search_threads(self.settings.shard_threads)
        self.indexes: dict[str, SearchIndex] = {}
        self.loading: dict[str, asyncio.Lock] = {}
        current = read_current(self.settings.index)
        if current is not None:
            self.indexes[current] = self._load_sync(current)

    def _load_sync(self, version: str) -> SearchIndex:
        return SearchIndex.load(self.settings.index, version, self.slot, self.settings.slots,
                                "cuda" if self.settings.shard_gpus > 0 else None)

    async def _index(self, version: str) -> SearchIndex:
        if version not in self.indexes:
            lock = self.loading.setdefault(version, asyncio.Lock())
            async with lock:
                if version not in self.indexes:
                    self.indexes[version] = await asyncio.to_thread(self._load_sync, version)
        return self.indexes[version]

    async def prepare(self, version: str) -> dict:
        """Load `version` beside the one being served (reload, phase 1)."""
        index = await self._index(version)
        return {"slot": self.slot, "version": version, "shards": len(index.shards)}

    async def release(self, keep: list[str]) -> list[str]:
        """Drop versions no longer served (reload, after in-flight requests finished)."""
        for version in [v for v in self.indexes if v not in keep]:
            del self.indexes[version]
        return sorted(self.indexes)

    async def search(self, version: str, queries: np.ndarray, k: int,
                     filters: list[dict]) -> dict:
        index = await self._index(version)
        parsed = [SearchFilters.model_validate(f) for f in filters]
        stats = SearchStats()
        started = time.perf_counter()
        matches = await asyncio.to_thread(index.search, queries, k, parsed, stats)
        return {"slot": self.slot, "version": version,
                "hits": [[m.to_dict() for m in per_query] for per_query in matches],
                "moments": [[m.count, m.total, m.squares] for m in stats.moments],
                "exact_scored": stats.exact_scored, "truth_rows": stats.truth_rows,
                "timings_ms": {"scan": stats.scan_s * 1e3, "exact": stats.exact_s * 1e3,
                               "shard": (time.perf_counter() - started) * 1e3}}

    async def dense_scores(self, version: str, candidates: list[tuple[str, str]],
                           variants: list[tuple[np.ndarray, np.ndarray]],
                           min_overlap: float) -> list[float]:
        """Dense scores of this slot's re-rank candidates (shard id, instance id) from the maps
        it holds: the maps never leave the replica, only the probe's features travel."""
        index = await self._index(version)
        scores = await asyncio.to_thread(index.dense_scores, candidates, variants, min_overlap)
        return scores.tolist()

    async def dense_scan(self, version: str, variants: list[tuple[np.ndarray, np.ndarray]],
                         n: int, k: int, filters: dict, exhaustive: bool) -> dict:
        """The dense cascade's first stage over this slot's shards: its `n` best instances by
        scan score and its `k` best models' best instances (every allowed instance when
        `exhaustive`), as Match dicts."""
        index = await self._index(version)
        parsed = SearchFilters.model_validate(filters)
        started = time.perf_counter()
        matches = await asyncio.to_thread(index.dense_scan, variants, n, k, parsed, exhaustive)
        return {"slot": self.slot, "version": version, "hits": [m.to_dict() for m in matches],
                "scanned": sum(len(s.searcher) for s in index.shards),
                "timings_ms": {"scan": (time.perf_counter() - started) * 1e3}}

    async def search_photo(self, version: str, features: np.ndarray, k: int,
                           filters: list[dict]) -> dict:
        index = await self._index(version)
        parsed = [SearchFilters.model_validate(f) for f in filters]
        matches = await asyncio.to_thread(index.search_photos, features, k, parsed)
        return {"slot": self.slot, "version": version,
                "hits": [[m.to_dict() for m in per_query] for per_query in matches]}

    async def info(self) -> dict:
        """What this replica holds, where it runs, and its memory (RSS: resident set)."""
        return {"slot": self.slot, "node": ray.get_runtime_context().get_node_id(),
                "rss_bytes": resident_set_bytes(), "versions": {
                    v: {"shards": [s.entry.id for s in index.shards],
                        "references": sum(len(s.searcher) for s in index.shards),
                        "scan_bytes": sum(s.searcher.resident_bytes for s in index.shards)}
                    for v, index in self.indexes.items()}}


def resident_set_bytes() -> int:
    """This process's resident memory now (Linux /proc; 0 where it is not available)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0
