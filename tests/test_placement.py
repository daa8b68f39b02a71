"""Placement search: the probe is moved/scaled as configured, and the best placement wins."""

import torch

from shoematch.evaluation.encode import EncodedReferences
from shoematch.evaluation.placement import PlacementConfig, place, placement_scores
from shoematch.retrieval.scoring import normalize_cells


def test_place_shifts_and_scales_about_the_centre():
    image = torch.zeros(1, 1, 32, 64)
    image[..., 14:18, 30:34] = 1.0  # a blob at the centre
    config = PlacementConfig(scales=(1.0, 2.0), shifts_x=(0.0, 0.25), shifts_y=(0.0,))
    placed = place(image, config, "bilinear")
    assert placed.shape == (4, 1, 32, 64)

    def centre_x(img: torch.Tensor) -> float:
        xs = torch.arange(img.shape[-1], dtype=torch.float32)
        column = img[0].sum(dim=0)
        return float((column * xs).sum() / column.sum())

    # order: (scale 1, dx 0), (scale 1, dx .25), (scale 2, dx 0), (scale 2, dx .25)
    assert abs(centre_x(placed[0]) - centre_x(image[0])) < 0.5
    assert abs(centre_x(placed[1]) - (centre_x(image[0]) + 16)) < 0.6
    assert placed[2].sum() > 3 * placed[0].sum()  # twice the size: four times the area


class PoolTo(torch.nn.Module):
    """A stand-in encoder: the print channel average-pooled to a 4×8 grid, plus a constant
    channel (so normalised cells tell ink from background)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ink = torch.nn.functional.adaptive_avg_pool2d(x[:, :1], (4, 8))
        return torch.cat([ink, torch.full_like(ink, 0.2)], dim=1)


def test_best_placement_finds_the_shifted_reference():
    from shoematch.data.images import encode_png

    canvas = torch.zeros(1, 1, 32, 64)
    canvas[..., 8:24, 40:56] = 1.0  # the reference print sits right of centre
    probe = torch.zeros(32, 64, dtype=torch.uint8)
    probe[8:24, 24:40] = 255  # the same print, found centred
    record = {"query_id": "q", "print": encode_png(probe.numpy()),
              "mask": encode_png((probe * 0 + 255).numpy()), "targets": ["A"],
              "category": "x", "seen": False}
    refs = normalize_cells(PoolTo()(torch.cat([canvas, torch.zeros_like(canvas)], dim=1)))
    decoy = normalize_cells(torch.rand(1, 2, 4, 8))
    references = EncodedReferences(torch.cat([refs, decoy]), ["a", "b"], ["A", "B"], ["A", "B"])
    plain = placement_scores(PoolTo(), [record], references, torch.device("cpu"),
                             PlacementConfig(scales=(1.0,), shifts_x=(0.0,)))
    searched = placement_scores(PoolTo(), [record], references, torch.device("cpu"),
                                PlacementConfig(scales=(1.0,), shifts_x=(0.0, 0.25)))
    assert searched[0, 0] > plain[0, 0]
    assert searched[0, 0] > searched[0, 1]
