"""Scores an examiner can read, for the cell index: each candidate's score against this query's
own score distribution over the gallery, and a calibrated P(true model in the top 10).

Why: a raw cell score means little across queries (a large clean print scores higher against
everything than a small smudged one). The scan already estimates every reference's score, so its
mean and spread over the gallery the query was compared against (after filters) cost one pass
over numbers in memory; shards add their moments and the gateway standardises. The evidence an
examiner reads — how far the best model stands out, and how far the 10th does — goes through
the logistic `TopTenCalibrator` fitted (by `jobs.calibrate`) on held-out queries whose answers
are known, through this same code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from shoematch.errors import QueryError
from shoematch.retrieval.calibration import TOP, TopTenCalibrator
from shoematch.storage import Store

CALIBRATION_DIR = "calibration"


@dataclass
class GalleryMoments:
    """Count, sum and sum of squares of one query's scores over the references it was compared
    with; shards' moments add up."""

    count: int = 0
    total: float = 0.0
    squares: float = 0.0

    def add(self, scores: np.ndarray) -> None:
        values = np.asarray(scores, dtype=np.float64)
        total = float(values.sum())
        if not np.isfinite(total):  # copy out the finite ones only when there are others
            values = values[np.isfinite(values)]
            total = float(values.sum())
        self.count += int(values.size)
        self.total += total
        # Not `values @ values`: numpy's BLAS would wake its own thread pool, which then spins
        # beside the search kernels' threads (measured: the next scan ran at half speed).
        self.squares += float(np.square(values).sum())

    def merged(self, other: GalleryMoments) -> GalleryMoments:
        return GalleryMoments(self.count + other.count, self.total + other.total,
                              self.squares + other.squares)

    def mean_std(self) -> tuple[float, float]:
        if self.count < 2:
            raise QueryError("fewer than two references were compared: no score distribution")
        mean = self.total / self.count
        variance = max(self.squares / self.count - mean * mean, 0.0)
        return mean, max(float(np.sqrt(variance)), 1e-12)

    def z(self, scores: np.ndarray | list[float]) -> np.ndarray:
        mean, std = self.mean_std()
        return (np.asarray(scores, dtype=np.float64) - mean) / std


def ranking_evidence(ranked_scores: list[float], moments: GalleryMoments) -> np.ndarray:
    """[3] features (z of the 1st, gap from the 1st to the 10th, z of the 10th) of a ranking's
    descending model scores, standardised over the gallery: the calibrator's input."""
    if not ranked_scores:
        raise QueryError("no model was ranked: nothing to calibrate")
    top = moments.z(ranked_scores[:TOP])
    tenth = top[-1]
    return np.array([top[0], top[0] - tenth, tenth])


def calibration_path(version: str) -> str:
    return f"{CALIBRATION_DIR}/{version}.json"


def save_calibrator(store: Store, version: str, calibrator: TopTenCalibrator,
                    provenance: dict) -> str:
    """Beside the index versions (a published version is never rewritten): one file per version
    it was fitted for."""
    path = calibration_path(version)
    body = {**calibrator.to_dict(), "index_version": version, **provenance}
    store.write_bytes(path, json.dumps(body, indent=2).encode())
    return path


def load_calibrator(store: Store, version: str) -> TopTenCalibrator | None:
    """The version's calibrator, or None when it was never calibrated."""
    path = calibration_path(version)
    if not store.exists(path):
        return None
    return TopTenCalibrator.from_dict(json.loads(store.read_bytes(path)))
