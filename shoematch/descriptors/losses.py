"""Multi-label losses for the descriptor classifier: descriptors are imbalanced (plain or text
soles are common, targets rare), so plain BCE under-predicts the rare ones."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MAX_POS_WEIGHT = 20.0


def positive_weights(labels: np.ndarray, cap: float = MAX_POS_WEIGHT) -> np.ndarray:
    """Per-class weight of positives, negatives/positives in the training labels [n, K],
    capped (a class with no positives counts as having one; it has no positive terms anyway)."""
    labels = np.asarray(labels, dtype=bool)
    positives = labels.sum(axis=0).astype(np.float64)
    negatives = len(labels) - positives
    return np.minimum(negatives / np.maximum(positives, 1.0), cap).clip(min=1.0).astype(np.float32)


def weighted_bce(logits: torch.Tensor, targets: torch.Tensor,
                 pos_weight: torch.Tensor) -> torch.Tensor:
    """Class-weighted binary cross-entropy: positives of class k count `pos_weight[k]` times."""
    return F.binary_cross_entropy_with_logits(logits, targets.float(), pos_weight=pos_weight)


def soft_f1(logits: torch.Tensor, targets: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """1 − macro soft-F1: F1 per class from sigmoid probabilities over the batch (counts made
    differentiable), averaged over classes."""
    probs = torch.sigmoid(logits)
    targets = targets.float()
    tp = (probs * targets).sum(dim=0)
    fp = (probs * (1 - targets)).sum(dim=0)
    fn = ((1 - probs) * targets).sum(dim=0)
    f1 = 2 * tp / (2 * tp + fp + fn + eps)
    return 1 - f1.mean()


def descriptor_loss(kind: str, logits: torch.Tensor, targets: torch.Tensor,
                    pos_weight: torch.Tensor) -> torch.Tensor:
    if kind == "bce":
        return weighted_bce(logits, targets, pos_weight)
    if kind == "soft_f1":
        return soft_f1(logits, targets)
    raise ValueError(f"unknown descriptor loss {kind!r}; expected 'bce' or 'soft_f1'")
