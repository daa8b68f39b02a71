"""Randomly initialised (seeded) label models saved as model directories, for serving tests."""

from __future__ import annotations

from shoematch.data.schema import DESCRIPTOR_CODES
from shoematch.descriptors.model import DescriptorNet, DescriptorNetConfig
from shoematch.descriptors.predict import save_descriptor_model


def random_descriptor_model(path: str) -> str:
    """A ResNet-18 descriptor net (seed 0, every threshold 0.5) saved at `path`."""
    import torch

    torch.manual_seed(0)
    config = DescriptorNetConfig(arch="resnet18")
    save_descriptor_model(path, DescriptorNet(**config.model_dump()).eval(), config,
                          [0.5] * len(DESCRIPTOR_CODES))
    return path
