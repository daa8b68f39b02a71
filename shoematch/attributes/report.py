"""Scoring an attribute model the way runs record it (street → catalogue top-k, per-attribute
accuracy with the majority-value floor), and a single-process training for baselines."""

from __future__ import annotations

import torch

from shoematch.attributes.config import AttributeTrainConfig
from shoematch.attributes.data import ShoeData, load_shoes, select_models, shoe_targets
from shoematch.attributes.metrics import majority_accuracy
from shoematch.attributes.model import AttributeNet
from shoematch.attributes.predict import build_model
from shoematch.attributes.training import evaluate, train_steps
from shoematch.data.dataset import Dataset, open_dataset


def training_shoes(refdb: Dataset, config: AttributeTrainConfig,
                   vocabulary: dict[str, list[str]]) -> ShoeData:
    models = select_models(refdb, config.data.train_split, config.data.max_models)
    return load_shoes(refdb, models, vocabulary, config.model.input_size)


def score_model(model: AttributeNet, config: AttributeTrainConfig,
                vocabulary: dict[str, list[str]]) -> dict:
    """Queries: street photos of the eval split; gallery: catalogue photos of every shoe (or of
    the eval split, `data.gallery`)."""
    refdb = open_dataset(config.data.refdb)
    size = config.model.input_size
    query_models = select_models(refdb, config.data.eval_split, config.data.max_models)
    queries = load_shoes(refdb, query_models, vocabulary, size)
    gallery_models = (query_models if config.data.gallery == "eval"
                      else list(dict.fromkeys(query_models + select_models(refdb, None, None))))
    gallery = load_shoes(refdb, gallery_models, vocabulary, size, street=False)
    report = evaluate(model, queries, gallery, vocabulary, config.schedule.k)
    train = select_models(refdb, config.data.train_split, config.data.max_models)
    train_targets = shoe_targets(refdb, train, vocabulary)
    targets = queries.targets[queries.street_model]
    report["majority"] = {name: majority_accuracy(train_targets[:, a], targets[:, a])
                          for a, name in enumerate(vocabulary)}
    return report


def train_local(config: AttributeTrainConfig, vocabulary: dict[str, list[str]],
                threads: int = 1) -> AttributeNet:
    """Train in this process (no Ray, no DDP): the baselines and the benchmark use it."""
    torch.set_num_threads(threads)
    torch.manual_seed(config.optim.seed)
    model = build_model(config.model, vocabulary)
    if config.optim.steps:
        data = training_shoes(open_dataset(config.data.refdb), config, vocabulary)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.optim.lr,
                                      weight_decay=config.optim.weight_decay)
        train_steps(model, optimizer, data, config, torch.device("cpu"))
    return model
