"""CriSp's training loss: supervised contrastive loss (Khosla et al. 2020, τ = 0.07) over masked
spatial features, and the random rectangular feature mask (one per batch).

Why pytorch_metric_learning's SupConLoss is used (checked against its 2.9 source):
for anchors i with positives P(i) and all other samples A(i) it computes
    L_i = -1/|P(i)| Σ_{p∈P(i)} log( exp(s_ip/τ) / Σ_{a∈A(i)} exp(s_ia/τ) )
— Khosla's L_out — with s = cosine similarity (CosineSimilarity L2-normalises the embeddings,
as Khosla's projections z are unit vectors). Differences that do not matter here:
  * the reduction averages over anchors with a non-zero loss, i.e. anchors that have a
    positive; CriSp batches (N/2 models × 2 instances) give every anchor one;
  * a batch with no positive pair or no negative pair gives a zero loss (no gradient);
  * no `temperature / base_temperature` factor (it is 1 in the reference code at τ = 0.07).
What the normalisation means for masked spatial features: each visible cell is unit length, so
the flattened masked vector has norm √(visible cells) and the cosine is
    score(q, d) / (|q|·|d|) = Σ_cells q_cell·d_cell / √(n_q · n_d),
the retrieval score scaled into [-1, 1]; with one mask for the whole batch n_q = n_d.
"""

from __future__ import annotations

import math

import torch
from pytorch_metric_learning.losses import SupConLoss

from shoematch.retrieval.scoring import normalize_cells


def masked_flat_features(features: torch.Tensor,
                         cell_mask: torch.Tensor | None = None) -> torch.Tensor:
    """[B, C, h, w] → [B, C·h·w]: cells L2-normalised, cells outside `cell_mask` zeroed."""
    cells = normalize_cells(features)
    if cell_mask is not None:
        if cell_mask.dim() == 2:
            cell_mask = cell_mask.expand(features.shape[0], *cell_mask.shape)
        if cell_mask.shape != (features.shape[0], *features.shape[2:]):
            raise ValueError(f"cell_mask {tuple(cell_mask.shape)} does not fit features "
                             f"{tuple(features.shape)}")
        cells = cells * cell_mask.unsqueeze(1).to(cells.dtype)
    return cells.flatten(1)


def crisp_contrastive_loss(features: torch.Tensor, labels: torch.Tensor,
                           cell_mask: torch.Tensor | None = None,
                           temperature: float = 0.07) -> torch.Tensor:
    """Supervised contrastive loss over masked spatial features (see the module docstring).

    `features` [B, C, h, w], `labels` [B] (samples sharing a label are positives), `cell_mask`
    bool [B, h, w] or [h, w] (None: every cell). Computed in float32 even under autocast, since
    logits reach 1/τ ≈ 14.
    """
    if labels.shape != (features.shape[0],):
        raise ValueError(f"labels {tuple(labels.shape)} must be one per sample "
                         f"({features.shape[0]})")
    flat = masked_flat_features(features, cell_mask).float()
    return SupConLoss(temperature=temperature)(flat, labels)


def random_rectangle_mask(grid: tuple[int, int], generator: torch.Generator,
                          min_frac: float = 0.3) -> torch.Tensor:
    """One random axis-aligned rectangle of feature cells: bool [h, w] (CPU).

    Each side is drawn uniformly between ceil(min_frac · side) and the full side, the position
    uniformly where it fits. Used once per batch and broadcast to every sample, so all samples
    keep the same cells and their masked features stay comparable (CriSp's module M).
    """
    if not 0 < min_frac <= 1:
        raise ValueError(f"min_frac must be in (0, 1], got {min_frac}")
    height, width = grid

    def draw(low: int, high: int) -> int:  # uniform integer in [low, high]
        return int(torch.randint(low, high + 1, (1,), generator=generator,
                                 device=generator.device).item())

    rect_h = draw(max(1, math.ceil(min_frac * height)), height)
    rect_w = draw(max(1, math.ceil(min_frac * width)), width)
    top, left = draw(0, height - rect_h), draw(0, width - rect_w)
    mask = torch.zeros((height, width), dtype=torch.bool)
    mask[top:top + rect_h, left:left + rect_w] = True
    return mask
