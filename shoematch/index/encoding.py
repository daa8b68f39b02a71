"""Encoder outputs in the index's cell layout: [B, S, C], S = h·w cells in row-major order."""

from __future__ import annotations

import numpy as np
import torch

from shoematch.retrieval.inputs import encoder_input
from shoematch.retrieval.scoring import masked_query, normalize_cells, query_cell_mask

INK_THRESHOLD = 32  # a print pixel above this is ink: the default visible region


def to_cells(features: torch.Tensor) -> torch.Tensor:
    """[B, C, h, w] → [B, h·w, C]."""
    return features.flatten(2).transpose(1, 2).contiguous()


@torch.no_grad()
def reference_cells(model: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Per-cell-normalised reference cells [B, S, C] (float32, on the inputs' device)."""
    return to_cells(normalize_cells(model(inputs).float()))


def default_mask(prints: np.ndarray) -> np.ndarray:
    """Without an explicit mask the visible region is where the print has ink."""
    return prints > INK_THRESHOLD


@torch.no_grad()
def query_cells(model: torch.nn.Module, prints: np.ndarray, masks: np.ndarray,
                device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Masked query cells [B, S, C] and visible cells [B, h, w] from uint8 prints [B, H, W]
    (255 = ink) and bool visible masks [B, H, W]."""
    images = torch.from_numpy(np.ascontiguousarray(prints)).float().div(255.0)[:, None]
    features = model(encoder_input(prints=images).to(device)).float()
    grid = tuple(features.shape[-2:])
    cells = query_cell_mask(torch.from_numpy(np.ascontiguousarray(masks))[:, None].to(device),
                            grid)
    return to_cells(masked_query(features, cells)).cpu(), cells.cpu()
