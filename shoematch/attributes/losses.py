"""Attribute-model losses: attribute cross-entropy, the domain-weighted triplet loss with hard
triplet selection, and the viewpoint-invariant loss (docs/training.md, "Auxiliary models").

Features are unit vectors; distance is 1 − cosine similarity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SHOP, STREET = 0, 1


def attribute_loss(logits: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]
                   ) -> torch.Tensor:
    """Mean over attributes of the cross-entropy; target -1 (value unknown) is ignored."""
    losses = []
    for name, scores in logits.items():
        target = targets[name]
        if (target >= 0).any():
            losses.append(F.cross_entropy(scores, target, ignore_index=-1))
        else:
            losses.append(scores.sum() * 0.0)  # keeps every head in the graph (DDP)
    return torch.stack(losses).mean()


def weighted_triplet_loss(features: torch.Tensor, labels: torch.Tensor, domains: torch.Tensor,
                          margin: float = 0.2, alpha: float = 1.0, beta: float = 2.0,
                          hard_fraction: float = 0.7) -> torch.Tensor:
    """Triplets (anchor, positive of the same shoe, negative of another shoe; positives and
    negatives are catalogue images): cross-domain ones (a street anchor) weigh `beta`,
    same-domain ones (a catalogue anchor, another view as positive) `alpha`. Of the triplets
    that violate the margin, the `hard_fraction` with the highest loss are kept."""
    distance = 1.0 - features @ features.T
    same = labels[:, None] == labels[None, :]
    shop = domains == SHOP
    not_self = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive = same & not_self & shop[None, :]
    negative = ~same & shop[None, :]
    # [anchor, positive, negative] hinge losses over every valid combination.
    loss = F.relu(margin + distance[:, :, None] - distance[:, None, :])
    valid = positive[:, :, None] & negative[:, None, :]
    weight = torch.where(domains == STREET, beta, alpha).to(features.dtype)[:, None, None]
    loss, weight = loss[valid], weight.expand_as(valid)[valid]
    active = loss > 0
    if not active.any():
        return features.sum() * 0.0
    loss, weight = loss[active], weight[active]
    keep = max(1, int(round(hard_fraction * len(loss))))
    top = torch.topk(loss, keep).indices
    return (loss[top] * weight[top]).sum() / weight[top].sum()


def viewpoint_loss(features: torch.Tensor, labels: torch.Tensor,
                   domains: torch.Tensor) -> torch.Tensor:
    """Mean squared distance of each shoe's catalogue features to their mean (pulls the views of
    one shoe together); shoes with one catalogue image contribute 0."""
    shop = domains == SHOP
    feats, ids = features[shop], labels[shop]
    _, inverse, counts = torch.unique(ids, return_inverse=True, return_counts=True)
    sums = torch.zeros(len(counts), features.shape[1], dtype=features.dtype,
                       device=features.device).index_add_(0, inverse, feats)
    centres = sums / counts[:, None].to(features.dtype)
    spread = ((feats - centres[inverse]) ** 2).sum(dim=1)
    return spread.mean() if len(spread) else features.sum() * 0.0
