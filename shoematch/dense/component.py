"""What the index, the evaluation job and Serve share about dense reference maps: the config as
given on a command line, the data's physical scale, and the stored (float16) maps.

Why float16 here and not only in the index: the evaluation job rounds its reference maps the
same way, so `jobs.evaluate --matcher cells+dense` scores exactly what a served index holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shoematch.config import load_config
from shoematch.data.dataset import Dataset
from shoematch.dense.matcher import DenseConfig, DenseMatcher
from shoematch.errors import ConfigError, DatasetError

STORED_DTYPE = np.float16


def load_dense_config(items: Sequence[str] = ()) -> DenseConfig:
    """A DenseConfig from an optional YAML file (first item without '=') and key=value items."""
    path = None
    if items and "=" not in items[0]:
        path, items = items[0], items[1:]
    stray = [item for item in items if "=" not in item]
    if stray:
        raise ConfigError(f"dense config: {stray[0]!r} is neither the first (YAML) item nor "
                          "key=value")
    return load_config(DenseConfig, path, items)


def dataset_px_per_cm(dataset: Dataset) -> float:
    """The physical scale recorded in a dataset's manifest; refused when unknown."""
    value = dataset.manifest.params.get("px_per_cm")
    if not isinstance(value, int | float) or not np.isfinite(value) or value <= 0:
        raise DatasetError(f"{dataset.uri}: its manifest records no physical scale (params."
                           f"px_per_cm = {value!r}); dense matching compares prints at the same "
                           "physical size: re-ingest or regenerate the data")
    return float(value)


def reference_maps(matcher: DenseMatcher, prints: Sequence[np.ndarray],
                   px_per_cm: float) -> np.ndarray:
    """[n, C, h, w] float16 feature maps of references on one canvas (255 = ink)."""
    return matcher.gallery(prints, px_per_cm).maps.cpu().numpy().astype(STORED_DTYPE)
