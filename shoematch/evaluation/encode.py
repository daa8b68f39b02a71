"""Encoding datasets with a CriSp encoder: references (never masked) and queries (masked)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from shoematch.data.dataset import Dataset
from shoematch.data.images import decode_image
from shoematch.retrieval.inputs import encoder_input
from shoematch.retrieval.scoring import masked_query, normalize_cells, query_cell_mask


@dataclass
class EncodedReferences:
    features: torch.Tensor  # [R, C, h, w], cells L2-normalised
    instance_ids: list[str]
    model_ids: list[str]
    pattern_ids: list[str]


@dataclass
class EncodedQueries:
    features: torch.Tensor  # [Q, C, h, w], normalised, cells outside the visible mask zeroed
    cell_masks: torch.Tensor  # [Q, h, w] bool
    query_ids: list[str]
    targets: list[list[str]]
    categories: list[str]
    seen: list[bool]


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def reference_input(record: dict) -> torch.Tensor:
    """Depth map in channel 1 when the reference has one; else its print in channel 0."""
    if record.get("depth") is not None:
        depth = decode_image(record["depth"], f"{record['instance_id']} depth")
        return encoder_input(depths=torch.from_numpy(depth)[None, None].float() / 255.0)
    image = decode_image(record["print"], f"{record['instance_id']} print")
    return encoder_input(prints=torch.from_numpy(image)[None, None].float() / 255.0)


@torch.no_grad()
def encode_references(model: torch.nn.Module, dataset: Dataset, device: torch.device,
                      batch_size: int = 32) -> EncodedReferences:
    model.eval()
    records = list(dataset.iter_records(["instance_id", "model_id", "pattern_id", "depth",
                                         "print"]))
    features = []
    for chunk in _chunks(records, batch_size):
        inputs = torch.cat([reference_input(r) for r in chunk]).to(device)
        features.append(normalize_cells(model(inputs)).float().cpu())
    return EncodedReferences(
        torch.cat(features), [r["instance_id"] for r in records],
        [r["model_id"] for r in records], [r["pattern_id"] for r in records],
    )


def query_tensors(record: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(print [1,1,H,W] in [0,1], visible mask [1,1,H,W] bool) of a query record."""
    name = record["query_id"]
    image = torch.from_numpy(decode_image(record["print"], f"{name} print"))[None, None]
    mask = torch.from_numpy(decode_image(record["mask"], f"{name} mask"))[None, None] > 127
    return image.float() / 255.0, mask


@torch.no_grad()
def encode_queries(model: torch.nn.Module, dataset: Dataset, device: torch.device,
                   split: str | None = None, batch_size: int = 32,
                   mask_queries: bool = True) -> EncodedQueries:
    model.eval()
    records = [r for r in dataset.iter_records() if split is None or r["split"] == split]
    features, cells = [], []
    for chunk in _chunks(records, batch_size):
        prints, masks = zip(*(query_tensors(r) for r in chunk), strict=True)
        feats = model(encoder_input(prints=torch.cat(prints)).to(device)).float()
        grid = tuple(feats.shape[-2:])
        if mask_queries and grid != (1, 1):
            cell_mask = query_cell_mask(torch.cat(masks).to(device), grid)
        else:
            cell_mask = torch.ones((feats.shape[0], *grid), dtype=torch.bool, device=device)
        features.append(masked_query(feats, cell_mask).cpu())
        cells.append(cell_mask.cpu())
    if not records:
        return EncodedQueries(torch.empty(0), torch.empty(0, dtype=torch.bool), [], [], [], [])
    return EncodedQueries(
        torch.cat(features), torch.cat(cells), [r["query_id"] for r in records],
        [list(r["targets"]) for r in records], [r["category"] for r in records],
        [bool(r["seen"]) for r in records],
    )


def to_numpy(features: torch.Tensor) -> np.ndarray:
    return features.reshape(features.shape[0], -1).numpy()
