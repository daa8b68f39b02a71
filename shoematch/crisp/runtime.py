"""How a loaded CriSp encoder runs at inference: the same weights, different execution engines.

The query encoder is a conv net at 192×384 with a stride-2 stem and no max-pool, so almost all of
its time is in convolutions. `torch.ao`'s dynamic int8 quantisation rewrites Linear (and RNN)
layers only, so it leaves this network as it is; what does help on CPU is a runtime that fuses
conv + batch-norm + ReLU and plans memory once: ONNX Runtime (`benchmarks/bench_encoder.py`
measures each option against eager PyTorch in one run). Every float runtime here is exact to
float32 rounding (the benchmark prints the largest difference), so rankings do not change;
`onnx_int8` runs the same graph with int8 convolutions (`shoematch/crisp/quantize.py`), which
changes features slightly, and the benchmark checks retrieval quality through it.

Each runtime is an `nn.Module` taking and returning tensors like the encoder itself, so the
index's `query_cells`, the evaluation and re-indexing use it unchanged.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from shoematch.crisp.quantize import (
    CALIBRATION_PRINTS,
    QUANTIZATION_VERSION,
    print_inputs,
    quantize_int8,
)
from shoematch.log import get_logger
from shoematch.models.efficientnet_lite import SameConv2d

log = get_logger(__name__)

Runtime = Literal["eager", "channels_last", "onnx", "onnx_int8", "compile"]
RUNTIMES: tuple[Runtime, ...] = ("eager", "channels_last", "onnx", "onnx_int8", "compile")
# The fastest on CPU in benchmarks/bench_encoder.py (≈2× float ONNX Runtime on ResNet-50), with
# the same hit@10 and mAP@10 there; "onnx" is the exact float graph.
DEFAULT_RUNTIME: Runtime = "onnx_int8"


class EagerEncoder(nn.Module):
    """The model as trained, under `torch.inference_mode` (no autograd bookkeeping)."""

    def __init__(self, model: nn.Module, channels_last: bool = False) -> None:
        super().__init__()
        self.channels_last = channels_last
        # A copy: converting the layout in place would change the caller's model too.
        # `Module.to` takes `memory_format` at run time; torch's overloads leave it out.
        self.model = copy.deepcopy(model).eval().to(  # type: ignore[call-overload]
            memory_format=torch.channels_last) if channels_last else model.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            return self.model(x).contiguous()


class CompiledEncoder(nn.Module):
    """`torch.compile` (inductor); the first call of each input shape compiles (minutes on CPU)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()
        self.compiled = torch.compile(self.model, dynamic=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.compiled(x)


class OnnxEncoder(nn.Module):
    """The encoder exported to ONNX (torch.export-based exporter) and run by ONNX Runtime on CPU.

    Batch, height and width are dynamic axes, so one float export serves any batch on any
    canvas. `int8`: the graph statically quantised, calibrated on prints at the canvas it is
    asked to encode (one graph per canvas, made on its first batch). `threads` is ONNX Runtime's
    intra-op pool; spinning is off so an idle encoder does not take CPU from the shard replicas
    beside it."""

    def __init__(self, model: nn.Module, threads: int = 1,
                 example_hw: tuple[int, int] = (192, 384), int8: bool = False) -> None:
        super().__init__()
        self.threads = threads
        # The weights stay only where a canvas may still need its int8 graph made.
        self.model = model.eval() if int8 else None
        self.sessions: dict[tuple[int, int] | None, Any] = {}  # ort.InferenceSession
        if not int8:
            self.sessions[None] = self._session(cached_graph(model.eval(), example_hw))

    def _session(self, graph: bytes) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.shape[-2], x.shape[-1]) if self.model is not None else None
        if key not in self.sessions:
            assert self.model is not None and key is not None
            self.sessions[key] = self._session(cached_graph(self.model, key, int8=True))
        session = self.sessions[key]
        array = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        (out,) = session.run(None, {session.get_inputs()[0].name: array})
        return torch.from_numpy(out).to(x.device)


ONNX_REGISTRATION_LOGGER = "torch.onnx._internal.exporter._registration"


def export_onnx(model: nn.Module, example_hw: tuple[int, int]) -> bytes:
    """ONNX bytes of `model` with dynamic batch, height and width."""
    height, width = example_hw
    example = torch.zeros(2, 2, height, width)
    dims = {0: torch.export.Dim("batch", min=1, max=1024),
            2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}
    # The exporter logs one warning per torchvision operator it cannot register (torchvision is
    # not installed, and this network uses none of them): noise in every job's log.
    logging.getLogger(ONNX_REGISTRATION_LOGGER).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), dynamo=True, verbose=False,
                                    input_names=["x"], output_names=["features"],
                                    dynamic_shapes={"x": dims})
    assert program is not None  # the dynamo exporter always returns the program
    return program.model_proto.SerializeToString()  # the bytes `program.save` writes


def weights_digest(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode() + str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def cached_graph(model: nn.Module, example_hw: tuple[int, int], int8: bool = False) -> bytes:
    """`export_onnx` (quantised with `quantize_int8` when `int8`), kept on local disk under the
    weights' digest: an export takes tens of seconds on a busy CPU, calibration as long again,
    and every replica (or restart) of the same model on a node needs the same graph."""
    folder = os.environ.get("SHOEMATCH_ONNX_CACHE",
                            os.path.join(tempfile.gettempdir(), "shoematch-onnx"))
    stem = os.path.join(folder, f"{type(model).__name__}-{weights_digest(model)}")

    def float_graph() -> bytes:
        return _cached(f"{stem}.onnx", lambda: export_onnx(model, example_hw))

    if not int8:
        return float_graph()
    height, width = example_hw
    return _cached(f"{stem}-int8v{QUANTIZATION_VERSION}-{height}x{width}.onnx",
                   lambda: quantize_int8(float_graph(),
                                         print_inputs(example_hw, CALIBRATION_PRINTS)))


def _cached(path: str, make: Callable[[], bytes]) -> bytes:
    """The file at `path`, made first if absent; written to a temporary name and renamed, so a
    reader never sees a part."""
    if os.path.exists(path):
        with open(path, "rb") as cached:
            return cached.read()
    data = make()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = f"{path}.{os.getpid()}.part"
    with open(partial, "wb") as out:
        out.write(data)
    os.replace(partial, path)
    return data


def prepare_encoder(model: nn.Module, runtime: Runtime = DEFAULT_RUNTIME, threads: int = 1,
                    device: torch.device | str = "cpu") -> nn.Module:
    """`model` ready to encode on `device` with `runtime`. On a GPU the model runs eagerly on it
    (the ONNX Runtime package installed here is the CPU build)."""
    device = torch.device(device)
    if runtime not in RUNTIMES:
        raise ValueError(f"encoder runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    model = model.eval().to(device)
    if device.type != "cpu" or runtime == "eager":
        return EagerEncoder(model)
    if runtime == "channels_last":
        return EagerEncoder(model, channels_last=True)
    if runtime == "compile":
        return CompiledEncoder(model)
    if any(isinstance(module, SameConv2d) for module in model.modules()):
        # EfficientNet's "same" padding depends on each input's size: the exporter did not
        # finish a dynamic-shape export of one in 400 s (benchmarks/bench_encoder.py).
        log.info("EfficientNet body: ONNX export is not practical, running eagerly")
        return EagerEncoder(model)
    return OnnxEncoder(model, threads, int8=runtime == "onnx_int8")
