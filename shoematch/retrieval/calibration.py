"""Scores an examiner can read: each candidate's score against this query's own score
distribution over the gallery, and a calibrated probability that the true model is in the top 10.

Why: raw MCNCC scores are not comparable across probes (a large clean probe scores higher against
everything than a small smudged one). Standardising against the query's own gallery scores makes
"how far above the crowd" the evidence; a logistic model maps that evidence to P(hit@10), fitted
on queries whose answer is known and never on the queries it is scored on (cross-validation
folds). Below `threshold` the answer is "no confident match". The dense matcher and the cell
index (`retrieval.confidence`) both calibrate through it, so it lives in the retrieval base.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shoematch.errors import QueryError

TOP = 10
FEATURES = ("z_top1", "z_gap_1_10", "z_top10")


def z_scores(scores: np.ndarray) -> np.ndarray:
    """Scores standardised over the finite part of the gallery (-inf stays -inf)."""
    finite = np.isfinite(scores)
    if finite.sum() < 2:
        raise QueryError("fewer than two references could be scored: no score distribution")
    mean, std = scores[finite].mean(), scores[finite].std()
    out = np.full(scores.shape, -np.inf)
    out[finite] = (scores[finite] - mean) / max(std, 1e-12)
    return out


def evidence(model_scores: np.ndarray) -> np.ndarray:
    """[3] features of one query from its per-model scores: how far its best model stands out
    (z of the top 1), the gap between the 1st and the 10th, and the z of the 10th."""
    top = np.sort(z_scores(model_scores)[np.isfinite(model_scores)])[::-1]
    tenth = top[min(TOP, len(top)) - 1]
    return np.array([top[0], top[0] - tenth, tenth])


@dataclass
class TopTenCalibrator:
    """Logistic P(target among the top 10 | evidence)."""

    coef: list[float]
    intercept: float
    threshold: float = 0.5

    @classmethod
    def fit(cls, features: np.ndarray, hits: np.ndarray, threshold: float = 0.5
            ) -> TopTenCalibrator:
        from sklearn.linear_model import LogisticRegression

        if len(set(hits.tolist())) < 2:
            raise QueryError("calibration needs queries both inside and outside the top 10")
        model = LogisticRegression(C=1.0).fit(features, hits.astype(int))
        return cls([float(c) for c in model.coef_[0]], float(model.intercept_[0]), threshold)

    def probability(self, features: np.ndarray) -> np.ndarray:
        logits = np.atleast_2d(features) @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-logits))

    def to_dict(self) -> dict:
        return {"features": list(FEATURES), "coef": self.coef, "intercept": self.intercept,
                "threshold": self.threshold}

    @classmethod
    def from_dict(cls, body: dict) -> TopTenCalibrator:
        if tuple(body.get("features", ())) != FEATURES:
            raise QueryError(f"calibrator features {body.get('features')} are not {FEATURES}")
        return cls(list(body["coef"]), float(body["intercept"]), float(body["threshold"]))


def probe_folds(count: int, folds: int, seed: int = 0) -> list[np.ndarray]:
    """Disjoint folds covering `count` queries, in a seeded random order."""
    if count < folds:
        raise QueryError(f"{count} queries cannot be split into {folds} folds")
    order = np.random.default_rng(seed).permutation(count)
    return [np.sort(fold) for fold in np.array_split(order, folds)]


def cross_validated(features: np.ndarray, hits: np.ndarray, folds: int = 5, seed: int = 0
                    ) -> np.ndarray:
    """Each query's probability from a calibrator fitted on the other folds only."""
    out = np.empty(len(hits))
    for fold in probe_folds(len(hits), folds, seed):
        train = np.setdiff1d(np.arange(len(hits)), fold)
        out[fold] = TopTenCalibrator.fit(features[train], hits[train]).probability(features[fold])
    return out


def reliability(probabilities: np.ndarray, hits: np.ndarray, bins: int = 5) -> list[dict]:
    """Rows of (predicted range, queries, mean predicted, observed share of hits)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (probabilities >= low) & ((probabilities < high) | (high == 1.0))
        if inside.any():
            rows.append({"range": (float(low), float(high)), "queries": int(inside.sum()),
                         "predicted": float(probabilities[inside].mean()),
                         "observed": float(hits[inside].mean())})
    return rows


def expected_calibration_error(probabilities: np.ndarray, hits: np.ndarray, bins: int = 5
                               ) -> float:
    """Σ over bins of (share of queries) × |mean predicted − observed|."""
    rows = reliability(probabilities, hits, bins)
    total = sum(row["queries"] for row in rows)
    return sum(row["queries"] / total * abs(row["predicted"] - row["observed"]) for row in rows)
