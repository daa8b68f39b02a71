"""Dense matching of crime-scene prints: pretrained mid-level feature maps compared by MCNCC at
every translation (see `mcncc`), the probe tried in a few variants (rotation, scale, polarity),
the best variant counting.

Why: real crime-scene prints are partial, at an unknown position on the sole and full of
clutter. A cell index at stride 32 on a fixed placement cannot align them; correlating stride-8
ImageNet features over all translations can (FID-300: from 3 % to above LoG16's 61 % top-1 %).

Images are uint8 with 255 = ink (the record convention), at a known physical scale: both sides
are resampled to the matcher's `px_per_cm` before features are taken, so a probe photographed at
another resolution is compared at the same physical size. An image of unknown scale is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from shoematch.config import StrictModel
from shoematch.dense.mcncc import ReferenceSpectra
from shoematch.dense.rerank import variant_scores
from shoematch.errors import QueryError
from shoematch.models.efficientnet_lite import EfficientNetLite, efficientnet_lite, grey_to_input
from shoematch.models.resnet import PretrainedWeightsNotFound, WeightsMismatchError

Backbone = Literal["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "pixels"]
PIXEL_STRIDE = 8


class PixelFeatures(torch.nn.Module):
    """Grey levels averaged over stride×stride cells: the no-learning, no-ImageNet control."""

    def __init__(self, stride: int = PIXEL_STRIDE) -> None:
        super().__init__()
        self.stride, self.out_channels = stride, 1

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(images / 255.0, self.stride, ceil_mode=True)


class PretrainedFeatures(torch.nn.Module):
    """An EfficientNet-Lite body on grey prints (the input scaling it was trained with)."""

    def __init__(self, body: EfficientNetLite) -> None:
        super().__init__()
        self.body = body
        self.stride, self.out_channels = body.stride, body.out_channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(grey_to_input(images))


def feature_net(config: DenseConfig) -> PixelFeatures | PretrainedFeatures:
    """[B, 1, H, W] grey 0..255 (255 = ink) → [B, C, H/stride, W/stride] feature maps."""
    if config.backbone == "pixels":
        return PixelFeatures()
    body = efficientnet_lite(config.backbone, config.block, pretrained=config.pretrained)
    if config.weights:
        body.load_state_dict(load_finetuned(config.weights)["body"], strict=True)
    return PretrainedFeatures(body)


def load_finetuned(path: str) -> dict[str, Any]:
    """A fine-tuned matcher file: {"body": state_dict, "channel_weights": [C]}."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise PretrainedWeightsNotFound(f"dense matcher weights {path}: no such file") from exc
    if not isinstance(state, dict) or set(state) != {"body", "channel_weights"}:
        raise WeightsMismatchError(f"{path}: not a fine-tuned dense matcher file "
                                   "(expected keys body, channel_weights)")
    return state


class DenseConfig(StrictModel):
    """How the dense matcher computes features and which probe variants it tries."""

    # Default: the deepest stride-16 block (80 channels) of Lite1 at 20 px/cm, i.e. 0.8 cm
    # cells like stride 8 at 10 px/cm but deeper features (FID-300 dev probes: 80 % top-1 %
    # against 68 % for Lite1 block 6 at 10 px/cm; README, "Dense matching").
    backbone: Backbone = "efficientnet_lite1"
    block: int = Field(10, ge=0, description="feature map after this block (Lite1 10: stride "
                                             "16, 80 channels; Lite1 6 / Lite0 4: stride 8, 40)")
    pretrained: bool = Field(True, description="ImageNet weights (False: random, the control)")
    weights: str | None = Field(None, description="fine-tuned body state_dict file")
    px_per_cm: float = Field(20.0, gt=0, description="matching resolution (FID-300 is 20)")
    min_overlap: float = Field(0.5, gt=0, le=1,
                               description="least overlap, share of the smaller visible area")
    rotations: tuple[float, ...] = Field((0.0,), description="probe rotations, degrees")
    scales: tuple[float, ...] = Field((1.0,), description="probe scale factors")
    invert: tuple[bool, ...] = Field((False,), description="probe polarities tried")
    visible_share: float = Field(0.25, gt=0, le=1,
                                 description="a cell is visible when this share of it is")
    probe_grid: tuple[int, int] = Field(
        (24, 48), description="probe feature grids are padded with invisible cells to this "
                              "size, so every probe reuses one cached set of reference spectra "
                              "(a larger probe is scored at its own size: slower, same result)")

    @property
    def variants(self) -> int:
        return len(self.rotations) * len(self.scales) * len(self.invert)


def require_scale(px_per_cm: float | None, what: str) -> float:
    """The scale, or a clear refusal: matching across unknown scales compares wrong sizes."""
    if px_per_cm is None or not np.isfinite(px_per_cm) or px_per_cm <= 0:
        raise QueryError(f"{what} has no known physical scale (px/cm): dense matching compares "
                         "prints at the same physical size; give the scale")
    return float(px_per_cm)


def resample(image: torch.Tensor, factor: float, mode: str = "bilinear") -> torch.Tensor:
    """[B, 1, H, W] scaled by `factor` (antialiased when shrinking)."""
    height, width = image.shape[-2:]
    size = (max(1, round(height * factor)), max(1, round(width * factor)))
    if size == (height, width):
        return image
    if mode == "nearest":
        return F.interpolate(image, size=size, mode="nearest")
    return F.interpolate(image, size=size, mode="bilinear", antialias=factor < 1,
                         align_corners=False)


def rotate(image: torch.Tensor, degrees: float, fill: float = 0.0) -> torch.Tensor:
    """[B, 1, H, W] rotated about its centre onto a canvas large enough to hold all of it."""
    if degrees == 0:
        return image
    height, width = image.shape[-2:]
    radians = np.deg2rad(degrees)
    cos, sin = abs(np.cos(radians)), abs(np.sin(radians))
    out_h = int(np.ceil(height * cos + width * sin))
    out_w = int(np.ceil(width * cos + height * sin))
    c, s = float(np.cos(radians)), float(np.sin(radians))
    # affine_grid maps output → input in normalised coordinates of each image.
    theta = torch.tensor([[c * out_w / width, -s * out_h / width, 0.0],
                          [s * out_w / height, c * out_h / height, 0.0]],
                         dtype=image.dtype, device=image.device)
    grid = F.affine_grid(theta.expand(image.shape[0], -1, -1),
                         [image.shape[0], 1, out_h, out_w], align_corners=False)
    shifted = image - fill
    out = F.grid_sample(shifted, grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return out + fill


def crop_to_mask(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bounding box of the visible region (a probe placed on a canvas, cut back out)."""
    if not mask.any():
        raise QueryError("mask is empty: nothing of the print is marked visible")
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    return image[box], mask[box]


def inked_box(prints: Sequence[np.ndarray]) -> tuple[slice, slice]:
    """The canvas box holding every reference's ink: the empty canvas margin would only add
    translations that overlap nothing (cost, no information)."""
    inked = np.zeros(prints[0].shape, dtype=bool)
    for image in prints:
        inked |= image > 0
    if not inked.any():
        raise QueryError("every reference print is blank")
    rows, cols = np.flatnonzero(inked.any(axis=1)), np.flatnonzero(inked.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


@dataclass
class DenseGallery:
    """Reference feature maps on one grid, their spectra cache and their row order."""

    spectra: ReferenceSpectra
    px_per_cm: float

    @property
    def maps(self) -> torch.Tensor:
        return self.spectra.maps

    def __len__(self) -> int:
        return len(self.spectra)


class DenseMatcher:
    """Feature extraction and scoring for one `DenseConfig` on one device."""

    def __init__(self, config: DenseConfig, device: torch.device | str = "cpu",
                 batch_size: int = 16) -> None:
        self.config = config
        self.device = torch.device(device)
        self.batch_size = batch_size
        net = feature_net(config)
        self.net = net.eval().to(self.device)
        self.channel_weights = (load_finetuned(config.weights)["channel_weights"].to(self.device)
                                if config.weights else None)
        self.stride = net.stride
        self.channels = net.out_channels

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 1, H, W] 0..255 (255 = ink) at the matching scale → [B, C, H/8, W/8] maps."""
        if min(images.shape[-2:]) < self.stride:
            raise QueryError(f"print of {images.shape[-1]}x{images.shape[-2]} px at "
                             f"{self.config.px_per_cm:g} px/cm is smaller than the feature "
                             f"stride ({self.stride} px): nothing to match")
        parts = [self.net(chunk.to(self.device))
                 for chunk in images.split(self.batch_size)]
        return torch.cat(parts).float()

    def gallery(self, prints: Sequence[np.ndarray], px_per_cm: float | None,
                crop: bool = False) -> DenseGallery:
        """Feature maps of references that share one canvas (uint8, 255 = ink).

        `crop`: to the box holding every reference's ink — faster for one whole gallery, but
        the grid then depends on the set, so stored per-batch maps (the index) never crop."""
        scale = require_scale(px_per_cm, "the reference set")
        if not prints:
            raise QueryError("the reference set is empty")
        shapes = {p.shape for p in prints}
        if len(shapes) != 1:
            raise QueryError(f"references must share one canvas for dense matching, got "
                             f"{sorted(shapes)[:3]}")
        factor = self.config.px_per_cm / scale
        box = inked_box(prints) if crop else (slice(None), slice(None))
        maps = []
        for start in range(0, len(prints), self.batch_size):
            chunk = prints[start:start + self.batch_size]
            batch = torch.from_numpy(np.stack([image[box] for image in chunk]))
            maps.append(self.features(resample(batch[:, None].float(), factor)).cpu())
        return DenseGallery(ReferenceSpectra(torch.cat(maps).to(self.device)),
                            self.config.px_per_cm)

    def probe_variants(self, image: np.ndarray, mask: np.ndarray, px_per_cm: float | None
                       ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(features [C, h, w], visible cells [h, w]) for every configured variant."""
        scale = require_scale(px_per_cm, "the probe")
        if image.shape != mask.shape:
            raise QueryError(f"mask is {mask.shape[1]}x{mask.shape[0]} (WxH) but the print is "
                             f"{image.shape[1]}x{image.shape[0]}")
        image, mask = crop_to_mask(image, mask)
        base = torch.from_numpy(np.ascontiguousarray(image))[None, None].float()
        visible = torch.from_numpy(np.ascontiguousarray(mask))[None, None].float()
        out = []
        for factor in self.config.scales:
            for degrees in self.config.rotations:
                total = factor * self.config.px_per_cm / scale
                ink = rotate(resample(base, total), degrees)
                seen = rotate(resample(visible, total), degrees) > 0.5
                for invert in self.config.invert:
                    maps = self.features(255.0 - ink if invert else ink)[0]
                    grid = (maps.shape[-2], maps.shape[-1])
                    cells = F.adaptive_avg_pool2d(seen.float(), grid)[0, 0]
                    cells = cells >= self.config.visible_share
                    if not cells.any():
                        raise QueryError("the probe's visible region covers no feature cell")
                    out.append(self._padded(maps, cells.to(self.device)))
        return out

    def _padded(self, maps: torch.Tensor, cells: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad the grid with invisible cells to `probe_grid`: no score changes (invisible
        cells take no part), but every probe shares one FFT size, so the references'
        spectra are computed once per gallery instead of once per probe."""
        pad_h = max(self.config.probe_grid[0] - maps.shape[-2], 0)
        pad_w = max(self.config.probe_grid[1] - maps.shape[-1], 0)
        return F.pad(maps, (0, pad_w, 0, pad_h)), F.pad(cells, (0, pad_w, 0, pad_h))

    def scores(self, image: np.ndarray, mask: np.ndarray, px_per_cm: float | None,
               gallery: DenseGallery) -> np.ndarray:
        """[N] best score per reference over the probe's variants (-inf: no valid overlap)."""
        return variant_scores(self.probe_variants(image, mask, px_per_cm), gallery.spectra,
                              self.config.min_overlap, channel_weights=self.channel_weights)

    def subset(self, gallery: DenseGallery, rows: Sequence[int]) -> DenseGallery:
        """The gallery restricted to `rows` (re-ranking a first stage's candidates)."""
        index = torch.as_tensor(list(rows), dtype=torch.long, device=gallery.maps.device)
        return DenseGallery(ReferenceSpectra(gallery.maps.index_select(0, index)),
                            gallery.px_per_cm)
