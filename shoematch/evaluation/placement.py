"""Placement search for probes whose position on the sole is unknown (FID-300 crops).

A probe is scored at several positions and scales on the canvas; for every reference the best
placement's score counts. Cost: P placements multiply the query encoding (P forward passes) and
the scan (P × R cell dot products) — P = len(scales) × len(shifts_x) × len(shifts_y).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as F

from shoematch.config import StrictModel
from shoematch.evaluation.encode import EncodedQueries, EncodedReferences, query_tensors, to_numpy
from shoematch.retrieval.inputs import encoder_input
from shoematch.retrieval.scoring import masked_query, query_cell_mask


class PlacementConfig(StrictModel):
    scales: tuple[float, ...] = (0.9, 1.0, 1.1)
    shifts_x: tuple[float, ...] = (-0.3, -0.15, 0.0, 0.15, 0.3)  # fraction of canvas width
    shifts_y: tuple[float, ...] = (0.0,)  # fraction of canvas height

    @property
    def count(self) -> int:
        return len(self.scales) * len(self.shifts_x) * len(self.shifts_y)


def place(images: torch.Tensor, config: PlacementConfig, mode: str) -> torch.Tensor:
    """[1,1,H,W] → [P,1,H,W]: the image scaled about the centre, then shifted."""
    thetas = []
    for scale, dx, dy in itertools.product(config.scales, config.shifts_x, config.shifts_y):
        # affine_grid maps output → input coordinates in [-1, 1]: invert scale and shift.
        thetas.append([[1 / scale, 0.0, -2 * dx / scale], [0.0, 1 / scale, -2 * dy / scale]])
    theta = torch.tensor(thetas, dtype=images.dtype, device=images.device)
    grid = F.affine_grid(theta, [len(thetas), *images.shape[1:]], align_corners=False)
    return F.grid_sample(images.expand(len(thetas), -1, -1, -1), grid, mode=mode,
                         padding_mode="zeros", align_corners=False)


@torch.no_grad()
def placement_scores(model: torch.nn.Module, records: list[dict], references: EncodedReferences,
                     device: torch.device, config: PlacementConfig) -> np.ndarray:
    """[Q, R] scores, each the maximum over the probe's placements."""
    model.eval()
    refs = to_numpy(references.features)
    rows = []
    for record in records:
        image, mask = query_tensors(record)
        prints = place(image.to(device), config, "bilinear")
        masks = place(mask.float().to(device), config, "nearest") > 0.5
        features = model(encoder_input(prints=prints))
        cells = query_cell_mask(masks, tuple(features.shape[-2:]))
        queries = masked_query(features.float(), cells).cpu()
        rows.append((to_numpy(queries) @ refs.T).max(axis=0))
    return np.stack(rows) if rows else np.zeros((0, refs.shape[0]), dtype=np.float32)


def placed_queries(records: list[dict]) -> EncodedQueries:
    """Query metadata for a report whose scores come from `placement_scores`."""
    return EncodedQueries(torch.empty(0), torch.empty(0, dtype=torch.bool),
                          [r["query_id"] for r in records], [list(r["targets"]) for r in records],
                          [r["category"] for r in records], [bool(r["seen"]) for r in records])
