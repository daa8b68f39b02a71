"""Exact merge of per-shard top-k lists into the global top-k unique models.

If model m is in the global top k, its best instance lives in some shard where fewer than k
models beat it, so m is in that shard's top k with its true best score: the union of the shard
lists, deduplicated by model (best score wins), holds the exact global top k.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from shoematch.retrieval.ranked import Hit


def merge_top_k(lists: Iterable[Sequence[Hit]], k: int) -> list[Hit]:
    """Global top-`k` unique models; hits need `.model`, `.score` and `.order` (the tie-break)."""
    best: dict[str, Hit] = {}
    for hits in lists:
        for hit in hits:
            seen = best.get(hit.model)
            if seen is None or (-hit.score, hit.order) < (-seen.score, seen.order):
                best[hit.model] = hit
    return sorted(best.values(), key=lambda hit: (-hit.score, hit.order))[:k]
