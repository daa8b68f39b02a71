"""Fitting an index version's calibrator: held-out queries with known answers searched exactly
as Serve searches them (the index's encoder, the query's visible cells, the cell scan and its
gallery moments), their evidence, and whether the true model made the top 10.

Why on the index: the evidence depends on the encoder, the reference set and the scan — a
calibrator is valid for the version it was fitted on, so it is stored per version
(`shoematch.retrieval.confidence`). The reported reliability is cross-validated (each query's
probability from a fit on the other folds); the stored calibrator is then fitted on all of them,
only when the quality gate passes (enough queries on both sides, cross-validated ECE < 0.10).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shoematch.crisp.runtime import DEFAULT_RUNTIME, Runtime, prepare_encoder
from shoematch.crisp.store import load_encoder
from shoematch.data.dataset import Dataset
from shoematch.data.images import decode_image
from shoematch.errors import DatasetError
from shoematch.index.encoding import query_cells
from shoematch.index.reader import SearchIndex
from shoematch.index.search import SearchStats
from shoematch.retrieval.calibration import (
    TOP,
    TopTenCalibrator,
    cross_validated,
    expected_calibration_error,
    reliability,
)
from shoematch.retrieval.confidence import quality_gate, ranking_evidence, sample_shortfall

BATCH = 32


@dataclass
class CalibrationFit:
    """The calibrator fitted on every query, or None with `reason` when the quality gate
    (`shoematch.retrieval.confidence.quality_gate`) refuses it; ECE and reliability are the
    cross-validated ones (None / empty when there were too few queries to fit)."""

    calibrator: TopTenCalibrator | None
    reason: str | None
    queries: int
    hits: int
    ece: float | None
    reliability: list[dict]

    @property
    def hit_rate(self) -> float:
        return self.hits / self.queries if self.queries else 0.0


def query_evidence(index: SearchIndex, queries: Dataset, split: str | None,
                   runtime: Runtime = DEFAULT_RUNTIME) -> tuple[np.ndarray, np.ndarray]:
    """([n, 3] evidence, [n] hit@10) of every query of `split`, searched like Serve does (its
    query encoder's `runtime` included: int8 features shift scores slightly)."""
    model = prepare_encoder(load_encoder(index.manifest.model_uri).model, runtime)
    records = [r for r in queries.iter_records() if split is None or r["split"] == split]
    if not records:
        raise DatasetError(f"no queries of split {split!r} to calibrate on")
    features, hits = [], []
    for start in range(0, len(records), BATCH):
        chunk = records[start:start + BATCH]
        prints = np.stack([decode_image(r["print"], f"{r['query_id']} print") for r in chunk])
        masks = np.stack([decode_image(r["mask"], f"{r['query_id']} mask") > 127
                          for r in chunk])
        cells, _ = query_cells(model, prints, masks)
        stats = SearchStats()
        ranked = index.search(cells, TOP, None, stats)
        for b, record in enumerate(chunk):
            features.append(ranking_evidence([m.score for m in ranked[b]], stats.moments[b]))
            hits.append(bool(set(record["targets"]) & {m.model for m in ranked[b]}))
    return np.stack(features), np.asarray(hits)


def fit_calibration(features: np.ndarray, hits: np.ndarray, folds: int = 5,
                    threshold: float = 0.5) -> CalibrationFit:
    """Cross-validated reliability, then — when the gate lets it through — the calibrator
    fitted on every query."""
    count, positives = len(hits), int(np.sum(hits))
    short = sample_shortfall(count, positives)
    if short or count < 2 * folds:
        unfit = short or f"{count} queries cannot be cross-validated in {folds} folds"
        return CalibrationFit(None, unfit, count, positives, None, [])
    probabilities = cross_validated(features, hits, folds)
    ece = expected_calibration_error(probabilities, hits)
    reason = quality_gate(count, positives, ece)
    calibrator = None if reason else TopTenCalibrator.fit(features, hits, threshold)
    return CalibrationFit(calibrator, reason, count, positives, ece,
                          reliability(probabilities, hits))
