"""The query encoder's runtimes (`shoematch.crisp.runtime`) give the eager model's features to
float32 rounding, on any batch size and canvas (ONNX export with dynamic axes); the int8 graph
stays close to them on prints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shoematch.crisp.model import CrispEncoder
from shoematch.crisp.quantize import print_inputs
from shoematch.crisp.runtime import cached_graph, prepare_encoder, weights_digest
from shoematch.index.encoding import query_cells


@pytest.fixture(scope="module")
def model() -> CrispEncoder:
    torch.manual_seed(0)
    return CrispEncoder(arch="resnet18", embed_dim=8).eval()


@pytest.mark.parametrize("runtime", ["onnx", "channels_last"])
def test_runtime_matches_eager(model, runtime):
    fast = prepare_encoder(model, runtime, threads=1)
    for shape in [(1, 2, 64, 128), (5, 2, 64, 128), (2, 2, 96, 160)]:
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(sum(shape)))
        with torch.no_grad():
            expected = model(x)
        got = fast(x)
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_query_cells_through_onnx_match_eager(model):
    rng = np.random.default_rng(0)
    prints = rng.integers(0, 256, (3, 64, 128), dtype=np.uint8)
    masks = rng.random((3, 64, 128)) > 0.5
    cells, visible = query_cells(model, prints, masks)
    fast_cells, fast_visible = query_cells(prepare_encoder(model, "onnx"), prints, masks)
    assert torch.equal(visible, fast_visible)
    assert torch.allclose(cells, fast_cells, atol=1e-5)


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    """One export cache for this module's tests (an export takes ~10 s)."""
    folder = tmp_path_factory.mktemp("onnx")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHOEMATCH_ONNX_CACHE", str(folder))
        yield folder


def test_int8_runtime_keeps_the_features_of_prints(model, onnx_cache):
    """Static int8 (calibrated on the generator's prints at the canvas it is given) stays close
    to eager on other prints, and one int8 graph per canvas is kept beside the float export."""
    fast = prepare_encoder(model, "onnx_int8", threads=1)
    for hw in [(64, 128), (96, 160)]:
        x = torch.from_numpy(print_inputs(hw, 6, seed=11))  # not the calibration prints
        with torch.no_grad():
            expected = model(x)
        got = fast(x)
        assert got.shape == expected.shape
        cells = torch.nn.functional.cosine_similarity(got, expected, dim=1)
        assert cells.mean() > 0.97, cells.mean()
    digest = weights_digest(model)
    assert {path.name for path in onnx_cache.iterdir() if digest in path.name} == {
        f"CrispEncoder-{digest}{suffix}.onnx"
        for suffix in ("", "-int8v1-64x128", "-int8v1-96x160")}


def test_calibration_prints_are_fixed_and_look_like_prints():
    first, again = print_inputs((64, 128), 4), print_inputs((64, 128), 4)
    assert np.array_equal(first, again) and first.shape == (4, 2, 64, 128)
    assert not first[:, 1].any() and 0 < first[:, 0].mean() < 1  # print channel only, not blank
    assert not np.array_equal(first, print_inputs((64, 128), 4, seed=1))


def test_unknown_runtime_is_refused_by_name(model):
    with pytest.raises(ValueError, match="tensorrt"):
        prepare_encoder(model, "tensorrt")  # type: ignore[arg-type]


def test_onnx_export_is_cached_by_weights(model, onnx_cache):
    first = cached_graph(model, (64, 128))
    path = onnx_cache / f"CrispEncoder-{weights_digest(model)}.onnx"
    assert path.read_bytes() == first and path.name.endswith(".onnx")
    assert cached_graph(model, (64, 128)) == first  # read back, not exported again
    other = CrispEncoder(arch="resnet18", embed_dim=8).eval()  # other weights, other entry
    assert weights_digest(other) != weights_digest(model)


def test_efficientnet_bodies_run_eagerly_under_the_onnx_runtime() -> None:
    """Their size-dependent "same" padding defeats a dynamic-shape export: no export is tried."""
    from shoematch.crisp.model import CrispEncoder
    from shoematch.crisp.runtime import EagerEncoder, prepare_encoder

    model = CrispEncoder("efficientnet_lite0", embed_dim=8)
    assert isinstance(prepare_encoder(model, "onnx"), EagerEncoder)


def test_encoder_ceiling_counts_multiply_accumulates() -> None:
    """The ceiling benchmark's MAC count: k·k·C_in per output value of each convolution, C_in
    per output of a linear layer; ResNet-50 CriSp at 192×384 is ≈ 6.3 GMAC."""
    from benchmarks.encoder_ceiling import ConvProbe, conv_macs

    net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 8 * 8, 5))
    assert conv_macs(net, torch.zeros(1, 2, 8, 8)) == 4 * 64 * 2 * 9 + 5 * 256
    probe = conv_macs(ConvProbe(1, width=8, depth=2), torch.zeros(1, 2, 16, 16))
    assert probe == 16 * 8 * (2 * 16) + 2 * 16 * 8 * 8
    macs = conv_macs(CrispEncoder("resnet50", 128).eval(), torch.zeros(1, 2, 192, 384))
    assert 6.2e9 < macs < 6.4e9
