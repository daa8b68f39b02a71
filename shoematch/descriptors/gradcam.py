"""Grad-CAM (Selvaraju et al.) for one descriptor: which part of the print drove its score.

Hooks capture the last conv stage's activations and their gradient with respect to the chosen
descriptor's logit; channel weights are the spatially averaged gradients, the map is the ReLU of
the weighted activation sum, upsampled to the input and scaled to [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from shoematch.descriptors.model import DescriptorNet
from shoematch.models.bodies import last_stage


def gradcam(model: DescriptorNet, x: torch.Tensor, class_index: int) -> np.ndarray:
    """x [1, 3, H, W] → heat map [H, W] in [0, 1] for logit `class_index`."""
    captured: dict[str, torch.Tensor] = {}

    def keep_activation(_module, _inputs, output: torch.Tensor) -> None:
        captured["activation"] = output
        output.register_hook(lambda grad: captured.__setitem__("gradient", grad))

    handle = last_stage(model.body).register_forward_hook(keep_activation)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)  # gradients flow even with a frozen model
            logit = model(x)[0, class_index]
            model.zero_grad(set_to_none=True)
            logit.backward()
    finally:
        handle.remove()
        model.train(was_training)
    activation, gradient = captured["activation"].detach(), captured["gradient"].detach()
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    peak = float(cam.max())
    return (cam / peak).numpy() if peak > 0 else cam.numpy()


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """A grey uint8 image with `heat` ([0, 1], same size) blended on top as black→red→yellow."""
    grey = np.repeat(image.astype(np.float32)[..., None] / 255.0, 3, axis=-1)
    colour = np.stack([np.clip(2 * heat, 0, 1), np.clip(2 * heat - 1, 0, 1),
                       np.zeros_like(heat)], axis=-1)
    mixed = (1 - alpha * heat[..., None]) * grey + alpha * heat[..., None] * colour
    return (np.clip(mixed, 0, 1) * 255 + 0.5).astype(np.uint8)
