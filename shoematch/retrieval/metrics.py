"""Ranking of unique shoe models and retrieval metrics (docs/scoring-and-metrics.md).

Instances are sorted by score and the list is walked keeping each model's first occurrence, so a
model with many reference images counts once. hit@K: any target among the first K models.
AP@K = Σ_k precision@k · rel(k) / min(#targets, K); mAP@K is its mean over the queries that
have targets (the others are excluded and counted). CMC reports the fraction of queries whose
first correct model lies within the top 1/5/10/20% of the gallery, as on FID-300.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

import numpy as np

CMC_PERCENTS = (1, 5, 10, 20)


def rank_models(scores: np.ndarray, instance_models: Sequence[str], k: int = 100) -> list[str]:
    """The first `k` unique models by descending instance score (ties: lower index first)."""
    scores = np.asarray(scores)
    if scores.ndim != 1 or len(scores) != len(instance_models):
        raise ValueError(f"scores {scores.shape} and {len(instance_models)} instance models "
                         "must be one score per instance")
    # A stable sort of the negated scores keeps equal scores in index order.
    order = np.argsort(-scores, kind="stable")
    ranked: list[str] = []
    seen: set[str] = set()
    for index in order:
        model = instance_models[index]
        if model not in seen:
            seen.add(model)
            ranked.append(model)
            if len(ranked) >= k:
                break
    return ranked


def hit_at_k(ranked: Sequence[str], targets: Collection[str], k: int) -> float:
    """1.0 if any target is among the first `k` ranked models, else 0.0."""
    return float(any(model in targets for model in ranked[:k]))


def average_precision_at_k(ranked: Sequence[str], targets: Collection[str], k: int) -> float:
    """Σ_{i≤k} precision@i · rel(i) / min(#targets, k); undefined (ValueError) without targets."""
    if not targets:
        raise ValueError("average precision is undefined for a query without targets")
    hits, total = 0, 0.0
    for position, model in enumerate(ranked[:k], start=1):
        if model in targets:
            hits += 1
            total += hits / position
    return total / min(len(targets), k)


def first_correct_rank(ranked_models: Sequence[str], targets: Collection[str]) -> int | None:
    """1-based rank of the first target in the ranking, None if none is ranked."""
    for position, model in enumerate(ranked_models, start=1):
        if model in targets:
            return position
    return None


def evaluate_rankings(rankings: list[list[str]], targets: list[set[str]],
                      k: int = 100) -> dict:
    """Mean hit@K and mAP@K over the queries with targets.

    Keys: `hit@K`, `mAP@K` (NaN when no query has targets), `queries_with_targets`,
    `queries_without_targets`.
    """
    if len(rankings) != len(targets):
        raise ValueError(f"{len(rankings)} rankings but {len(targets)} target sets")
    hits, aps = [], []
    for ranked, wanted in zip(rankings, targets, strict=True):
        if not wanted:
            continue
        hits.append(hit_at_k(ranked, wanted, k))
        aps.append(average_precision_at_k(ranked, wanted, k))
    return {
        f"hit@{k}": float(np.mean(hits)) if hits else math.nan,
        f"mAP@{k}": float(np.mean(aps)) if aps else math.nan,
        "queries_with_targets": len(hits),
        "queries_without_targets": len(rankings) - len(hits),
    }


def cmc_threshold(percent: int, gallery_size: int) -> int:
    """Rank cut-off for the top `percent`% of a gallery: percent·N/100 rounded half up (≥ 1).

    FID-300 (N = 1175): 1% → 12, 5% → 59, 10% → 118, 20% → 235. Integer arithmetic, so 117.5
    rounds up (Python's round() would use banker's rounding). Ceiling gives the same four numbers
    for N = 1175; the two conventions differ only for other gallery sizes (e.g. N = 1130, 1%).
    """
    return max(1, (percent * gallery_size + 50) // 100)


def cmc(ranks_of_first_correct: list[int | None], gallery_size: int) -> dict:
    """Fraction of queries whose first correct model is within the top 1/5/10/20% of the gallery,
    plus hit@1 and hit@10. None (no correct model ranked) is a miss. NaN for no queries."""
    if gallery_size < 1:
        raise ValueError(f"gallery_size must be >= 1, got {gallery_size}")
    ranks = np.array([r if r is not None else np.inf for r in ranks_of_first_correct],
                     dtype=float)

    def within(limit: int) -> float:
        return float(np.mean(ranks <= limit)) if len(ranks) else math.nan

    result = {f"top{p}%": within(cmc_threshold(p, gallery_size)) for p in CMC_PERCENTS}
    result["hit@1"] = within(1)
    result["hit@10"] = within(10)
    return result
