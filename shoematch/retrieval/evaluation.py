"""Retrieval evaluation exactly as DESIGN.md: score, rank unique models, hit@K / mAP@K, CMC,
split by query category and seen/unseen."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from shoematch.retrieval.encode import EncodedQueries, EncodedReferences, to_numpy
from shoematch.retrieval.metrics import cmc, evaluate_rankings, first_correct_rank, rank_models


def score_matrix(queries: EncodedQueries, references: EncodedReferences) -> np.ndarray:
    """[Q, R] = Σ over cells of q_cell · d_cell (queries already masked and normalised)."""
    return to_numpy(queries.features) @ to_numpy(references.features).T


def retrieval_report(queries: EncodedQueries, references: EncodedReferences,
                     k: int = 100, scores: np.ndarray | None = None) -> dict:
    """Metrics overall and per category / seen-unseen, plus each query's ranking.

    `scores` [Q, R] replaces the plain masked scan (e.g. placement search's best scores).
    """
    if scores is None:
        scores = score_matrix(queries, references)
    gallery = len(set(references.model_ids))
    rankings = [rank_models(row, references.model_ids, k=gallery) for row in scores]
    targets = [set(t) for t in queries.targets]
    first = [first_correct_rank(r, t) for r, t in zip(rankings, targets, strict=True)]

    def block(indices: list[int]) -> dict:
        top_k = [rankings[i][:k] for i in indices]
        result = evaluate_rankings(top_k, [targets[i] for i in indices], k=k)
        result.update(cmc([first[i] for i in indices if targets[i]], gallery))
        result["queries"] = len(indices)
        return result

    groups: dict[str, list[int]] = defaultdict(list)
    for i, (category, seen) in enumerate(zip(queries.categories, queries.seen, strict=True)):
        groups[f"category={category}"].append(i)
        groups["seen" if seen else "unseen"].append(i)
    return {
        "k": k,
        "gallery_models": gallery,
        "gallery_instances": len(references.model_ids),
        "overall": block(list(range(len(rankings)))),
        "groups": {name: block(idx) for name, idx in sorted(groups.items())},
        "per_query": [
            {"query_id": q, "targets": sorted(t), "first_correct_rank": f, "top10": r[:10]}
            for q, t, f, r in zip(queries.query_ids, targets, first, rankings, strict=True)
        ],
    }
