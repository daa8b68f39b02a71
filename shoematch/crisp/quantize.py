"""Static int8 quantisation of the query encoder's ONNX graph (ONNX Runtime, QDQ format).

Why static: a conv net's time is in its convolutions, and only a static scheme runs them as int8
kernels with activation ranges fixed in advance (dynamic quantisation in torch.ao leaves convs
in float; ONNX Runtime's dynamic ConvInteger measures every activation's range per call).

The activation ranges come from a fixed, seeded set of the built-in generator's crime-scene-like
prints at the served canvas: the query modality (prints in channel 0), never the probes being
scored, and the same every time, so a given encoder always yields the same int8 graph. Weights
are per output channel, 7-bit (`reduce_range`): on x86 without VNNI the u8×s8 products are summed
in int16 pairs that saturate with full 8-bit weights.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import numpy as np

from shoematch.data.schema import Canvas
from shoematch.data.synth.generate import iter_queries
from shoematch.data.synth.spec import SynthSpec

CALIBRATION_PRINTS = 32
CALIBRATION_SEED = 20261203
# Part of every cached int8 graph's name: bump it when the calibration or the settings change.
QUANTIZATION_VERSION = 1


def print_inputs(hw: tuple[int, int], count: int, seed: int = CALIBRATION_SEED) -> np.ndarray:
    """`count` synthetic crime-scene-like prints as encoder inputs float32 [count, 2, H, W]
    (print in channel 0, as `encoder_input` places it); the calibration set with the default
    seed."""
    spec = SynthSpec(models=max(4, count // 2), instances=2, queries=count, seed=seed,
                     canvas=Canvas(*hw))
    inputs = np.zeros((count, 2, *hw), dtype=np.float32)
    for index, (_, _, image, _) in enumerate(iter_queries(spec, range(count))):
        inputs[index, 0] = image.astype(np.float32) / 255.0
    return inputs


def quantize_int8(onnx_bytes: bytes, calibration: np.ndarray) -> bytes:
    """The float graph `onnx_bytes` (input "x") with int8 weights and activations."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Prints(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator[dict[str, np.ndarray]] = iter(
                {"x": calibration[i:i + 1]} for i in range(len(calibration)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as folder:
        float_path, prepared, quantized = (os.path.join(folder, name) for name in
                                           ("float.onnx", "prepared.onnx", "int8.onnx"))
        with open(float_path, "wb") as out:
            out.write(onnx_bytes)
        quant_pre_process(float_path, prepared)
        quantize_static(prepared, quantized, Prints(), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=True, weight_type=QuantType.QInt8,
                        activation_type=QuantType.QUInt8)
        with open(quantized, "rb") as result:
            return result.read()
