"""The label-model deployment: NFRC descriptor scores for a print, attribute values and
retrieval features for a sole photo. Models come from the index manifest (the ones its
re-index used) unless the settings name others."""

from __future__ import annotations

import asyncio

import numpy as np
import torch
from ray import serve


@serve.deployment(max_ongoing_requests=16)
class LabelModels:
    def __init__(self, threads: int = 1) -> None:
        torch.set_num_threads(threads)
        self.descriptor_models: dict[str, object] = {}
        self.attribute_models: dict[str, object] = {}

    def _descriptors(self, uri: str):
        if uri not in self.descriptor_models:
            from shoematch.descriptors.predict import load_descriptor_model

            self.descriptor_models = {uri: load_descriptor_model(uri)}
        return self.descriptor_models[uri]

    def _attributes(self, uri: str):
        if uri not in self.attribute_models:
            from shoematch.attributes.predict import load_attribute_model

            self.attribute_models = {uri: load_attribute_model(uri)}
        return self.attribute_models[uri]

    async def descriptors(self, uri: str, image: np.ndarray) -> dict:
        model = await asyncio.to_thread(self._descriptors, uri)
        scores = (await asyncio.to_thread(model.predict, [image]))[0]
        return {"model_uri": uri, "scores": {c: round(float(s), 4) for c, s in scores.items()},
                "labels": [c for c, s in scores.items() if s >= model.thresholds[c]],
                "thresholds": {c: round(float(t), 4) for c, t in model.thresholds.items()}}

    async def attributes(self, uri: str, photo: np.ndarray) -> dict:
        model = await asyncio.to_thread(self._attributes, uri)
        values = (await asyncio.to_thread(model.predict, [photo]))[0]
        return {"model_uri": uri, "attributes": {
            name: {"value": value, "score": round(float(score), 4)}
            for name, (value, score) in values.items()}}

    async def photo_features(self, uri: str, photo: np.ndarray) -> np.ndarray:
        model = await asyncio.to_thread(self._attributes, uri)
        return (await asyncio.to_thread(model.embed, [photo]))[0]
