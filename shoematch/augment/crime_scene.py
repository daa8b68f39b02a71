"""Crime-scene simulation of clean shoeprints (docs/data-flow.md, "Augmentation"): occlusion,
then erasure, then noise.

Each operation is split as kornia splits its augmentations: `sample_*` draws every random
parameter of a batch, `apply_*` only computes. Draws are therefore inspectable and replayable
(`augment_prints(..., return_params=True)`, `apply_augmentation`), and they say which ink the
augmentation hid (`AugParams.visible`). Every step is a batched tensor op on the input's device
with per-sample parameters from one `torch.Generator`: no host syncs (no .item(), no numpy, no
data-dependent branching), so the same code runs in a CPU data pipeline or on the training GPU.
Per-sample on/off choices are drawn as masks and applied with `torch.where`, which keeps the
random stream, and therefore the output, a function of (seed, input shape, config) only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, overload

import torch
from torch import Tensor

from shoematch.augment.config import AugConfig
from shoematch.augment.draws import per_sample
from shoematch.augment.erasure import ErasureParams, apply_erasure, sample_erasure
from shoematch.augment.noise import NoiseParams, apply_noise, sample_noise
from shoematch.augment.occlusion import OcclusionParams, apply_occlusion, sample_occlusion


@dataclass
class AugParams:
    """One batch's draws; an operation switched off in the config has None."""

    occlusion: OcclusionParams | None
    erasure: ErasureParams | None
    noise: NoiseParams | None

    def visible(self, shape: torch.Size, device: torch.device) -> Tensor:
        """bool [B, 1, H, W]: pixels whose ink survives occlusion and erasure (at least half of
        it), so query masking in training counts only what the augmented print still shows."""
        kept = torch.ones(shape, device=device)
        if self.occlusion is not None:
            kept = kept * (1 - self.occlusion.cover)
        if self.erasure is not None:
            kept = kept * (1 - per_sample(self.erasure.strength) * self.erasure.region)
        return kept >= 0.5


def _check(prints: Tensor, generator: torch.Generator) -> None:
    if prints.ndim != 4 or prints.shape[1] != 1:
        raise ValueError(f"prints must be [B, 1, H, W], got {tuple(prints.shape)}")
    if not prints.is_floating_point():
        raise TypeError(f"prints must be floating point in [0, 1], got {prints.dtype}")
    if prints.device.type != "meta" and generator.device.type != prints.device.type:
        raise ValueError(f"generator is on {generator.device} but prints are on {prints.device}: "
                         "create it with torch.Generator(device=prints.device)")


def sample_augmentation(shape: torch.Size, cfg: AugConfig, generator: torch.Generator,
                        device: torch.device) -> AugParams:
    """Every draw of one batch of prints of `shape` [B, 1, H, W], in the order they apply."""
    return AugParams(
        sample_occlusion(shape, cfg, generator, device) if cfg.occlusion else None,
        sample_erasure(shape, cfg, generator, device) if cfg.erasure else None,
        sample_noise(shape, cfg, generator, device) if cfg.noise else None,
    )


def apply_augmentation(prints: Tensor, params: AugParams, cfg: AugConfig) -> Tensor:
    """Apply drawn parameters to prints [B, 1, H, W] in [0, 1]; returns the input dtype."""
    out = prints.float()
    if params.occlusion is not None:
        out = apply_occlusion(out, params.occlusion, cfg)
    if params.erasure is not None:
        out = apply_erasure(out, params.erasure)
    if params.noise is not None:
        out = apply_noise(out, params.noise, cfg)
    return out.clamp(0, 1).to(prints.dtype)


@overload
def augment_prints(prints: Tensor, cfg: AugConfig, generator: torch.Generator,
                   return_params: Literal[False] = False) -> Tensor: ...
@overload
def augment_prints(prints: Tensor, cfg: AugConfig, generator: torch.Generator,
                   return_params: Literal[True]) -> tuple[Tensor, AugParams]: ...
@torch.no_grad()
def augment_prints(prints: Tensor, cfg: AugConfig, generator: torch.Generator,
                   return_params: bool = False) -> Tensor | tuple[Tensor, AugParams]:
    """Turn clean prints [B, 1, H, W] in [0, 1] (1 = ink) into crime-scene-like ones: occlusion,
    then erasure, then noise, each switchable in `cfg`. Computes in float32 on the prints'
    device and returns the input dtype, clamped to [0, 1] (and the draws with `return_params`).
    Deterministic for a given generator state, input shape and config (CPU and CUDA generators
    give different streams)."""
    _check(prints, generator)
    params = sample_augmentation(prints.shape, cfg, generator, prints.device)
    out = apply_augmentation(prints, params, cfg)
    return (out, params) if return_params else out
