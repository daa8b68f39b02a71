"""The query encoder's options against the current one (eager PyTorch), in one run.

    python -m benchmarks.bench_encoder [--arch resnet50] [--threads 1] [--repeats 5]
                                       [--skip-compile] [--quality-steps 150]

Speed: ms per query at batch 1 and 8 on the served canvas (192×384), each option timed in turn
within every repeat (medians), so load from other work on the machine falls on all alike;
preparation (export, compilation) is timed apart. Exactness: each runtime's features against
eager on the same inputs (largest absolute difference, smallest cosine). Retrieval quality: a
tiny CriSp model trained here in process for a bounded number of steps, its references encoded
eagerly (as re-indexing does) and its queries by each runtime: hit@10 ± its standard error and
how many queries keep eager's top 10.
Lighter backbones are different models (they need their own training and index): their rows
give speed only.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from benchmarks.common import REPO, class_rows
from shoematch.crisp.config import CrispTrainConfig
from shoematch.crisp.data import AugmentPairs
from shoematch.crisp.model import CrispEncoder
from shoematch.crisp.quantize import print_inputs
from shoematch.crisp.runtime import prepare_encoder
from shoematch.crisp.training import make_optimizer, train_steps
from shoematch.data.dataset import open_dataset
from shoematch.evaluation.encode import encode_queries, encode_references
from shoematch.evaluation.evaluation import retrieval_report
from shoematch.training.job import Batches

CANVAS = (192, 384)
BATCHES = (1, 8)


def int8_dynamic(model: nn.Module) -> tuple[nn.Module, int]:
    """torch.ao dynamic int8 quantisation; returns (model, layers it quantised)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        quantized = quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    changed = sum(type(m).__module__.startswith("torch.ao.nn.quantized")
                  for m in quantized.modules())
    return quantized, changed


def options(arch: str, threads: int, skip_compile: bool
            ) -> Iterator[tuple[str, Callable[[], nn.Module], bool]]:
    """(name, builder, same weights as the current encoder) per option."""
    torch.manual_seed(0)
    base = CrispEncoder(arch, 128).eval()
    yield f"{arch} eager (current)", lambda: prepare_encoder(base, "eager"), True
    yield f"{arch} channels_last", lambda: prepare_encoder(base, "channels_last"), True
    yield f"{arch} int8 dynamic (torch.ao)", lambda: prepare_encoder(int8_dynamic(base)[0],
                                                                     "eager"), True
    yield f"{arch} ONNX Runtime", lambda: prepare_encoder(base, "onnx", threads), True
    yield f"{arch} ONNX Runtime int8 (static)", \
        lambda: prepare_encoder(base, "onnx_int8", threads), True
    if not skip_compile:
        yield f"{arch} torch.compile", lambda: prepare_encoder(base, "compile"), True
    for light in ("resnet18", "efficientnet_lite0"):
        if light != arch:
            model = CrispEncoder(light, 128).eval()
            yield f"{light} eager (other model)", lambda m=model: prepare_encoder(m, "eager"), \
                False
            if light.startswith("resnet"):  # EfficientNet-Lite: export > 6 min here
                yield f"{light} ONNX Runtime (other model)", \
                    lambda m=model: prepare_encoder(m, "onnx", threads), False
                yield f"{light} ONNX Runtime int8 (other model)", \
                    lambda m=model: prepare_encoder(m, "onnx_int8", threads), False


def timed(encoder: nn.Module, batch: torch.Tensor) -> float:
    started = time.perf_counter()
    encoder(batch)
    return time.perf_counter() - started


def speed_table(args: argparse.Namespace) -> str:
    torch.set_num_threads(args.threads)
    prints = torch.from_numpy(print_inputs(CANVAS, max(BATCHES), seed=1))  # not calibration's
    inputs = {b: prints[:b] for b in BATCHES}
    built, prep, exact = {}, {}, {}
    reference: dict[int, torch.Tensor] = {}
    for name, build, same_weights in options(args.arch, args.threads, args.skip_compile):
        started = time.perf_counter()
        encoder = build()
        with torch.inference_mode():
            out = encoder(inputs[8])  # first call: compilation happens here
        prep[name] = time.perf_counter() - started
        built[name] = encoder
        if not reference:
            reference[8] = out
        if same_weights:
            diff = (out - reference[8]).abs().max().item()
            cosine = nn.functional.cosine_similarity(out.flatten(1), reference[8].flatten(1))
            exact[name] = f"{diff:.1e} / {cosine.min().item():.6f}"
        print(f"  prepared {name} in {prep[name]:.1f} s", flush=True)
    seconds: dict[tuple[str, int], list[float]] = {}
    with torch.inference_mode():
        for _ in range(args.repeats):
            for name, encoder in built.items():
                for b in BATCHES:
                    seconds.setdefault((name, b), []).append(timed(encoder, inputs[b]) / b)
    base = next(iter(built))
    lines = [f"{args.arch} at {CANVAS[0]}x{CANVAS[1]}, {args.threads} thread(s), median of "
             f"{args.repeats} interleaved repeats",
             "| option | ms/query batch 1 | ms/query batch 8 | speed-up batch 1 / 8 | "
             "prepare s | max abs diff / min cosine vs current |", "|---|---|---|---|---|---|"]
    for name in built:
        ms = [statistics.median(seconds[(name, b)]) * 1e3 for b in BATCHES]
        ups = [statistics.median(seconds[(base, b)]) * 1e3 / m for b, m in zip(BATCHES, ms,
                                                                                   strict=True)]
        lines.append(f"| {name} | {ms[0]:.0f} | {ms[1]:.0f} | {ups[0]:.2f}x / {ups[1]:.2f}x | "
                     f"{prep[name]:.1f} | {exact.get(name, 'different weights')} |")
    lines.append(f"int8 dynamic quantised {int8_dynamic(CrispEncoder(args.arch, 128))[1]} layers "
                 "(it rewrites Linear layers only; this network has none)")
    return "\n".join(lines)


def local_batches(refdb: str, config: CrispTrainConfig) -> Batches:
    """CriSp's paired, augmented batches in process (what the Ray Data pipeline feeds DDP):
    one row per class, shuffled each epoch, decoded and augmented by `AugmentPairs`."""
    rows = class_rows(refdb, config.data.label, config.data.train_split)
    augment = AugmentPairs(config.aug, seed=config.optim.seed)
    rng = np.random.default_rng(config.optim.seed)
    batch_models = config.optim.batch_models

    def epoch() -> Iterator[dict]:
        order = rng.permutation(len(rows))
        for start in range(0, len(order) - batch_models + 1, batch_models):
            chosen = [rows[i] for i in order[start:start + batch_models]]
            batch = {name: np.array([row[name][0].as_py() for row in chosen], dtype=object)
                     for name in ("label", "depth", "print", "mask")}
            yield {k: torch.from_numpy(np.asarray(v)) for k, v in augment(batch).items()}
    return epoch


def quality(args: argparse.Namespace, work: str) -> str:
    data = os.path.join(work, f"quality-data-{args.quality_models}-{args.quality_queries}")
    if not os.path.exists(os.path.join(data, "queries", "manifest.json")):
        subprocess.run([sys.executable, "-m", "jobs.synth", "--out", data, "--models",
                        str(args.quality_models), "--instances", "2", "--queries",
                        str(args.quality_queries), "--seed", "5", "--height", "64", "--width",
                        "128", "--local"], cwd=REPO, check=True)
    config = CrispTrainConfig.model_validate({
        "data": {"refdb": f"{data}/references"}, "model": {"arch": "resnet18", "embed_dim": 32},
        "optim": {"steps": args.quality_steps, "batch_models": 8, "lr": 3e-4},
        "ray": {}, "mlflow": {}})
    torch.manual_seed(0)
    model = CrispEncoder(**config.model.model_dump())
    started = time.perf_counter()
    train_steps(model, make_optimizer(config, model.parameters()),
                local_batches(config.data.refdb, config), config)
    trained_s = time.perf_counter() - started
    model.eval()
    refdb, queries = open_dataset(f"{data}/references"), open_dataset(f"{data}/queries")
    cpu = torch.device("cpu")
    # As served: references encoded once by the float model (re-indexing), queries by each runtime.
    references = encode_references(prepare_encoder(model, "eager"), refdb, cpu)
    lines = [f"retrieval quality: resnet18 CriSp trained {args.quality_steps} steps in process "
             f"({trained_s:.0f} s), {args.quality_models} models x 2 instances at 64x128; "
             "references encoded eagerly, queries by each runtime",
             "| query encoder | hit@10 | standard error | mAP@10 | queries | same top-10 as eager "
             "| mean top-10 overlap with eager |", "|---|---|---|---|---|---|---|"]
    eager_top: list[list[str]] = []
    for name in ("eager", "onnx", "onnx_int8"):
        encoded = encode_queries(prepare_encoder(model, name, args.threads), queries, cpu)
        report = retrieval_report(encoded, references, k=10)
        top = [q["top10"] for q in report["per_query"]]
        eager_top = eager_top or top
        same = sum(a == b for a, b in zip(top, eager_top, strict=True))
        overlap = statistics.mean(len(set(a) & set(b)) / 10 for a, b in zip(top, eager_top,
                                                                            strict=True))
        hit, n = report["overall"]["hit@10"], report["overall"]["queries_with_targets"]
        lines.append(f"| {name} | {hit:.3f} | {math.sqrt(hit * (1 - hit) / n):.3f} | "
                     f"{report['overall']['mAP@10']:.3f} | {n} | {same}/{len(top)} | "
                     f"{overlap:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--threads", type=int, default=1, help="as a served encoder replica")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-compile", action="store_true",
                        help="leave out torch.compile (minutes of compilation on CPU)")
    parser.add_argument("--quality-steps", type=int, default=150)
    parser.add_argument("--quality-models", type=int, default=48)
    parser.add_argument("--quality-queries", type=int, default=96)
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "bench_encoder"))
    args = parser.parse_args()
    started = time.perf_counter()
    print(speed_table(args), flush=True)
    print(quality(args, args.work))
    print(f"whole run {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
