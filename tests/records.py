"""Tiny hand-made records for tests of the data layer (independent of the generator)."""

from __future__ import annotations

import numpy as np

from shoematch.data.images import encode_png
from shoematch.data.schema import Canvas

SMALL = Canvas(16, 32)


def reference(index: int, canvas: Canvas = SMALL, model: str | None = None) -> dict:
    rng = np.random.default_rng(index)
    grey = rng.integers(0, 256, canvas.shape, dtype=np.uint8)
    return {
        "instance_id": f"I{index:04d}",
        "model_id": model or f"M{index // 2:03d}",
        "pattern_id": f"P{index // 4:03d}",
        "depth": encode_png(grey),
        "print": encode_png((grey > 128).astype(np.uint8) * 255),
        "mask": encode_png(np.full(canvas.shape, 255, np.uint8)),
        "photo": encode_png(np.stack([grey] * 3, axis=-1)),
        "street_photo": None,
        "descriptors": ["D01", "D14"],
        "attributes": {"brand": "acme", "category": "running"},
        "source": "test",
        "split": "train",
    }


def query(index: int, canvas: Canvas = SMALL) -> dict:
    return {
        "query_id": f"Q{index:04d}",
        "print": encode_png(np.zeros(canvas.shape, np.uint8)),
        "mask": encode_png(np.full(canvas.shape, 255, np.uint8)),
        "targets": [f"M{index:03d}"],
        "category": "blood",
        "seen": True,
        "source": "test",
        "split": "val",
    }
