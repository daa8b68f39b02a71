"""Saving the attribute model as (weights, JSON config) and predicting with it.

A saved model is a directory with `attributes.pt` (state_dict, loaded with weights_only=True)
and `attributes.json` (network config, attribute vocabulary, provenance).
`load_attribute_model` takes a directory, an s3:// prefix, a Ray checkpoint or an MLflow URI
(`models:/shoe-attributes@current`), like `shoematch.crisp.store.load_encoder`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from shoematch.attributes.data import photo_input
from shoematch.attributes.model import AttributeNet, AttributeNetConfig
from shoematch.attributes.training import embed
from shoematch.errors import ImageError
from shoematch.labels import check_attribute_filters, check_attribute_names
from shoematch.saved_model import read_saved_model, write_saved_model

WEIGHTS = "attributes.pt"
CONFIG = "attributes.json"


def save_attribute_model(directory: str, model: torch.nn.Module, config: AttributeNetConfig,
                         vocabulary: dict[str, list[str]],
                         info: dict[str, Any] | None = None) -> None:
    write_saved_model(directory, model, WEIGHTS, CONFIG, {
        "config": config.model_dump(mode="json") | {"pretrained": None},
        "vocabulary": vocabulary, "info": info or {}})


def build_model(config: AttributeNetConfig, vocabulary: dict[str, list[str]]) -> AttributeNet:
    return AttributeNet(vocabulary, **config.model_dump())


class AttributePredictor:
    """Attribute values of sole photos, and features for street → catalogue photo search."""

    def __init__(self, model: AttributeNet, config: AttributeNetConfig,
                 vocabulary: dict[str, list[str]], info: dict[str, Any], uri: str) -> None:
        self.model, self.config, self.info, self.uri = model.eval(), config, info, uri
        self.vocabulary = vocabulary

    def inputs(self, photos: Sequence[np.ndarray]) -> np.ndarray:
        for i, photo in enumerate(photos):
            if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
                raise ImageError(f"photo #{i}: expected a uint8 H×W×3 image, got "
                                 f"{photo.dtype} {photo.shape}")
        if not len(photos):
            return np.zeros((0, 3, *self.config.input_size), np.uint8)
        return np.stack([photo_input(photo, self.config.input_size) for photo in photos])

    def predict(self, photos: Sequence[np.ndarray], names: Iterable[str] | None = None
                ) -> list[dict[str, tuple[str, float]]]:
        """Per photo, attribute name → (most likely value, its probability); all attributes or
        only `names`."""
        wanted = (check_attribute_names(names, self.vocabulary) if names is not None
                  else list(self.vocabulary))
        _, probs = embed(self.model, self.inputs(photos))
        out = []
        for i in range(len(photos)):
            row = {}
            for name in wanted:
                best = int(np.argmax(probs[name][i]))
                row[name] = (self.vocabulary[name][best], float(probs[name][i, best]))
            out.append(row)
        return out

    def embed(self, photos: Sequence[np.ndarray]) -> np.ndarray:
        """L2-normalised retrieval features [n, D] (cosine similarity = dot product)."""
        features, _ = embed(self.model, self.inputs(photos))
        return features.astype(np.float32)

    def check_filters(self, filters: Mapping[str, str]) -> dict[str, str]:
        """Attribute filters if every name (and value) is one this model knows."""
        return check_attribute_filters(filters, self.vocabulary)


def load_attribute_model(uri: str) -> AttributePredictor:
    """Load from a directory, s3:// prefix, Ray checkpoint or MLflow model URI."""
    meta, state = read_saved_model(uri, WEIGHTS, CONFIG)
    config = AttributeNetConfig.model_validate(meta["config"])
    model = build_model(config, meta["vocabulary"])
    model.load_state_dict(state)
    return AttributePredictor(model, config, meta["vocabulary"], meta.get("info", {}), uri)
