"""Retrieval evaluation exactly as docs/scoring-and-metrics.md: score, rank unique models, hit@K /
mAP@K, CMC, split by query category and seen/unseen."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

from shoematch.data.dataset import Dataset
from shoematch.evaluation.encode import (
    EncodedQueries,
    EncodedReferences,
    encode_queries,
    encode_references,
    to_numpy,
)
from shoematch.evaluation.placement import PlacementConfig, placed_queries, placement_scores
from shoematch.log import get_logger
from shoematch.retrieval.metrics import cmc, evaluate_rankings, first_correct_rank, rank_models

log = get_logger(__name__)


def score_matrix(queries: EncodedQueries, references: EncodedReferences) -> np.ndarray:
    """[Q, R] = Σ over cells of q_cell · d_cell (queries already masked and normalised)."""
    return to_numpy(queries.features) @ to_numpy(references.features).T


def retrieval_report(queries: EncodedQueries, references: EncodedReferences,
                     k: int = 100, scores: np.ndarray | None = None,
                     rankings: list[list[str]] | None = None) -> dict:
    """Metrics overall and per category / seen-unseen, plus each query's ranking.

    `scores` [Q, R] replaces the plain masked scan (e.g. placement search's best scores);
    `rankings` (every query's full model ranking, e.g. re-ranked) replaces scores altogether.
    """
    gallery = len(set(references.model_ids))
    if rankings is None:
        if scores is None:
            scores = score_matrix(queries, references)
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


@dataclass
class CellStage:
    """Cell scores of every query against every reference instance (CriSp's scan)."""

    queries: EncodedQueries
    references: EncodedReferences
    scores: np.ndarray  # [Q, R]
    placement: dict | None = None


def cell_stage(model: torch.nn.Module, refdb: Dataset, queries: Dataset, device: torch.device,
               split: str | None = None, mask_queries: bool = True,
               placement: PlacementConfig | None = None) -> CellStage:
    """Encode references and queries (optionally with placement search) and score them."""
    refs = encode_references(model, refdb, device)
    if placement is None:
        encoded = encode_queries(model, queries, device, split=split, mask_queries=mask_queries)
        return CellStage(encoded, refs, score_matrix(encoded, refs))
    records = [r for r in queries.iter_records() if split is None or r["split"] == split]
    started = time.monotonic()
    scores = placement_scores(model, records, refs, device, placement)
    seconds = (time.monotonic() - started) / max(len(records), 1)
    log.info("placement search: %d placements/query, %.2f s/query", placement.count, seconds)
    return CellStage(placed_queries(records), refs, scores,
                     {**placement.model_dump(), "count": placement.count,
                      "seconds_per_query": seconds})


def evaluate_encoder(model: torch.nn.Module, refdb: Dataset, queries: Dataset,
                     device: torch.device, split: str | None = None, k: int = 100,
                     mask_queries: bool = True,
                     placement: PlacementConfig | None = None) -> dict:
    """Encode references and queries (optionally with placement search) and report."""
    stage = cell_stage(model, refdb, queries, device, split, mask_queries, placement)
    report = retrieval_report(stage.queries, stage.references, k=k, scores=stage.scores)
    if stage.placement is not None:
        report["placement"] = stage.placement
    return report
