"""Model inputs for the descriptor classifier: one grey print resized three times.

Each input channel is the print resized with a different resampling filter (Nearest, Bilinear,
Hamming — Pillow has Hamming, kornia does not), in a configurable order such as "BHN". The
aspect ratio is kept: the print is scaled to fit the input size and centred on a zero (no ink)
background, so a 384×192 canvas becomes 288×144 inside a 352×144 input.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from shoematch.data.images import fitted_size
from shoematch.errors import ConfigError

FILTERS: dict[str, Image.Resampling] = {
    "N": Image.Resampling.NEAREST,
    "B": Image.Resampling.BILINEAR,
    "H": Image.Resampling.HAMMING,
}


class ChannelsError(ConfigError, ValueError):
    """A bad channel composition (a ValueError, so config validation names the key)."""


def check_channels(order: str) -> str:
    """A channel composition is three letters out of N, B, H (e.g. "BHN", "NNB")."""
    if len(order) != 3 or any(letter not in FILTERS for letter in order):
        raise ChannelsError(f"channel composition {order!r}: expected 3 letters out of "
                          f"{''.join(FILTERS)} (e.g. 'BHN')")
    return order


def resampled_channels(image: np.ndarray, size: tuple[int, int], order: str) -> np.ndarray:
    """uint8 [H, W] print → uint8 [3, size_h, size_w], one resampling filter per channel."""
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 H×W print, got {image.dtype} {image.shape}")
    height, width = fitted_size(image.shape, size)
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    source = Image.fromarray(image)
    out = np.zeros((3, *size), dtype=np.uint8)
    for channel, letter in enumerate(check_channels(order)):
        resized = source.resize((width, height), FILTERS[letter])
        out[channel, top:top + height, left:left + width] = np.asarray(resized)
    return out
