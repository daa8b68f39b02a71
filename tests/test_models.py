"""ResNet body (torchvision-compatible names and sizes), the CriSp encoder, loading
torchvision-format weights, and the supervised contrastive loss."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from shoematch.config import load_config
from shoematch.crisp.losses import (
    crisp_contrastive_loss,
    masked_flat_features,
    random_rectangle_mask,
)
from shoematch.crisp.model import CrispEncoder, CrispEncoderConfig
from shoematch.errors import ConfigError, ShoematchError
from shoematch.models.resnet import (
    WeightsMismatchError,
    adapt_stem_weight,
    build_resnet,
    load_torchvision_weights,
)
from shoematch.retrieval.inputs import encoder_input
from shoematch.retrieval.scoring import masked_query, normalize_cells, query_cell_mask, score


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- ResNet body -------------------------------------------------------------------------------

@pytest.mark.parametrize(("arch", "expected"), [
    ("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032)])
def test_stock_resnet_matches_torchvision_parameter_counts(arch: str, expected: int) -> None:
    # torchvision's published sizes for the ImageNet models (1000-way fc).
    assert n_params(build_resnet(arch, num_classes=1000)) == expected


def test_state_dict_names_follow_torchvision() -> None:
    keys = build_resnet("resnet50", num_classes=1000).state_dict()
    shapes = {k: tuple(v.shape) for k, v in keys.items()}
    assert list(keys)[:6] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean",
                              "bn1.running_var", "bn1.num_batches_tracked"]
    assert shapes["layer1.0.conv1.weight"] == (64, 64, 1, 1)
    assert shapes["layer1.0.downsample.0.weight"] == (256, 64, 1, 1)
    assert shapes["layer1.0.downsample.1.running_mean"] == (256,)
    assert shapes["layer4.2.conv3.weight"] == (2048, 512, 1, 1)
    assert shapes["fc.weight"] == (1000, 2048) and list(keys)[-1] == "fc.bias"
    assert len(keys) == 320
    small = build_resnet("resnet18", num_classes=1000).state_dict()
    assert len(small) == 122
    assert "layer1.0.downsample.0.weight" not in small
    assert tuple(small["layer2.0.downsample.0.weight"].shape) == (128, 64, 1, 1)


def test_body_has_no_fc_and_reports_channels_and_stride() -> None:
    body = build_resnet("resnet18", in_channels=2, stem_stride=2, stem_maxpool=False,
                        stage_strides=(2, 2, 2, 2))
    assert body.fc is None and not any(k.startswith("fc.") for k in body.state_dict())
    assert body.out_channels == 512 and body.stride == 32
    assert build_resnet("resnet50").out_channels == 2048
    with torch.no_grad():
        out = body.eval().forward_features(torch.zeros(1, 2, 64, 128))
    assert out.shape == (1, 512, 2, 4)
    stock = build_resnet("resnet18")
    assert stock.stride == 32
    with torch.no_grad():
        assert stock.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 512, 2, 2)


def test_unknown_arch_is_an_error() -> None:
    with pytest.raises(ValueError, match="resnet101"):
        build_resnet("resnet101")  # type: ignore[arg-type]


# --- CriSp encoder -----------------------------------------------------------------------------

def test_encoder_input_places_prints_and_depths() -> None:
    image = torch.rand(3, 1, 8, 16)
    prints = encoder_input(prints=image)
    depths = encoder_input(depths=image[:, 0])  # [B, H, W] accepted too
    assert prints.shape == depths.shape == (3, 2, 8, 16)
    assert torch.equal(prints[:, 0], image[:, 0]) and not prints[:, 1].any()
    assert torch.equal(depths[:, 1], image[:, 0]) and not depths[:, 0].any()
    assert encoder_input(depths=torch.zeros(0, 1, 8, 16)).shape == (0, 2, 8, 16)
    with pytest.raises(ValueError, match="exactly one"):
        encoder_input(prints=image, depths=image)
    with pytest.raises(ValueError, match="exactly one"):
        encoder_input()
    with pytest.raises(TypeError, match="float"):
        encoder_input(prints=(image * 255).to(torch.uint8))


def test_crisp_encoder_small_shapes_and_global_pooling() -> None:
    torch.manual_seed(0)
    x = encoder_input(prints=torch.rand(2, 1, 64, 128))
    spatial = CrispEncoder(arch="resnet18", embed_dim=16).eval()
    pooled = CrispEncoder(arch="resnet18", embed_dim=16, pooling="global").eval()
    pooled.load_state_dict(spatial.state_dict())  # same parameters either way
    with torch.no_grad():
        fmap = spatial(x)
        assert fmap.shape == (2, 16, 2, 4)
        assert torch.allclose(pooled(x), fmap.mean(dim=(2, 3), keepdim=True), atol=1e-6)
    head = spatial.head
    assert (head[0].in_channels, head[0].out_channels, head[2].out_channels) == (512, 512, 16)
    with pytest.raises(ValueError, match=r"\[B, 2, H, W\]"):
        spatial(torch.zeros(1, 3, 64, 128))


def test_crisp_resnet50_feature_map_is_128x6x12_at_192x384() -> None:
    model = CrispEncoder().eval()
    assert model.head[0].in_channels == 2048 and model.head[0].out_channels == 2048
    with torch.no_grad():
        out = model(encoder_input(depths=torch.rand(1, 1, 192, 384)))
    assert out.shape == (1, 128, 6, 12)


def test_encoder_config_is_strict_and_matches_constructor(tmp_path: Path) -> None:
    config = CrispEncoderConfig()
    assert config.model_dump() == {"arch": "resnet50", "embed_dim": 128, "pooling": "spatial",
                                   "pretrained": None}
    small = CrispEncoderConfig(arch="resnet18", embed_dim=8)
    assert CrispEncoder(**small.model_dump()).embed_dim == 8
    path = tmp_path / "enc.yaml"
    path.write_text("arch: resnet18\nembed_dim: 8\n")
    with pytest.raises(ConfigError, match="unknown config key 'bogus'"):
        load_config(CrispEncoderConfig, str(path), ["bogus=1"])
    with pytest.raises(ConfigError, match="pooling"):
        load_config(CrispEncoderConfig, str(path), ["pooling=max"])


# --- torchvision-format weights ----------------------------------------------------------------

def fake_torchvision_file(tmp_path: Path, arch: str = "resnet18") -> tuple[Path, dict]:
    """A state_dict as torchvision would save it: 3-channel stock stem, fc included."""
    torch.manual_seed(1)
    stock = build_resnet(arch, num_classes=1000)
    with torch.no_grad():
        for name, buffer in stock.named_buffers():
            if "running" in name:
                buffer.uniform_(0.5, 1.5)
    state = stock.state_dict()
    assert "fc.weight" in state and "fc.bias" in state
    path = tmp_path / f"{arch}.pth"
    torch.save(state, path)
    return path, state


@pytest.fixture(scope="module")
def resnet50_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    return fake_torchvision_file(tmp_path_factory.mktemp("weights"), "resnet50")


def test_load_torchvision_weights_into_two_channel_encoder(tmp_path: Path) -> None:
    path, state = fake_torchvision_file(tmp_path)
    model = CrispEncoder(arch="resnet18", embed_dim=8, pretrained=str(path))
    loaded = model.encoder.state_dict()
    for key, value in state.items():
        if key.startswith("fc.") or key == "conv1.weight":
            continue
        assert torch.equal(loaded[key], value), key
    # CriSp strides layer1 by 2: torchvision's ResNet-18 has no shortcut conv there, so it
    # starts as the identity shortcut, subsampled.
    assert torch.equal(loaded["layer1.0.downsample.0.weight"][:, :, 0, 0], torch.eye(64))
    assert torch.equal(loaded["layer1.0.downsample.1.running_var"], torch.ones(64))
    stem = loaded["conv1.weight"]
    assert stem.shape == (64, 2, 7, 7)
    rgb = state["conv1.weight"]
    assert torch.allclose(stem[:, 0], rgb.sum(dim=1), atol=1e-6)
    assert torch.equal(stem[:, 0], stem[:, 1])
    # A gray image in one channel activates the stem as the RGB net's gray-as-RGB input does.
    gray = torch.rand(1, 1, 20, 20)
    expected = F.conv2d(gray.repeat(1, 3, 1, 1), rgb)
    for inputs in (encoder_input(prints=gray), encoder_input(depths=gray)):
        assert torch.allclose(F.conv2d(inputs, stem), expected, atol=1e-4)


def test_old_files_without_num_batches_tracked_load(tmp_path: Path) -> None:
    _, state = fake_torchvision_file(tmp_path)
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old.pth"
    torch.save(old, path)
    body = build_resnet("resnet18", in_channels=2, stem_maxpool=False,
                        stage_strides=(2, 2, 2, 2))
    initialised = load_torchvision_weights(body, str(path), in_channels=2)
    assert initialised == ["layer1.0.downsample"]
    assert torch.equal(body.state_dict()["layer3.1.bn2.running_var"],
                       state["layer3.1.bn2.running_var"])


def test_resnet50_weights_load_without_extra_modules(resnet50_file: tuple[Path, dict]) -> None:
    path, state = resnet50_file
    body = CrispEncoder(arch="resnet50", embed_dim=8).encoder
    # every ResNet-50 stage already has a shortcut conv, so nothing is left initialised
    assert load_torchvision_weights(body, str(path), in_channels=2) == []
    loaded = body.state_dict()
    assert torch.equal(loaded["layer1.0.downsample.0.weight"],
                       state["layer1.0.downsample.0.weight"])
    assert torch.equal(loaded["layer4.2.bn3.running_mean"], state["layer4.2.bn3.running_mean"])


def test_load_errors_name_the_path_and_first_mismatch(tmp_path: Path,
                                                      resnet50_file: tuple[Path, dict]) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth") as info:
        CrispEncoder(arch="resnet18", pretrained=str(missing))
    assert isinstance(info.value, ShoematchError)
    path50, _ = resnet50_file
    body18 = build_resnet("resnet18", in_channels=2)
    message = r"'layer1\.0\.conv1\.weight' has shape \(64, 64, 1, 1\).*\(64, 64, 3, 3\)"
    with pytest.raises(WeightsMismatchError, match=message):
        load_torchvision_weights(body18, str(path50), in_channels=2)
    path34, _ = fake_torchvision_file(tmp_path, "resnet34")
    with pytest.raises(WeightsMismatchError, match=r"unexpected key 'layer1\.2\.conv1\.weight'"):
        load_torchvision_weights(body18, str(path34), in_channels=2)
    path18, state = fake_torchvision_file(tmp_path, "resnet18")
    del state["layer4.1.bn2.bias"]
    torch.save(state, path18)
    with pytest.raises(WeightsMismatchError, match=r"missing key 'layer4\.1\.bn2\.bias'"):
        load_torchvision_weights(body18, str(path18), in_channels=2)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsMismatchError, match="junk.pth"):
        load_torchvision_weights(body18, str(junk), in_channels=2)


def test_adapt_stem_weight_scaling() -> None:
    rgb = torch.randn(64, 3, 7, 7)
    assert adapt_stem_weight(rgb, 3) is rgb
    both = adapt_stem_weight(rgb, 2, active_channels=2)
    assert torch.allclose(both.sum(dim=1), rgb.sum(dim=1), atol=1e-5)
    with pytest.raises(WeightsMismatchError):
        adapt_stem_weight(torch.randn(64, 4, 7, 7), 2)


# --- contrastive loss --------------------------------------------------------------------------

def supcon_by_hand(flat: torch.Tensor, labels: list[int], tau: float) -> float:
    """Khosla et al. L_out, written out term by term on unit vectors, averaged over anchors."""
    z = [v / v.norm() if v.norm() > 0 else v for v in flat.double()]
    total, anchors = 0.0, 0
    for i in range(len(z)):
        positives = [p for p in range(len(z)) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        denominator = sum(math.exp(float(z[i] @ z[a]) / tau) for a in range(len(z)) if a != i)
        total += -sum(math.log(math.exp(float(z[i] @ z[p]) / tau) / denominator)
                      for p in positives) / len(positives)
        anchors += 1
    return total / anchors


def test_loss_matches_hand_computation() -> None:
    torch.manual_seed(2)
    features = torch.randn(4, 3, 1, 2)
    labels = [0, 0, 1, 1]
    mask = torch.tensor([[True, True], [True, False], [True, True], [False, True]]).view(4, 1, 2)
    loss = crisp_contrastive_loss(features, torch.tensor(labels), mask, temperature=0.07)
    # By hand: normalise each cell, zero masked cells, flatten, then L_out on cosines.
    cells = features / features.norm(dim=1, keepdim=True) * mask.unsqueeze(1)
    assert torch.allclose(masked_flat_features(features, mask), cells.flatten(1), atol=1e-6)
    assert loss.item() == pytest.approx(supcon_by_hand(cells.flatten(1), labels, 0.07), rel=1e-5)
    unmasked = crisp_contrastive_loss(features, torch.tensor(labels), None, temperature=0.5)
    expected = supcon_by_hand(F.normalize(features, dim=1).flatten(1), labels, 0.5)
    assert unmasked.item() == pytest.approx(expected, rel=1e-5)


def test_masked_cells_have_no_gradient_or_effect() -> None:
    torch.manual_seed(3)
    features = torch.randn(6, 8, 2, 3, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    rect = torch.zeros(2, 3, dtype=torch.bool)  # one [h, w] mask broadcast to the batch
    rect[:, 1:] = True
    crisp_contrastive_loss(features, labels, rect).backward()
    assert features.grad is not None
    assert not features.grad[:, :, :, 0].any()
    assert features.grad[:, :, :, 1:].abs().sum() > 0
    changed = features.detach().clone()
    changed[:, :, :, 0] = torch.randn(6, 8, 2)
    with torch.no_grad():
        assert torch.allclose(crisp_contrastive_loss(changed, labels, rect),
                              crisp_contrastive_loss(features, labels, rect))


def test_aligned_same_label_features_give_lower_loss() -> None:
    torch.manual_seed(4)
    base = torch.randn(3, 16, 2, 2)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    aligned = base.repeat_interleave(2, dim=0) + 0.01 * torch.randn(6, 16, 2, 2)
    scrambled = torch.randn(6, 16, 2, 2)
    assert (crisp_contrastive_loss(aligned, labels, None)
            < crisp_contrastive_loss(scrambled, labels, None))


def test_random_rectangle_mask_sizes_and_determinism() -> None:
    grid = (6, 12)
    for seed in range(50):
        mask = random_rectangle_mask(grid, torch.Generator().manual_seed(seed), min_frac=0.5)
        rows, cols = mask.any(dim=1), mask.any(dim=0)
        assert mask.dtype == torch.bool and mask.shape == grid
        assert int(rows.sum()) >= 3 and int(cols.sum()) >= 6
        assert int(mask.sum()) == int(rows.sum()) * int(cols.sum())  # one solid rectangle
    first = random_rectangle_mask(grid, torch.Generator().manual_seed(7))
    assert torch.equal(first, random_rectangle_mask(grid, torch.Generator().manual_seed(7)))
    assert random_rectangle_mask(grid, torch.Generator().manual_seed(7), min_frac=1.0).all()
    with pytest.raises(ValueError):
        random_rectangle_mask(grid, torch.Generator(), min_frac=0.0)


# --- GPU ---------------------------------------------------------------------------------------

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_encoder_and_scoring_on_cuda() -> None:
    device = torch.device("cuda")
    model = CrispEncoder(arch="resnet18", embed_dim=16).to(device).eval()
    prints = torch.rand(2, 1, 64, 128, device=device)
    visible = torch.zeros(2, 1, 64, 128, dtype=torch.bool, device=device)
    visible[:, :, :, :40] = True
    with torch.no_grad():
        refs = normalize_cells(model(encoder_input(depths=prints)))
        feats = model(encoder_input(prints=prints))
        cells = query_cell_mask(visible, tuple(feats.shape[-2:]))
        scores = score(masked_query(feats, cells), refs)
    assert scores.device.type == "cuda" and scores.shape == (2, 2)
    features = torch.randn(4, 8, 2, 4, device=device, requires_grad=True)
    rect = random_rectangle_mask((2, 4), torch.Generator().manual_seed(0)).to(device)
    loss = crisp_contrastive_loss(features, torch.tensor([0, 0, 1, 1], device=device), rect)
    loss.backward()
    assert torch.isfinite(loss) and features.grad is not None
