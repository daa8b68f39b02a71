"""Throughput of the crime-scene augmentation against the encoder's training throughput, on
the canonical canvas (H=192, W=384), in the same run.

    python benchmarks/bench_aug.py [--batches 16 64] [--arch resnet50] [--device cpu|cuda]

Prints augmented images/s and CriSp encoder training images/s (forward + backward + Adam step
of the contrastive loss) per batch size, and their ratio: augmentation must not be the
bottleneck (target ratio >= 3). Medians of timed iterations after warm-up; CPU with 2 threads
(the project's laptop / CI budget) unless --device says otherwise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from shoematch.augment import AugConfig, augment_prints  # noqa: E402
from shoematch.data.schema import Canvas  # noqa: E402

CANVAS = Canvas()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _clean_prints(batch: int, device: torch.device) -> torch.Tensor:
    """Bar-patterned soles in [0, 1]: the augmentation's cost does not depend on the content."""
    h, w = CANVAS.height, CANVAS.width
    ys = torch.linspace(-1, 1, h, device=device).view(h, 1)
    xs = torch.linspace(-1, 1, w, device=device).view(1, w)
    sole = (xs / 0.9) ** 2 + (ys / 0.8) ** 2 < 1
    bars = (xs * 12 + ys * 4).floor() % 2 == 0
    return (sole & bars).float().expand(batch, 1, h, w).contiguous()


def measure_aug(batch: int, iters: int = 7, warmup: int = 2, device: str = "cpu",
                cfg: AugConfig | None = None) -> float:
    """Augmented images per second at `batch` on the canvas size: median over `iters` timed
    calls after `warmup` untimed ones (the default config: every component on)."""
    dev = torch.device(device)
    cfg = cfg or AugConfig()
    prints = _clean_prints(batch, dev)
    generator = torch.Generator(device=dev).manual_seed(0)
    for _ in range(warmup):
        augment_prints(prints, cfg, generator)
    _sync(dev)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        augment_prints(prints, cfg, generator)
        _sync(dev)
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def _paired_batch(images: int, device: torch.device) -> dict[str, torch.Tensor]:
    """A training batch of `images` encoder inputs: images/4 classes × 2 instances × (print,
    depth), in the layout the Ray Data stage hands to the workers."""
    rows = max(2, images // 4)
    clean = (_clean_prints(rows, device) * 255).to(torch.uint8)
    batch = {"label": torch.arange(rows, device=device)}
    for side in "ab":
        batch[f"print_{side}"] = clean
        batch[f"depth_{side}"] = clean
        batch[f"mask_{side}"] = torch.full_like(clean, 255)
        batch[f"has_depth_{side}"] = torch.ones(rows, dtype=torch.bool, device=device)
    return batch


def measure_training(batch: int, arch: str, iters: int = 3, warmup: int = 1,
                     device: str = "cpu") -> float:
    """Encoder training images per second (the CriSp step on `batch` encoder inputs)."""
    from shoematch.crisp.config import MaskingConfig
    from shoematch.crisp.model import CrispEncoder
    from shoematch.crisp.training import crisp_loss

    dev = torch.device(device)
    model = CrispEncoder(arch=arch).to(dev).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    data = _paired_batch(batch, dev)
    generator = torch.Generator().manual_seed(0)
    times = []
    for i in range(warmup + iters):
        start = time.perf_counter()
        loss, images = crisp_loss(model, data, MaskingConfig(), generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        _sync(dev)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return images / statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--iters", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arch", default="resnet50", help="encoder body for the training figure")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    print(f"augmentation, canvas {CANVAS.height}x{CANVAS.width} (HxW), device {args.device}, "
          f"{torch.get_num_threads()} CPU threads, median of {args.iters} after "
          f"{args.warmup} warm-up")
    print(f"encoder {args.arch}: training step on the same batch size")
    print(f"{'batch':>6} | {'aug images/s':>12} | {'train images/s':>14} | {'aug/train':>9}")
    print(f"{'-' * 6}-+-{'-' * 12}-+-{'-' * 14}-+-{'-' * 9}")
    for batch in args.batches:
        aug = measure_aug(batch, args.iters, args.warmup, args.device)
        train = measure_training(batch, args.arch, device=args.device)
        print(f"{batch:>6} | {aug:>12.1f} | {train:>14.1f} | {aug / train:>8.1f}x")


if __name__ == "__main__":
    main()
