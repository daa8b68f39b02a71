"""From per-reference scores to per-model ranks and CMC, with ties counted against the method.

Why pessimistic: a matcher that gives the true model the same score as others (or NaN) has not
found it; counting ties in its favour would reward degenerate features (e.g. all-zero channels).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shoematch.retrieval.metrics import cmc


def best_per_model(scores: np.ndarray, instance_models: Sequence[str]
                   ) -> tuple[list[str], np.ndarray]:
    """Unique models (first-seen order) and each one's best instance score (NaN → -inf)."""
    clean = np.where(np.isnan(scores), -np.inf, scores)
    models = list(dict.fromkeys(instance_models))
    position = {model: i for i, model in enumerate(models)}
    best = np.full(len(models), -np.inf)
    np.maximum.at(best, [position[m] for m in instance_models], clean)
    return models, best


def pessimistic_rank(model_scores: np.ndarray, target: int) -> int:
    """1 + the number of other models scoring at least as high as the target."""
    value = model_scores[target]
    if not np.isfinite(value):
        return len(model_scores)
    return int((model_scores >= value).sum())


def first_target_rank(scores: np.ndarray, instance_models: Sequence[str],
                      targets: Sequence[str]) -> int | None:
    """Rank of the best-ranked target model (None when no target is in the gallery)."""
    models, best = best_per_model(scores, instance_models)
    index = {model: i for i, model in enumerate(models)}
    ranks = [pessimistic_rank(best, index[t]) for t in targets if t in index]
    return min(ranks) if ranks else None


def cmc_percent(ranks: Sequence[int | None], gallery_models: int) -> dict[str, float]:
    """CMC at 1/5/10/20 % of the gallery, hit@1 and hit@10, in percent."""
    return {key: 100.0 * value for key, value in cmc(list(ranks), gallery_models).items()}
