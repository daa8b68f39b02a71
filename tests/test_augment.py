"""Crime-scene augmentation: shapes, ranges, determinism, switches, Perlin statistics, devices."""

from __future__ import annotations

import pytest
import torch

from shoematch.augment import AugConfig, augment_prints, perlin_noise
from shoematch.augment.occlusion import quad_mask
from shoematch.config import load_config
from shoematch.errors import ConfigError

H, W = 64, 128
OFF = {"occlusion": False, "erasure": False, "noise": False}


def prints(batch: int = 6, height: int = H, width: int = W) -> torch.Tensor:
    """Sole-shaped ellipses filled with diagonal bars: 1 = ink."""
    ys = torch.linspace(-1, 1, height).view(height, 1)
    xs = torch.linspace(-1, 1, width).view(1, width)
    sole = (xs / 0.9) ** 2 + (ys / 0.8) ** 2 < 1
    out = []
    for i in range(batch):
        bars = ((xs * (10 + i) + ys * 4).floor() % 2 == 0)
        out.append((sole & bars).float())
    return torch.stack(out).unsqueeze(1)


def gen(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def test_shape_dtype_range_and_change():
    x = prints()
    y = augment_prints(x, AugConfig(), gen(0))
    assert y.shape == x.shape and y.dtype == torch.float32 and y.device == x.device
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    assert not torch.equal(x, y)
    assert y.std() > 0.05  # not washed out


def test_same_seed_same_output_other_seed_differs():
    x = prints()
    cfg = AugConfig()
    a = augment_prints(x, cfg, gen(3))
    b = augment_prints(x, cfg, gen(3))
    c = augment_prints(x, cfg, gen(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_all_off_is_identity():
    x = prints()
    y = augment_prints(x, AugConfig(**OFF), gen(0))
    assert torch.equal(x, y) and y.data_ptr() != x.data_ptr()


@pytest.mark.parametrize("mode", ["gaussian", "perlin", "random"])
def test_erasure_only_removes_ink_about_the_asked_fraction(mode):
    x = torch.ones(8, 1, H, W)
    cfg = AugConfig(**{**OFF, "erasure": True}, erasure_mode=mode, p_erasure=1.0,
                    erasure_fraction_range=(0.3, 0.3), erasure_strength_range=(1.0, 1.0))
    y = augment_prints(x, cfg, gen(1))
    assert (y <= x).all()
    erased = 1 - y.mean(dim=(1, 2, 3))
    assert ((erased > 0.2) & (erased < 0.4)).all(), erased


def test_occlusion_parts():
    x = prints()
    quads = AugConfig(**{**OFF, "occlusion": True}, p_self_overlay=0.0, p_quads=1.0)
    y = augment_prints(x, quads, gen(2))
    assert (y <= x).all() and (y < x).any()  # quads only hide ink
    overlay = AugConfig(**{**OFF, "occlusion": True}, p_self_overlay=1.0, p_quads=0.0)
    y = augment_prints(x, overlay, gen(2))
    assert (y >= x).all() and (y > x).any()  # a second impression only adds ink
    none = AugConfig(**{**OFF, "occlusion": True}, p_self_overlay=0.0, p_quads=0.0)
    assert torch.equal(augment_prints(x, none, gen(2)), x)


def test_quads_cover_part_of_the_canvas():
    cfg = AugConfig(p_quads=1.0, max_quads=2)
    mask = quad_mask(16, H, W, cfg, gen(5), torch.device("cpu"))
    cover = mask.mean(dim=(1, 2, 3))
    assert mask.shape == (16, 1, H, W) and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert (cover > 0).all() and (cover < 0.9).all()


@pytest.mark.parametrize("mode", ["gaussian", "perlin"])
def test_noise_only(mode):
    x = prints()
    cfg = AugConfig(**{**OFF, "noise": True}, noise_mode=mode)
    y = augment_prints(x, cfg, gen(0))
    background = x == 0
    assert y[background].mean() > 0.01  # clutter / noise on the background
    assert (y - x).abs().mean() > 0.02


def test_perlin_statistics():
    n = perlin_noise(32, 64, 96, 16, gen(0), "cpu")
    assert n.shape == (32, 1, 64, 96) and n.dtype == torch.float32
    assert n.abs().max() <= 1.0
    assert abs(n.mean().item()) < 0.05
    assert 0.1 < n.std().item() < 0.6
    # spatially smooth: neighbouring pixels strongly correlated, no jumps at cell borders
    for a, b in ((n[..., :, 1:], n[..., :, :-1]), (n[..., 1:, :], n[..., :-1, :])):
        corr = torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1]
        assert corr > 0.95
        assert (a - b).abs().max() < 0.3


def test_perlin_odd_sizes_octaves_and_determinism():
    n = perlin_noise(4, 37, 53, (8, 12), gen(1), "cpu", octaves=4, persistence=0.6)
    assert n.shape == (4, 1, 37, 53) and n.abs().max() <= 1.0
    assert torch.equal(n, perlin_noise(4, 37, 53, (8, 12), gen(1), "cpu", octaves=4,
                                       persistence=0.6))
    assert not torch.equal(n, perlin_noise(4, 37, 53, (8, 12), gen(2), "cpu", octaves=4,
                                           persistence=0.6))
    with pytest.raises(ValueError):
        perlin_noise(1, 8, 8, 0, gen(0), "cpu")


def test_float16_input():
    x = prints().half()
    y = augment_prints(x, AugConfig(), gen(0))
    assert y.dtype == torch.float16 and torch.isfinite(y).all()
    assert y.min() >= 0 and y.max() <= 1
    ref = augment_prints(x.float(), AugConfig(), gen(0))
    assert (y.float() - ref).abs().max() < 1e-2


def test_canvas_size_batch():
    x = prints(2, 192, 384)
    y = augment_prints(x, AugConfig(), gen(0))
    assert y.shape == (2, 1, 192, 384)


def test_no_host_sync_runs_on_meta_device():
    """Meta tensors have no data: any .item()/bool() on a tensor in the hot path would raise."""
    x = torch.empty(4, 1, H, W, device="meta")
    for mode in ("gaussian", "perlin", "random"):
        cfg = AugConfig(erasure_mode=mode, noise_mode=mode)
        y = augment_prints(x, cfg, gen(0))
        assert y.shape == x.shape and y.device.type == "meta"


def test_bad_inputs_and_config():
    with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
        augment_prints(torch.zeros(2, H, W), AugConfig(), gen(0))
    with pytest.raises(TypeError):
        augment_prints(torch.zeros(2, 1, H, W, dtype=torch.uint8), AugConfig(), gen(0))
    with pytest.raises(ConfigError, match="erasure_fraction_range"):
        load_config(AugConfig, None, ["erasure_fraction_range=[0.5, 0.1]"])
    with pytest.raises(ConfigError, match="unknown config key"):
        load_config(AugConfig, None, ["blur=1"])
    cfg = load_config(AugConfig, None, ["noise_mode=perlin", "gaussian_sigma_range=[0.0, 0.2]"])
    assert cfg.noise_mode == "perlin" and cfg.gaussian_sigma_range == (0.0, 0.2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_stays_on_device():
    x = prints().cuda()
    cfg = AugConfig()
    a = augment_prints(x, cfg, gen(0, "cuda"))
    b = augment_prints(x.half(), cfg, gen(0, "cuda"))
    assert a.is_cuda and b.is_cuda and b.dtype == torch.float16
    assert torch.equal(a, augment_prints(x, cfg, gen(0, "cuda")))
    assert a.min() >= 0 and a.max() <= 1
    with pytest.raises(ValueError, match="generator"):
        augment_prints(x, cfg, gen(0, "cpu"))


def test_params_replay_and_visibility():
    from shoematch.augment.crime_scene import apply_augmentation

    x = prints()
    cfg = AugConfig(p_quads=1.0, p_erasure=1.0)
    y, params = augment_prints(x, cfg, gen(7), return_params=True)
    assert torch.equal(y, augment_prints(x, cfg, gen(7)))  # same stream with or without params
    assert torch.equal(apply_augmentation(x, params, cfg), y)  # draws replay exactly
    visible = params.visible(x.shape, x.device)
    assert visible.dtype == torch.bool and visible.shape == x.shape
    assert not visible[params.occlusion.cover > 0].any()  # under a quadrilateral: hidden
    erased = params.erasure.strength.view(-1, 1, 1, 1) * params.erasure.region > 0.5
    assert erased.any() and not visible[erased].any()
    assert visible.float().mean() > 0.2  # most of the canvas stays visible

    only_noise = AugConfig(**{**OFF, "noise": True})
    _, params = augment_prints(x, only_noise, gen(7), return_params=True)
    assert params.occlusion is None and params.erasure is None
    assert params.visible(x.shape, x.device).all()  # noise hides nothing


def test_training_pairs_mask_follows_the_augmentation():
    import io

    import numpy as np
    from PIL import Image

    from shoematch.crisp.data import AugmentPairs

    def png(array: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        return buffer.getvalue()

    ink = png((prints(1)[0, 0].numpy() * 255).astype(np.uint8))
    sole = png(np.full((H, W), 255, np.uint8))
    rows = {"label": np.array(["a", "b"]),
            "print": np.array([[ink, ink], [ink]], dtype=object),
            "depth": np.array([[None, None], [None]], dtype=object),
            "mask": np.array([[sole, sole], [sole]], dtype=object)}
    cfg = {"p_quads": 1.0, "p_erasure": 1.0}
    follows = AugmentPairs({**cfg, "mask_follows": True}, seed=0, device="cpu")(rows)
    clean = AugmentPairs(cfg, seed=0, device="cpu")(rows)  # the default: the print's own mask
    assert (clean["mask_a"] == 255).all()  # the clean sole mask passed through
    assert torch.equal(torch.from_numpy(follows["print_a"]), torch.from_numpy(clean["print_a"]))
    hidden = follows["mask_a"] == 0
    assert hidden.any() and not hidden.all()
    assert set(np.unique(follows["mask_a"]).tolist()) <= {0, 255}
