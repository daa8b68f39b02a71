"""The dense cascade's ranking: the scan's best candidates re-scored exactly, then every model
ranked once.

Why one function: the in-process search (`SearchIndex.cascade`) and Serve's gateway, which
merges the shard replicas' candidates, must rank alike, so both end here. Models with an exact
score come first (best exact score of their candidate instances, ties in scan order); models the
exact pass did not reach follow in scan order, without an exact score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from shoematch.retrieval.ranked import Hit as T


def scan_order(candidates: Sequence[T]) -> list[T]:
    """Best scan score first; ties by global instance order (the index's tie-break)."""
    return sorted(candidates, key=lambda c: (-c.score, c.order))


def cascade_ranking(candidates: Sequence[T], exact: Sequence[float]
                    ) -> list[tuple[T, float | None]]:
    """Unique models: `candidates` in scan order, the first len(exact) of them scored exactly
    (-inf or NaN: no valid overlap). Each model once, with its best instance and exact score
    (None past the exact head)."""
    if len(exact) > len(candidates):
        raise ValueError(f"{len(exact)} exact scores for {len(candidates)} candidates")
    best: dict[str, tuple[float, int, T]] = {}
    for position, (candidate, value) in enumerate(zip(candidates, exact, strict=False)):
        value = -math.inf if math.isnan(value) else value
        kept = best.get(candidate.model)
        if kept is None or value > kept[0]:
            best[candidate.model] = (value, position, candidate)
    head = sorted(best.values(), key=lambda item: (-item[0], item[1]))
    ranked: list[tuple[T, float | None]] = [(c, v) for v, _, c in head]
    for candidate in candidates[len(exact):]:
        if candidate.model not in best:
            best[candidate.model] = (-math.inf, 0, candidate)
            ranked.append((candidate, None))
    return ranked
