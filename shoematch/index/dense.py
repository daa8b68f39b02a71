"""The optional dense component of an index: what it holds (manifest) and scoring re-rank
candidates against the maps a process has loaded."""

from __future__ import annotations

import numpy as np

from shoematch.data.schema import Canvas
from shoematch.dense.component import STORED_DTYPE, reference_maps
from shoematch.dense.matcher import DenseConfig, DenseMatcher
from shoematch.index.layout import DenseComponent


def dense_component(config: DenseConfig, canvas: Canvas, px_per_cm: float) -> DenseComponent:
    """Grid, channels, stride and bytes per reference of the maps of one blank reference."""
    matcher = DenseMatcher(config)
    maps = reference_maps(matcher, [np.zeros(canvas.shape, np.uint8)], px_per_cm)
    channels, height, width = maps.shape[1:]
    return DenseComponent(config=config.model_dump(mode="json"), px_per_cm=config.px_per_cm,
                          grid=(height, width), channels=channels, stride=matcher.stride,
                          dtype=np.dtype(STORED_DTYPE).name,
                          bytes_per_reference=int(maps[0].nbytes))
