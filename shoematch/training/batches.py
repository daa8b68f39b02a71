"""Picking pairs, decoding and augmenting class rows into training tensors (the Ray Data map
stage).

`AugmentPairs` is a plain callable class: Ray Data runs it on an actor pool (one GPU each when
the cluster has GPUs), tests call it directly.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from shoematch.augment.config import AugConfig
from shoematch.augment.crime_scene import augment_prints
from shoematch.data.images import decode_image
from shoematch.training.pairs import IMAGE_FIELDS, label_hash, pick_pair


def decode_stack(values: np.ndarray, name: str, shape: tuple[int, int] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Decode a column of PNG bytes to uint8 [n,H,W]; missing images (None) become zeros.

    Returns the stack and a bool [n] of which images were present.
    """
    present = np.array([v is not None for v in values])
    decoded = [decode_image(v, f"{name}[{i}]") if v is not None else None
               for i, v in enumerate(values)]
    if shape is None:
        shape = next(d.shape for d in decoded if d is not None)
    out = np.zeros((len(values), *shape), dtype=np.uint8)
    for i, image in enumerate(decoded):
        if image is not None:
            out[i] = image
    return out, present


class AugmentPairs:
    """Pick two instances per class row, decode them, augment both prints."""

    def __init__(self, aug: AugConfig | dict, seed: int | None = None,
                 device: str | None = None) -> None:
        self.aug = aug if isinstance(aug, AugConfig) else AugConfig.model_validate(aug)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.generator = torch.Generator(device=self.device)
        # Distinct streams per actor unless a seed is fixed (tests, reproducible grids).
        seed = seed if seed is not None else int.from_bytes(os.urandom(7), "little")
        self.generator.manual_seed(seed)
        self.rng = np.random.default_rng(seed)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pairs = [pick_pair(len(images), self.rng) for images in batch["print"]]
        out: dict[str, np.ndarray] = {"label": label_hash(batch["label"])}
        for side, pick in (("a", 0), ("b", 1)):
            chosen = {field: np.array([batch[field][row][pair[pick]]
                                       for row, pair in enumerate(pairs)], dtype=object)
                      for field in IMAGE_FIELDS}
            prints, _ = decode_stack(chosen["print"], f"print_{side}")
            shape = prints.shape[1:]
            depths, has_depth = decode_stack(chosen["depth"], f"depth_{side}", shape)
            masks, _ = decode_stack(chosen["mask"], f"mask_{side}", shape)
            clean = torch.from_numpy(prints).to(self.device).unsqueeze(1).float() / 255.0
            augmented = augment_prints(clean, self.aug, self.generator)
            out[f"print_{side}"] = (augmented * 255).round().to(torch.uint8).cpu().numpy()
            out[f"depth_{side}"] = depths[:, None]
            out[f"mask_{side}"] = masks[:, None]
            out[f"has_depth_{side}"] = has_depth
        return out
