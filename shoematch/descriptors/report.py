"""Turning a trained descriptor model into what a run records: thresholds picked on the
validation patterns, PR-AUC and confusion on the evaluation split, tables, Grad-CAM examples."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from shoematch.data.schema import DESCRIPTOR_CODES
from shoematch.descriptors.data import DescriptorData
from shoematch.descriptors.gradcam import gradcam, overlay
from shoematch.descriptors.metrics import best_thresholds
from shoematch.descriptors.model import DescriptorNet
from shoematch.descriptors.training import evaluate, predict_scores, to_float

DEFAULT_THRESHOLD = 0.5


def fit_thresholds(model: DescriptorNet, val: DescriptorData) -> np.ndarray:
    """F1-optimal threshold per descriptor on `val` (0.5 where val has no positives)."""
    if len(val) == 0:
        return np.full(len(DESCRIPTOR_CODES), DEFAULT_THRESHOLD)
    return best_thresholds(val.labels, predict_scores(model, val.inputs), DEFAULT_THRESHOLD)


def score_model(model: DescriptorNet, val: DescriptorData, test: DescriptorData) -> dict:
    """Thresholds from val, then PR-AUC and the confusion matrix on test."""
    thresholds = fit_thresholds(model, val)
    return {"thresholds": thresholds, **evaluate(model, test, thresholds)}


def _cell(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def pr_auc_table(rows: Mapping[str, Mapping[str, float]]) -> str:
    """Markdown: one row per setting, mean PR-AUC then one column per descriptor."""
    header = ["setting", "mean", *DESCRIPTOR_CODES]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, values in rows.items():
        lines.append("| " + " | ".join([name, *(_cell(values[key]) for key in header[1:])])
                     + " |")
    return "\n".join(lines)


def confusion_csv(matrix: np.ndarray) -> str:
    """The confusion matrix as CSV: rows true descriptors, columns predicted + "missed"."""
    lines = [",".join(["true\\predicted", *DESCRIPTOR_CODES, "missed"])]
    for code, row in zip(DESCRIPTOR_CODES, matrix, strict=True):
        lines.append(",".join([code, *(f"{v:.3f}" for v in row)]))
    return "\n".join(lines) + "\n"


def gradcam_examples(model: DescriptorNet, data: DescriptorData, scores: np.ndarray,
                     count: int) -> list[tuple[str, np.ndarray]]:
    """Grad-CAM overlays for the `count` most frequent descriptors of `data`, each on the
    record where that descriptor is present and scored highest: (file name, RGB uint8)."""
    support = data.labels.sum(axis=0)
    out = []
    for k in np.argsort(-support, kind="stable")[:count]:
        if support[k] == 0:
            break
        positives = np.flatnonzero(data.labels[:, k])
        row = int(positives[np.argmax(scores[positives, k])])
        heat = gradcam(model, to_float(data.inputs[row:row + 1]), int(k))
        name = f"gradcam_{DESCRIPTOR_CODES[k]}_{data.ids[row]}_{scores[row, k]:.2f}.png"
        out.append((name, overlay(data.inputs[row, 0], heat)))
    return out
