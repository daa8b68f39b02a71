"""How close the served query encoder runs to this CPU's int8 convolution throughput.

    python -m benchmarks.encoder_ceiling [--arch resnet50] [--threads 1] [--repeats 7]

Counts the encoder's multiply-accumulates at the served canvas (192×384), times its int8 ONNX
Runtime graph (the served default) at batch 1 and 8, and times, through the same export and
quantisation, two probes built only of the convolutions ONNX Runtime's int8 kernels run best:
1×1 convolutions (a plain int8 matrix product) and 3×3 ones, at ResNet's widths. The probes'
rate is the ceiling any int8 runtime of this network reaches on these cores, so

    MACs of the encoder ÷ the probes' best rate

is the least time an int8 forward pass can take here: the limit that decides whether the query
encoder must be most of a request at concurrency 8 on 2 cores (docs/benchmarks.md, load_test).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch import nn

from shoematch.crisp.model import CrispEncoder
from shoematch.crisp.quantize import print_inputs
from shoematch.crisp.runtime import prepare_encoder

CANVAS = (192, 384)
BATCHES = (1, 8)


def conv_macs(model: nn.Module, inputs: torch.Tensor) -> int:
    """Multiply-accumulates of every convolution and linear layer for one forward of `inputs`."""
    total = 0

    def count(module: nn.Module, _: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * int(np.prod(module.kernel_size))
            total += output.numel() * per_output
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in model.modules()
             if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.inference_mode():
        model(inputs)
    for hook in hooks:
        hook.remove()
    return total


class ConvProbe(nn.Module):
    """[B, 2, H, W] → a stack of `depth` k×k convolutions of `width` channels at stride 4: the
    shape of ResNet's first stage, its layers the ones int8 kernels run fastest."""

    def __init__(self, kernel: int, width: int = 256, depth: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(2, width, 4, stride=4), nn.ReLU()]
        for _ in range(depth):
            layers += [nn.Conv2d(width, width, kernel, padding=kernel // 2), nn.ReLU()]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def ms_per_image(encoder: nn.Module, batch: torch.Tensor, repeats: int) -> float:
    times = []
    with torch.inference_mode():
        encoder(batch)
        for _ in range(repeats):
            started = time.perf_counter()
            encoder(batch)
            times.append(time.perf_counter() - started)
    return statistics.median(times) / len(batch) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--threads", type=int, default=1, help="as a served encoder replica")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    prints = torch.from_numpy(print_inputs(CANVAS, max(BATCHES), seed=1))  # not calibration's
    networks = {f"CriSp encoder ({args.arch})": CrispEncoder(args.arch, 128).eval(),
                "probe: 4 × 1×1 conv, 256 ch": ConvProbe(1).eval(),
                "probe: 4 × 3×3 conv, 256 ch": ConvProbe(3).eval()}
    print(f"int8 ONNX Runtime (QDQ, per-channel weights, as served) at {CANVAS[0]}×{CANVAS[1]}, "
          f"{args.threads} thread(s), median of {args.repeats}\n")
    print("| network | GMAC/image | ms/image batch 1 / 8 | GMAC/s batch 1 / 8 |")
    print("|---|---|---|---|")
    rates: dict[str, float] = {}
    for name, model in networks.items():
        macs = conv_macs(model, prints[:1]) / 1e9
        encoder = prepare_encoder(model, "onnx_int8", threads=args.threads)
        ms = [ms_per_image(encoder, prints[:b], args.repeats) for b in BATCHES]
        rate = [macs / (m / 1e3) for m in ms]
        rates[name] = max(rate)
        print(f"| {name} | {macs:.2f} | {ms[0]:.1f} / {ms[1]:.1f} | {rate[0]:.1f} / "
              f"{rate[1]:.1f} |", flush=True)
    encoder_name, *probes = rates
    ceiling = max(rates[p] for p in probes)
    least_ms = conv_macs(networks[encoder_name], prints[:1]) / 1e9 / ceiling * 1e3
    print(f"\nthe encoder runs at {rates[encoder_name] / ceiling:.0%} of the best probe's "
          f"{ceiling:.1f} GMAC/s; at that rate its forward pass takes at least {least_ms:.0f} ms "
          f"per image on {args.threads} thread(s)")


if __name__ == "__main__":
    main()
