"""Saving the descriptor classifier as (weights, JSON config) and predicting with it.

A saved model is a directory with `descriptor.pt` (state_dict, loaded with weights_only=True)
and `descriptor.json` (network config, descriptor codes, per-descriptor thresholds,
provenance). `load_descriptor_model` takes a directory, an s3:// prefix, a Ray checkpoint or an
MLflow URI (`models:/shoe-descriptors@current`), like `shoematch.crisp.store.load_encoder`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from shoematch.data.schema import DESCRIPTOR_CODES
from shoematch.descriptors.channels import resampled_channels
from shoematch.descriptors.gradcam import gradcam, overlay
from shoematch.descriptors.model import DescriptorNet, DescriptorNetConfig
from shoematch.descriptors.training import predict_scores, to_float
from shoematch.errors import ImageError
from shoematch.labels import check_descriptor_codes
from shoematch.saved_model import read_saved_model, write_saved_model

WEIGHTS = "descriptor.pt"
CONFIG = "descriptor.json"


def save_descriptor_model(directory: str, model: torch.nn.Module, config: DescriptorNetConfig,
                          thresholds: Sequence[float],
                          info: dict[str, Any] | None = None) -> None:
    write_saved_model(directory, model, WEIGHTS, CONFIG, {
        "config": config.model_dump(mode="json") | {"pretrained": None},
        "codes": list(DESCRIPTOR_CODES), "thresholds": [float(t) for t in thresholds],
        "info": info or {}})


def grey(image: np.ndarray, name: str) -> np.ndarray:
    """A uint8 H×W print (RGB is converted to grey)."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ImageError(f"{name}: expected a uint8 H×W (or H×W×3) image, got "
                         f"{image.dtype} {image.shape}")
    return image if image.ndim == 2 else np.asarray(Image.fromarray(image).convert("L"))


class DescriptorPredictor:
    """Scores the 17 NFRC descriptors of prints; `thresholds` turn scores into labels."""

    def __init__(self, model: DescriptorNet, config: DescriptorNetConfig,
                 thresholds: dict[str, float], info: dict[str, Any], uri: str) -> None:
        self.model, self.config, self.info, self.uri = model.eval(), config, info, uri
        self.codes: tuple[str, ...] = DESCRIPTOR_CODES
        self.thresholds = thresholds

    def inputs(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """The model's uint8 [n, 3, h, w] inputs (three resampled channels per print)."""
        if not len(images):
            return np.zeros((0, 3, *self.config.input_size), np.uint8)
        return np.stack([resampled_channels(grey(image, f"image #{i}"), self.config.input_size,
                                            self.config.channels)
                         for i, image in enumerate(images)])

    def predict(self, images: Sequence[np.ndarray],
                codes: Iterable[str] | None = None) -> list[dict[str, float]]:
        """Per image, descriptor code → score in [0, 1] (all 17, or only `codes`)."""
        wanted = check_descriptor_codes(codes) if codes is not None else list(self.codes)
        scores = predict_scores(self.model, self.inputs(images))
        columns = [self.codes.index(code) for code in wanted]
        return [{code: float(row[k]) for code, k in zip(wanted, columns, strict=True)}
                for row in scores]

    def labels(self, images: Sequence[np.ndarray]) -> list[list[str]]:
        """Per image, the codes scored at or above their threshold."""
        return [[code for code, score in scores.items() if score >= self.thresholds[code]]
                for scores in self.predict(images)]

    def explain(self, image: np.ndarray, code: str) -> np.ndarray:
        """A Grad-CAM overlay (uint8 RGB, the model's input size) for descriptor `code`."""
        check_descriptor_codes([code])
        x = self.inputs([image])
        heat = gradcam(self.model, to_float(x), self.codes.index(code))
        return overlay(x[0, 0], heat)


def load_descriptor_model(uri: str) -> DescriptorPredictor:
    """Load from a directory, s3:// prefix, Ray checkpoint or MLflow model URI."""
    meta, state = read_saved_model(uri, WEIGHTS, CONFIG)
    config = DescriptorNetConfig.model_validate(meta["config"])
    model = DescriptorNet(**config.model_dump())
    model.load_state_dict(state)
    thresholds = dict(zip(meta["codes"], meta["thresholds"], strict=True))
    return DescriptorPredictor(model, config, thresholds, meta.get("info", {}), uri)
