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


# The quality gate: a calibrator is published only when the held-out queries it was fitted on
# can tell (enough of them, enough on each side of the top 10) and its cross-validated
# probabilities held up. Below this a number shown as a probability would not be one (the demo
# once fitted 18 queries, cross-validated ECE 0.53, predicted 0.0–0.2 → observed 0.80).
MIN_QUERIES, MIN_HITS, MIN_MISSES, MAX_ECE = 50, 10, 10, 0.10
GATE = (f"a calibrator needs ≥ {MIN_QUERIES} held-out queries with ≥ {MIN_HITS} hits and "
        f"≥ {MIN_MISSES} misses, and a cross-validated ECE below {MAX_ECE:.2f}")


def sample_shortfall(queries: int, hits: int) -> str | None:
    """Why `queries` held-out queries (`hits` of them in the top 10) are too few to fit on."""
    misses = queries - hits
    if queries >= MIN_QUERIES and hits >= MIN_HITS and misses >= MIN_MISSES:
        return None
    return f"fitted on {queries} queries ({hits} hits, {misses} misses): {GATE}"


def quality_gate(queries: int, hits: int, ece: float | None) -> str | None:
    """None when a calibrator with this evidence may be published, else the reason it may not."""
    short = sample_shortfall(queries, hits)
    if short:
        return short
    if ece is None or not ece < MAX_ECE:
        shown = "unknown" if ece is None else f"{ece:.3f}"
        return f"cross-validated expected calibration error {shown} ≥ {MAX_ECE:.2f}: {GATE}"
    return None


@dataclass(frozen=True)
class Calibration:
    """An index version's calibrator, or `reason` why it has none (then `p_top10` is null)."""

    calibrator: TopTenCalibrator | None
    reason: str | None


def save_calibration(store: Store, version: str, calibrator: TopTenCalibrator | None,
                     provenance: dict) -> Calibration:
    """Beside the index versions (a published version is never rewritten): one file per version
    it was fitted for, recording "uncalibrated" with the reason when the gate refuses it.
    `provenance` must hold `fitted_on`, `hits` and `ece_cv` (None when no fit was made)."""
    reason = (quality_gate(provenance["fitted_on"], provenance["hits"], provenance["ece_cv"])
              if calibrator is not None else
              sample_shortfall(provenance["fitted_on"], provenance["hits"]) or
              "no calibrator was fitted")
    body = {"index_version": version, **provenance,
            "status": "uncalibrated" if reason else "calibrated", "reason": reason,
            **(calibrator.to_dict() if calibrator is not None and not reason else {})}
    store.write_bytes(calibration_path(version), json.dumps(body, indent=2).encode())
    return Calibration(None if reason else calibrator, reason)


def load_calibration(store: Store, version: str) -> Calibration:
    """The version's calibration as recorded; the gate is applied again, so a file written
    before it (or by hand) with too little evidence is not served as a probability."""
    path = calibration_path(version)
    if not store.exists(path):
        return Calibration(None, f"index version {version} was never calibrated "
                                 "(python -m jobs.calibrate)")
    body = json.loads(store.read_bytes(path))
    if body.get("status") == "uncalibrated":
        return Calibration(None, str(body.get("reason")))
    if not {"fitted_on", "hits", "ece_cv"} <= body.keys():
        return Calibration(None, f"index version {version}'s calibrator records no fit "
                                 f"evidence (fitted before the quality gate): {GATE}")
    reason = quality_gate(int(body["fitted_on"]), int(body["hits"]), body["ece_cv"])
    return Calibration(None if reason else TopTenCalibrator.from_dict(body), reason)
