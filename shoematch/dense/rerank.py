"""Re-ranking a cell index's top-N unique models by dense (MCNCC) score.

Why one module: `jobs.evaluate --matcher cells+dense` and Serve's `rerank` must give the same
ranking for the same query, so both call these functions — the choice of candidates (each
model's best cell-stage instance), the dense score over the probe's variants, and the order
(dense score descending, ties and unscorable candidates in cell order, the rest of the list
after them in cell order).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch

from shoematch.dense.mcncc import ReferenceSpectra, mcncc_scores

T = TypeVar("T")
Variant = tuple[np.ndarray, np.ndarray]  # probe features [C, h, w] float32, visible [h, w] bool


def best_instances(scores: np.ndarray, instance_models: Sequence[str], n: int
                   ) -> list[tuple[str, int]]:
    """The first `n` unique models by descending instance score and each one's best instance
    row (ties: lower row), as the index's search returns them."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    seen: set[str] = set()
    out: list[tuple[str, int]] = []
    for row in order:
        model = instance_models[row]
        if model not in seen:
            seen.add(model)
            out.append((model, int(row)))
            if len(out) >= n:
                break
    return out


def variant_scores(variants: Sequence[Variant | tuple[torch.Tensor, torch.Tensor]],
                   references: ReferenceSpectra, min_overlap: float,
                   channel_weights: torch.Tensor | None = None) -> np.ndarray:
    """[m] best MCNCC score of each reference over the probe's variants; NaN (a flat channel
    everywhere) becomes -inf so it never ranks first. `channel_weights`: a fine-tuned matcher's."""
    if len(references) == 0:
        return np.zeros(0, dtype=np.float32)
    device = references.maps.device
    best: torch.Tensor | None = None
    for features, visible in variants:
        value = mcncc_scores(torch.as_tensor(features, device=device).float(),
                             torch.as_tensor(visible, device=device), references, min_overlap,
                             channel_weights=channel_weights)
        assert isinstance(value, torch.Tensor)
        best = value if best is None else torch.maximum(best, value)
    assert best is not None, "a probe has at least one variant"
    # neginf too: nan_to_num would otherwise turn "no valid overlap" into a finite score.
    return best.nan_to_num(nan=float("-inf"), neginf=float("-inf")).cpu().numpy()


def rerank(ranked: Sequence[T], dense: Sequence[float] | np.ndarray
           ) -> list[tuple[T, float | None]]:
    """`ranked` (cell order) with its first len(dense) items re-ordered by `dense` descending
    (stable: ties and -inf keep cell order), then the rest unchanged; each with its dense
    score (None past the re-ranked head)."""
    head = len(dense)
    if head > len(ranked):
        raise ValueError(f"{head} dense scores for {len(ranked)} ranked items")
    values = np.asarray(dense, dtype=np.float64)
    values = np.where(np.isnan(values), -np.inf, values)
    order = np.argsort(-values, kind="stable")
    top = [(ranked[i], float(values[i])) for i in order]
    return top + [(item, None) for item in ranked[head:]]
