"""Descriptor metrics (docs/scoring-and-metrics.md): PR-AUC per descriptor and averaged, F1-optimal
thresholds, and the paper's multi-label confusion matrix."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve

from shoematch.data.schema import DESCRIPTOR_CODES


def pr_auc(labels: np.ndarray, scores: np.ndarray,
           codes: tuple[str, ...] = DESCRIPTOR_CODES) -> dict[str, float]:
    """Area under the precision-recall curve (average precision) per descriptor, plus "mean"
    over the descriptors that have positives (others are NaN: undefined without positives)."""
    labels = np.asarray(labels, dtype=bool)
    per = {}
    for k, code in enumerate(codes):
        per[code] = (float(average_precision_score(labels[:, k], scores[:, k]))
                     if labels[:, k].any() else math.nan)
    defined = [v for v in per.values() if not math.isnan(v)]
    per["mean"] = float(np.mean(defined)) if defined else math.nan
    return per


def best_thresholds(labels: np.ndarray, scores: np.ndarray, default: float = 0.5) -> np.ndarray:
    """Per class, the score threshold with the highest F1 (`default` where a class has no
    positives)."""
    labels = np.asarray(labels, dtype=bool)
    out = np.full(labels.shape[1], default, dtype=np.float64)
    for k in range(labels.shape[1]):
        if not labels[:, k].any():
            continue
        precision, recall, thresholds = precision_recall_curve(labels[:, k], scores[:, k])
        f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
        out[k] = float(thresholds[int(np.argmax(f1))])
    return out


def confusion_matrix(labels: np.ndarray, scores: np.ndarray,
                     thresholds: np.ndarray | float = 0.5) -> np.ndarray:
    """The paper's multi-label confusion matrix, [K, K + 1] (rows: true descriptor).

    For every true label i of a sample, the false positives (labels not true, scored at or above
    their threshold) scored above i confuse i with them, 1/n each for n such labels. A true label
    that no false positive outranks counts on the diagonal when predicted (score ≥ threshold),
    else in the last column ("missed"). So row i sums to the number of samples labelled i.
    """
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    k = labels.shape[1]
    thresholds = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (k,))
    matrix = np.zeros((k, k + 1), dtype=np.float64)
    for truth, score in zip(labels, scores, strict=True):
        false_positive = ~truth & (score >= thresholds)
        for i in np.flatnonzero(truth):
            above = np.flatnonzero(false_positive & (score > score[i]))
            if above.size:
                matrix[i, above] += 1.0 / above.size
            elif score[i] >= thresholds[i]:
                matrix[i, i] += 1.0
            else:
                matrix[i, k] += 1.0
    return matrix
