"""Hard-negative mining for the triplet loss: which shoes look most alike now, re-computed every
few hundred images so batches keep bringing confusable shoes together."""

from __future__ import annotations

import numpy as np


def nearest_models(features: np.ndarray, count: int) -> np.ndarray:
    """features [M, D] (one per shoe, unit norm) → [M, count] most similar other shoes."""
    count = min(count, len(features) - 1)
    similarity = features @ features.T
    np.fill_diagonal(similarity, -np.inf)
    return np.argsort(-similarity, axis=1, kind="stable")[:, :count]


def batch_models(rng: np.random.Generator, total: int, size: int,
                 neighbours: np.ndarray | None) -> np.ndarray:
    """`size` distinct shoes: a random seed shoe, its mined neighbours, then random others."""
    chosen = [int(rng.integers(total))]
    if neighbours is not None:
        chosen += [int(m) for m in neighbours[chosen[0]][:size - 1]]
    rest = np.setdiff1d(np.arange(total), chosen)
    chosen += rng.choice(rest, size=size - len(chosen), replace=False).tolist()
    return np.asarray(chosen, dtype=np.int64)
