"""Evaluating dense matching: over the whole reference set (`dense`), or re-ranking the cell
stage's top-N unique models (`cells+dense`), reported like every other matcher.

The re-ranking is `rerank.py`'s, the one Serve uses; the reference maps are rounded to float16
as the index stores them, so a served index and this evaluation rank a query alike.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from shoematch.data.dataset import Dataset
from shoematch.data.images import decode_image
from shoematch.dense.component import dataset_px_per_cm, reference_maps
from shoematch.dense.matcher import DenseMatcher
from shoematch.dense.mcncc import ReferenceSpectra
from shoematch.dense.rerank import best_instances, rerank, variant_scores
from shoematch.errors import QueryError
from shoematch.evaluation.encode import EncodedReferences
from shoematch.evaluation.evaluation import CellStage, retrieval_report
from shoematch.evaluation.placement import placed_queries
from shoematch.log import get_logger
from shoematch.retrieval.metrics import evaluate_rankings, rank_models

log = get_logger(__name__)


def _query_records(queries: Dataset, split: str | None) -> list[dict]:
    return [r for r in queries.iter_records() if split is None or r["split"] == split]


def _probe(record: dict) -> tuple[np.ndarray, np.ndarray]:
    name = record["query_id"]
    return (decode_image(record["print"], f"{name} print"),
            decode_image(record["mask"], f"{name} mask") > 127)


def evaluate_dense(matcher: DenseMatcher, refdb: Dataset, queries: Dataset,
                   split: str | None = None, k: int = 100, first_stage: CellStage | None = None,
                   rerank_n: int = 100) -> dict:
    """The retrieval report of dense matching alone (`first_stage` None) or of the cell stage's
    top-`rerank_n` models re-ranked by the dense score of each one's best cell-stage instance.

    A probe the dense matcher refuses (smaller than the feature stride, nothing visible) keeps
    the cell ranking, or ranks nothing without a cell stage; it is listed under `failures`.
    """
    ref_px, query_px = dataset_px_per_cm(refdb), dataset_px_per_cm(queries)
    records = list(refdb.iter_records(["instance_id", "model_id", "pattern_id", "print"]))
    prints = [decode_image(r["print"], f"{r['instance_id']} print") for r in records]
    maps = torch.from_numpy(reference_maps(matcher, prints, ref_px)).to(matcher.device)
    references = EncodedReferences(torch.empty(0), [r["instance_id"] for r in records],
                                   [r["model_id"] for r in records],
                                   [r["pattern_id"] for r in records])
    models = references.model_ids
    gallery = len(set(models))
    whole = ReferenceSpectra(maps) if first_stage is None else None
    query_records = _query_records(queries, split)
    rankings, cell_rankings, failures = [], [], []
    started = time.monotonic()
    for i, record in enumerate(query_records):
        cells = None if first_stage is None else \
            rank_models(first_stage.scores[i], models, k=gallery)
        if cells is not None:
            cell_rankings.append(cells)
        try:
            variants = matcher.probe_variants(*_probe(record), query_px)
        except QueryError as exc:
            failures.append({"query_id": record["query_id"], "error": str(exc)})
            rankings.append(cells or [])
            continue
        if first_stage is None:
            assert whole is not None  # built above for dense matching alone
            scores = variant_scores(variants, whole, matcher.config.min_overlap)
            rankings.append(rank_models(scores, models, k=gallery))
            continue
        assert cells is not None
        rows = [row for _, row in best_instances(first_stage.scores[i], models, rerank_n)]
        dense = variant_scores(variants, ReferenceSpectra(maps[rows]),
                               matcher.config.min_overlap)
        rankings.append([model for model, _ in rerank(cells, dense)])
    seconds = (time.monotonic() - started) / max(len(query_records), 1)
    meta = placed_queries(query_records)
    report = retrieval_report(meta, references, k=k, rankings=rankings)
    report["dense"] = {"config": matcher.config.model_dump(mode="json"),
                       "references_px_per_cm": ref_px, "queries_px_per_cm": query_px,
                       "seconds_per_query": seconds, "device": str(matcher.device),
                       "failures": failures}
    if first_stage is not None:
        recall = evaluate_rankings([r[:rerank_n] for r in cell_rankings],
                                   [set(t) for t in meta.targets], k=rerank_n)
        report["first_stage"] = {"matcher": "cells", "n": rerank_n,
                                 f"recall@{rerank_n}": recall[f"hit@{rerank_n}"],
                                 "queries_with_targets": recall["queries_with_targets"]}
    log.info("dense matching: %.2f s/query on %s, %d refused", seconds, matcher.device,
             len(failures))
    return report
