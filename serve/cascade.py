"""Serve's dense cascade (`POST /v1/search` by default on an index with scan maps).

Stage 1, in every shard slot where the maps live: the scan (`shoematch.dense.scan`) over all of
its references; its best `n` instances (and its best `k` models' best instances) come back. The
gateway merges them in scan order and keeps the global best `n` — the candidates a single
process would keep. Stage 2: each slot scores its candidates by exact MCNCC (`dense_scores`,
the re-ranking path), and the gateway ranks the models with
`shoematch.dense.cascade.cascade_ranking`, as `SearchIndex.cascade` does in process. So the
served ranking is the in-process one whatever the slot count. When the index holds no
more references than `n`, the scan is skipped and every reference is scored exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np

from shoematch.dense.cascade import cascade_ranking, scan_order
from shoematch.errors import IndexComponentMissing, QueryError
from shoematch.index.layout import IndexManifest
from shoematch.index.reader import Match

Ask = Callable[..., Awaitable]
MATCHERS = ("auto", "cells", "cascade")
NO_CALIBRATION = ("the dense cascade's scores have no calibrated probability yet: its ranking is "
                  "shown without P(true model in the top 10)")


def cascade_available(manifest: IndexManifest) -> bool:
    return manifest.dense is not None and manifest.dense.scan is not None


def choose_matcher(manifest: IndexManifest, matcher: str, rerank: int) -> str:
    """`cells` or `cascade` for a request: `auto` takes the cascade when the index has its
    components and no cell re-ranking was asked for."""
    if matcher not in MATCHERS:
        raise QueryError(f"matcher must be one of {list(MATCHERS)}, got {matcher!r}")
    if matcher == "cascade":
        if rerank:
            raise QueryError("rerank applies to the cell ranking; the cascade re-scores its "
                             "own candidates (send matcher=cells with rerank, or rerank=0)")
        if not cascade_available(manifest):
            raise IndexComponentMissing(
                f"matcher=cascade asked of index version {manifest.version}, which has no dense "
                "scan maps: re-index with `jobs.reindex --dense`, or send matcher=cells")
        return "cascade"
    if matcher == "auto" and not rerank and cascade_available(manifest):
        return "cascade"
    return "cells"


def check_candidates(manifest: IndexManifest, candidates: int | None, most: int) -> int:
    """The exact pass's N: the request's, else the index's scan config's."""
    assert manifest.dense is not None and manifest.dense.scan is not None
    n = int(manifest.dense.scan.config.get("candidates", 200)) if candidates is None \
        else candidates
    if not 1 <= n <= most:
        raise QueryError(f"candidates must be between 1 and {most}, got {n}")
    return n


async def cascade_matches(ask: Ask, slots: int, manifest: IndexManifest, variants: list,
                          k: int, n: int, filters: dict
                          ) -> tuple[list[tuple[Match, float | None]], list[dict], dict]:
    """The top `k` models of the cascade, each with its exact score (None past the exact
    head); the stages that ran; the slots' stage timings (the slowest slot's)."""
    assert manifest.dense is not None
    exhaustive = manifest.references <= n
    scans = await asyncio.gather(*(ask(slot, "dense_scan", manifest.version, variants, n, k,
                                       filters, exhaustive) for slot in range(slots)))
    # Each slot's best n instances and best k models: their merge holds the global best n
    # instances (the exact pass's candidates) and the global best k models (the tail).
    candidates = scan_order([Match(**hit) for answer in scans for hit in answer["hits"]])
    head = candidates[:n]
    by_slot: dict[int, list[int]] = {}
    slot_of = {hit["shard"]: answer["slot"] for answer in scans for hit in answer["hits"]}
    for i, match in enumerate(head):
        by_slot.setdefault(slot_of[match.shard], []).append(i)
    min_overlap = float(manifest.dense.config.get("min_overlap", 0.5))
    scored = await asyncio.gather(*(
        ask(slot, "dense_scores", manifest.version,
            [(head[i].shard, head[i].instance_id) for i in items], variants, min_overlap)
        for slot, items in by_slot.items()))
    exact = np.full(len(head), -np.inf)
    for items, values in zip(by_slot.values(), scored, strict=True):
        exact[items] = values
    scanned = sum(answer["scanned"] for answer in scans)
    stages = [{"stage": "exact", "references": len(head)}] if exhaustive else [
        {"stage": "scan", "references": scanned, "kept": len(head)},
        {"stage": "exact", "references": len(head)}]
    timings = {"scan": max(answer["timings_ms"]["scan"] for answer in scans)}
    return cascade_ranking(candidates, exact.tolist())[:k], stages, timings
