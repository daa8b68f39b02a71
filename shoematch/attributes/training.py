"""The attribute training loop, Ray-free (the Ray Train job runs it on each DDP worker; the
baseline benchmark runs it in-process), plus embedding and evaluation helpers.

A batch is `models_per_batch` shoes × (one street photo + `shop_views` catalogue photos); every
worker holds all training shoes and draws its own batches from (seed, rank, step), so a resumed
run draws what it would have.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import torch
from torch import nn

from shoematch.attributes.config import AttributeLossConfig, AttributeTrainConfig
from shoematch.attributes.data import ShoeData
from shoematch.attributes.losses import (
    SHOP,
    STREET,
    attribute_loss,
    viewpoint_loss,
    weighted_triplet_loss,
)
from shoematch.attributes.metrics import attribute_accuracy, top_k_accuracy
from shoematch.attributes.mining import batch_models, nearest_models
from shoematch.attributes.model import AttributeNet
from shoematch.errors import DatasetError
from shoematch.training.job import StepHook


def to_float(images: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(images).float() / 255.0


def sample_batch(data: ShoeData, rows: list[np.ndarray], config: AttributeTrainConfig,
                 rank: int, step: int, neighbours: np.ndarray | None) -> dict[str, torch.Tensor]:
    """Images, shoe labels, domains and attribute targets of one batch."""
    rng = np.random.default_rng([config.optim.seed, rank, step])
    shoes = batch_models(rng, len(data.models), config.optim.models_per_batch, neighbours)
    street_rows = np.flatnonzero(np.isin(data.street_model, shoes))
    images, labels, domains = [], [], []
    for shoe in shoes:
        views = rows[shoe]
        picked = rng.choice(views, size=config.optim.shop_views,
                            replace=len(views) < config.optim.shop_views)
        images += [data.shop[i] for i in picked]
        labels += [shoe] * len(picked)
        domains += [SHOP] * len(picked)
        own = street_rows[data.street_model[street_rows] == shoe]
        if len(own):
            images.append(data.street[rng.choice(own)])
            labels.append(shoe)
            domains.append(STREET)
    labels_array = np.asarray(labels)
    return {"images": to_float(np.stack(images)), "labels": torch.as_tensor(labels_array),
            "domains": torch.as_tensor(domains), "targets": torch.as_tensor(
                data.targets[labels_array])}


def total_loss(model: nn.Module, batch: dict[str, torch.Tensor], names: list[str],
               weights: AttributeLossConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the three losses (every term stays in the graph, weight 0 or not)."""
    features, logits = model(batch["images"])
    targets = {name: batch["targets"][:, a] for a, name in enumerate(names)}
    parts = {
        "attribute": attribute_loss(logits, targets),
        "triplet": weighted_triplet_loss(features, batch["labels"], batch["domains"],
                                         weights.margin, weights.alpha, weights.beta,
                                         weights.hard_fraction),
        "viewpoint": viewpoint_loss(features, batch["labels"], batch["domains"]),
    }
    loss = (weights.attribute * parts["attribute"] + weights.triplet * parts["triplet"]
            + weights.viewpoint * parts["viewpoint"])
    return loss, {key: float(value.detach()) for key, value in parts.items()}


@torch.no_grad()
def embed(model: AttributeNet, images: np.ndarray, batch_size: int = 32
          ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(features [n, D], {attribute: probabilities [n, values]}) in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    features: list[torch.Tensor] = []
    probs: dict[str, list[torch.Tensor]] = {name: [] for name in model.heads}
    for start in range(0, len(images), batch_size):
        feats, logits = model(to_float(images[start:start + batch_size]).to(device))
        features.append(feats.cpu())
        for name, scores in logits.items():
            probs[name].append(torch.softmax(scores, dim=1).cpu())
    model.train(was_training)
    if not features:
        return np.zeros((0, 0), np.float32), {name: np.zeros((0, 0)) for name in probs}
    return (torch.cat(features).numpy(),
            {name: torch.cat(p).numpy() for name, p in probs.items()})


def mine(model: AttributeNet, data: ShoeData, rows: list[np.ndarray],
         neighbours: int) -> np.ndarray:
    """Each shoe's most similar other shoes, by the feature of its first catalogue image."""
    features, _ = embed(model, data.shop[[r[0] for r in rows]])
    return nearest_models(features, neighbours)


def _bare(model: nn.Module) -> AttributeNet:
    """The AttributeNet itself, out of the DDP wrapper Ray Train puts around it."""
    return cast(AttributeNet, getattr(model, "module", model))


def train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, data: ShoeData,
                config: AttributeTrainConfig, device: torch.device, start: int = 0,
                rank: int = 0, on_step: StepHook | None = None) -> None:
    """Steps `start`..`optim.steps`; `on_step(step, losses, images)` after each."""
    rows = data.shop_rows()
    bare = [model for model, r in zip(data.models, rows, strict=True) if len(r) == 0]
    if bare:
        raise DatasetError(f"training shoes without a catalogue photo: {', '.join(bare[:5])}"
                           f"{' …' if len(bare) > 5 else ''}")
    names = list(_bare(model).heads)
    neighbours = None
    model.train()
    for step in range(start, config.optim.steps):
        due = step >= config.mining.every and (neighbours is None
                                               or step % config.mining.every == 0)
        if config.mining.neighbours and due:  # also right after a resume
            neighbours = mine(_bare(model), data, rows,
                              config.mining.neighbours)
        batch = {k: v.to(device) for k, v in
                 sample_batch(data, rows, config, rank, step, neighbours).items()}
        loss, parts = total_loss(model, batch, names, config.loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if on_step is not None:
            on_step(step + 1, {"loss": float(loss.detach()), **parts}, len(batch["images"]))


def evaluate(model: AttributeNet, queries: ShoeData, gallery: ShoeData,
             vocabulary: dict[str, list[str]], k: int) -> dict:
    """Street → catalogue top-k accuracy and per-attribute accuracy on the street photos."""
    query_features, probs = embed(model, queries.street)
    gallery_features, _ = embed(model, gallery.shop)
    query_ids = np.asarray(queries.models)[queries.street_model]
    gallery_ids = np.asarray(gallery.models)[gallery.shop_model]
    targets = queries.targets[queries.street_model]
    accuracy = {name: attribute_accuracy(probs[name], targets[:, a])
                for a, name in enumerate(vocabulary)}
    return {"queries": len(query_ids), "gallery_models": len(set(gallery_ids.tolist())),
            f"top{k}": top_k_accuracy(query_features, query_ids, gallery_features, gallery_ids,
                                      k),
            "attributes": accuracy}
