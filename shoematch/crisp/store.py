"""Saving CriSp encoders as (weights, config) and loading them back from any MODEL_URI.

A saved encoder is a directory with `encoder.pt` (state_dict) and `encoder.json` (the
CrispEncoderConfig plus provenance), in the format of `shoematch.saved_model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from shoematch.crisp.model import CrispEncoder, CrispEncoderConfig
from shoematch.saved_model import read_saved_model, write_saved_model

WEIGHTS = "encoder.pt"
CONFIG = "encoder.json"


@dataclass
class LoadedEncoder:
    model: CrispEncoder
    config: CrispEncoderConfig
    info: dict[str, Any]
    uri: str


def save_encoder(directory: str, model: torch.nn.Module, config: CrispEncoderConfig,
                 info: dict[str, Any] | None = None) -> None:
    """Write weights and config into a local directory (created if needed)."""
    write_saved_model(directory, model, WEIGHTS, CONFIG,
                      {"config": config.model_dump(mode="json"), "info": info or {}})


def load_encoder(uri: str) -> LoadedEncoder:
    """Load an encoder from a directory, s3:// prefix, Ray checkpoint or MLflow model URI."""
    meta, state = read_saved_model(uri, WEIGHTS, CONFIG)
    config = CrispEncoderConfig.model_validate({**meta["config"], "pretrained": None})
    model = CrispEncoder(**config.model_dump())
    model.load_state_dict(state)
    return LoadedEncoder(model.eval(), config, meta.get("info", {}), uri)
