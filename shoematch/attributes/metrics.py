"""Attribute-model metrics: street → catalogue top-k retrieval accuracy (a shoe's score is its
best catalogue image, as in ranked-list de-duplication) and per-attribute accuracy."""

from __future__ import annotations

import math

import numpy as np


def top_k_accuracy(queries: np.ndarray, query_models: np.ndarray, gallery: np.ndarray,
                   gallery_models: np.ndarray, k: int = 20) -> float:
    """Fraction of queries whose shoe is among the `k` best-scoring distinct gallery shoes."""
    if len(queries) == 0:
        return math.nan
    shoes, owner = np.unique(gallery_models, return_inverse=True)
    similarity = queries @ gallery.T
    best = np.full((len(queries), len(shoes)), -np.inf, dtype=similarity.dtype)
    for s in range(len(shoes)):
        best[:, s] = similarity[:, owner == s].max(axis=1)
    top = np.argsort(-best, axis=1, kind="stable")[:, :k]
    return float(np.mean([query_models[q] in set(shoes[top[q]]) for q in range(len(queries))]))


def attribute_accuracy(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """Accuracy of the arg-max over the images whose value is known (target ≥ 0)."""
    known = targets >= 0
    if not known.any():
        return math.nan
    return float(np.mean(probabilities[known].argmax(axis=1) == targets[known]))


def majority_accuracy(train_targets: np.ndarray, targets: np.ndarray) -> float:
    """The accuracy of always answering the most frequent training value (a floor)."""
    known_train, known = train_targets[train_targets >= 0], targets[targets >= 0]
    if not len(known_train) or not len(known):
        return math.nan
    return float(np.mean(known == np.bincount(known_train).argmax()))
