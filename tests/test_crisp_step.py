"""The training step's masking switches: what each ablation setting actually changes."""

from __future__ import annotations

import torch

from shoematch.crisp.config import MaskingConfig
from shoematch.crisp.model import CrispEncoder
from shoematch.crisp.training import crisp_loss


def paired_batch(models: int = 3, height: int = 64, width: int = 128) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)

    def images() -> torch.Tensor:
        return torch.randint(0, 256, (models, 1, height, width), generator=generator,
                             dtype=torch.uint8)

    full = torch.full((models, 1, height, width), 255, dtype=torch.uint8)
    return {"print_a": images(), "print_b": images(), "depth_a": images(),
            "depth_b": images(), "mask_a": full, "mask_b": full,
            "label": torch.arange(models), "has_depth_a": torch.ones(models, dtype=torch.bool),
            "has_depth_b": torch.ones(models, dtype=torch.bool)}


def loss_with(masking: MaskingConfig, seed: int) -> float:
    torch.manual_seed(0)
    model = CrispEncoder(arch="resnet18", embed_dim=8).eval()
    with torch.no_grad():
        loss, images = crisp_loss(model, paired_batch(), masking,
                                  torch.Generator().manual_seed(seed))
    assert images == 12  # 3 models × 2 instances × (print + depth)
    return float(loss)


def test_rect_probability_zero_is_no_feature_masking() -> None:
    unmasked = loss_with(MaskingConfig(feature_masking=False), seed=1)
    assert loss_with(MaskingConfig(rect_probability=0.0), seed=1) == unmasked


def test_rectangle_changes_the_loss_and_is_reproducible() -> None:
    unmasked = loss_with(MaskingConfig(feature_masking=False), seed=1)
    masked = [loss_with(MaskingConfig(min_rect_fraction=0.3), seed=s) for s in range(4)]
    assert any(abs(value - unmasked) > 1e-6 for value in masked)
    assert loss_with(MaskingConfig(min_rect_fraction=0.3), seed=2) == masked[2]


def test_rect_probability_masks_only_some_batches() -> None:
    unmasked = loss_with(MaskingConfig(feature_masking=False), seed=0)
    half = [loss_with(MaskingConfig(rect_probability=0.5, min_rect_fraction=0.3), seed=s)
            for s in range(12)]
    same = sum(abs(value - unmasked) < 1e-6 for value in half)
    assert 0 < same < len(half)
