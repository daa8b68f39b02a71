"""The input layout of a cell encoder: a print in channel 0 or a tread depth map in channel 1.

CriSp encodes prints and depth maps with one network, and the channel tells it which modality it
sees. The layout lives here, below the models, because CriSp's training, the evaluation layer,
the placement search and the re-index encoder all build the same input.
"""

from __future__ import annotations

import torch

IN_CHANNELS = 2
PRINT_CHANNEL = 0
DEPTH_CHANNEL = 1


def _as_batch(images: torch.Tensor, name: str) -> torch.Tensor:
    if not torch.is_floating_point(images):
        raise TypeError(f"{name} must be a float tensor in [0, 1], got {images.dtype} "
                        "(divide uint8 images by 255)")
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"{name} must be [B, 1, H, W] or [B, H, W], got {tuple(images.shape)}")
    return images


def encoder_input(prints: torch.Tensor | None = None,
                  depths: torch.Tensor | None = None) -> torch.Tensor:
    """Place prints in channel 0 or depth maps in channel 1 of a zero [B, 2, H, W] tensor.

    Exactly one of the two is given per call: CriSp encodes a print and a depth map with the same
    network, and the channel tells it which modality it sees. Images are float in [0, 1],
    [B, 1, H, W] (or [B, H, W]); an empty batch gives an empty [0, 2, H, W] tensor.
    """
    if (prints is None) == (depths is None):
        raise ValueError("encoder_input takes exactly one of prints= or depths=")
    images, channel, name = ((prints, PRINT_CHANNEL, "prints") if prints is not None
                             else (depths, DEPTH_CHANNEL, "depths"))
    assert images is not None
    images = _as_batch(images, name)
    batch, _, height, width = images.shape
    out = images.new_zeros((batch, IN_CHANNELS, height, width))
    out[:, channel] = images[:, 0]
    return out
