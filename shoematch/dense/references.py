"""Reference prints of a dataset as one tensor at the matcher's scale (fine-tuning input)."""

from __future__ import annotations

import numpy as np
import torch

from shoematch.data.dataset import Dataset
from shoematch.data.images import decode_image
from shoematch.dense.matcher import require_scale, resample
from shoematch.errors import DatasetError


def reference_prints(dataset: Dataset, px_per_cm: float, rank: int = 0, world: int = 1
                     ) -> torch.Tensor:
    """[N, 1, H, W] in 0..1 (1 = ink) at `px_per_cm`: this worker's share (every world-th)."""
    scale = require_scale(dataset.manifest.params.get("px_per_cm"), dataset.uri)
    records = list(dataset.iter_records(["instance_id", "print"]))[rank::world]
    if len(records) < 2:
        raise DatasetError(f"{dataset.uri}: fine-tuning needs at least 2 references per worker, "
                           f"this worker has {len(records)}")
    prints = np.stack([decode_image(r["print"], r["instance_id"]) for r in records])
    images = torch.from_numpy(prints)[:, None].float() / 255.0
    return resample(images, px_per_cm / scale).clamp(0, 1)
