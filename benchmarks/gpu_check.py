"""Every GPU path once, one table (`benchmarks/gpu_check.sh` runs this within 8 minutes).

    python -m benchmarks.gpu_check [--tiny] [--work DIR]

Steps: CriSp training (Ray Train DDP, 1 worker: NCCL on a GPU, gloo on CPU), crime-scene
augmentation on Ray Data actors (one GPU each when present), re-index (Ray Data encoder actors),
the Serve query encoder's latency, the shard scan (torch on the GPU, float16 and int8 codes,
against the CPU numba kernel of `shoematch.index`), and the dense re-ranker. Without CUDA every
step runs on CPU at tiny sizes (`--tiny` is implied) and the table says which GPU figures were
skipped. Timings on a GPU synchronise the device before the clock is read.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from benchmarks.common import REPO, class_rows, random_encoder, training_span


@dataclass
class Sizes:
    canvas: tuple[int, int]
    models: int
    arch: str
    train_steps: int
    batch_models: int
    scan_references: int
    dense_gallery: int
    cascade_references: int


FULL = Sizes((192, 384), 120, "resnet50", 30, 8, 200_000, 200, 20_000)
TINY = Sizes((64, 128), 12, "resnet18", 3, 4, 4_000, 8, 256)


@dataclass
class Row:
    step: str
    device: str
    figure: str
    note: str = ""


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock(fn: Callable[[], object], device: torch.device, repeats: int = 3) -> float:
    """Median seconds of `fn` after one warm-up call, the device synchronised around each."""
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        started = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def synth(work: str, sizes: Sizes) -> str:
    out = os.path.join(work, "data")
    if not os.path.exists(os.path.join(out, "queries", "manifest.json")):
        subprocess.run([sys.executable, "-m", "jobs.synth", "--out", out, "--models",
                        str(sizes.models), "--instances", "2", "--queries", "8", "--seed", "9",
                        "--height", str(sizes.canvas[0]), "--width", str(sizes.canvas[1]),
                        "--local"], cwd=REPO, check=True, capture_output=True)
    return out


def crisp_config(work: str, data: str, sizes: Sizes, gpu: bool):
    from shoematch.crisp.config import CrispTrainConfig

    return CrispTrainConfig.model_validate({
        "data": {"refdb": f"{data}/references"},
        "model": {"arch": sizes.arch, "embed_dim": 64},
        "optim": {"steps": sizes.train_steps, "batch_models": sizes.batch_models},
        "schedule": {"log_every": 1, "checkpoint_every": sizes.train_steps},
        "ray": {"num_workers": 1, "use_gpu": gpu, "cpus_per_worker": 1, "aug_actors": 1,
                "aug_actor_cpus": 0.5, "aug_batch_size": sizes.batch_models,
                "group_partitions": 2 if sizes is TINY else None,
                "storage_path": os.path.join(work, "ray"), "run_name": f"gpu-check-{os.getpid()}"},
        "mlflow": {"tracking_uri": f"sqlite:///{work}/mlflow.db", "experiment": "gpu_check",
                   "registered_model": "gpu-check-crisp"}})


def train_step(work: str, data: str, sizes: Sizes, device: torch.device) -> Row:
    import mlflow

    from shoematch.ray.crisp import train_crisp

    config = crisp_config(work, data, sizes, device.type == "cuda")
    train_crisp(config)
    runs = mlflow.search_runs(experiment_names=["gpu_check"],
                              filter_string=f"tags.mlflow.runName = '{config.ray.run_name}'")
    rate = float(runs["metrics.images_per_s"].iloc[0])  # the last logging window
    span, steps, images = training_span(config.mlflow.tracking_uri, "gpu_check",
                                        config.ray.run_name)
    backend = "nccl" if device.type == "cuda" else "gloo"
    return Row("CriSp training (Ray Train DDP, 1 worker)", device.type,
               f"{rate:.1f} images/s (last step); {images / max(span, 1e-9):.1f} images/s over "
               f"steps 2–{steps}", f"{backend}, {sizes.arch}, {sizes.train_steps} steps, every "
               "epoch in one Ray Data pass")


def augment_step(work: str, data: str, sizes: Sizes, device: torch.device) -> Row:
    """The training pipeline's augmentation stage alone: `AugmentPairs` on a Ray Data actor
    (one GPU when present) over every class row, one epoch."""
    import pyarrow as pa
    import ray

    from shoematch.augment.config import AugConfig
    from shoematch.crisp.data import AugmentPairs

    rows = class_rows(f"{data}/references")
    dataset = ray.data.from_arrow(pa.concat_tables(rows)).map_batches(
        AugmentPairs, fn_constructor_kwargs={"aug": AugConfig().model_dump(), "seed": 0},
        batch_size=sizes.batch_models, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=1),
        num_gpus=1 if device.type == "cuda" else 0, num_cpus=0.5)
    started, images = time.perf_counter(), 0
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        images += 2 * len(batch["label"])  # two augmented prints per class row
    seconds = time.perf_counter() - started
    return Row("augmentation (Ray Data actor, kornia)", device.type,
               f"{images / seconds:.1f} images/s", f"{images} prints, one epoch, actor start-up "
               "included")


def reindex_step(work: str, data: str, sizes: Sizes, device: torch.device) -> Row:
    from shoematch.index.reindex import ReindexSettings, make_plan, run_reindex
    from shoematch.ray.reindex import RayDataExecutor

    model = random_encoder(os.path.join(work, f"encoder-{sizes.arch}"), sizes.arch)
    plan = make_plan(ReindexSettings(model, f"{data}/references", os.path.join(work, "index"),
                                     shards=2, batch_size=16))
    result = run_reindex(plan, RayDataExecutor())
    return Row("re-index (Ray Data encoder actors)", device.type,
               f"{result.images_per_s:.1f} images/s", f"{result.encoded} references")


def encoder_step(work: str, sizes: Sizes, device: torch.device) -> Row:
    from serve.encoder import QueryEncoder

    model = random_encoder(os.path.join(work, f"encoder-{sizes.arch}"), sizes.arch)
    encoder = QueryEncoder.func_or_class(1, 8, 0.0)
    rng = np.random.default_rng(0)
    figures = []
    # One event loop for every call, as in a replica: a loop per call would start a new worker
    # thread each time, and on a GPU each new thread pays for its own CUDA library handles.
    loop = asyncio.new_event_loop()
    try:
        for batch in (1, 8):
            requests = [(model, rng.integers(0, 256, sizes.canvas, dtype=np.uint8),
                         np.ones(sizes.canvas, dtype=bool)) for _ in range(batch)]
            seconds = clock(lambda r=requests: loop.run_until_complete(encoder.encode_batch(r)),
                            device)
            figures.append(f"{seconds / batch * 1e3:.1f}")
    finally:
        loop.close()
    return Row("Serve query encoder", device.type, f"{' / '.join(figures)} ms/query at batch 1 / 8",
               f"{sizes.arch}, runtime {encoder.runtime if device.type == 'cpu' else 'eager'}")


def int8_codes(cells: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 codes [S, n, C] and one scale per reference cell [S, n] (cell ≈ scale · code)."""
    scales = cells.float().abs().amax(-1).clamp_min(1e-12) / 127
    return (cells.float() / scales[..., None]).round().to(torch.int8), scales


def scan_rows(sizes: Sizes, device: torch.device) -> list[Row]:
    """Top-100 of one query (40 % visible cells) over random unit cells: the index's exact
    CPU search (numba int8 scan + exact re-scoring), the same exact search with its scan and
    re-scoring on `device`, and plain torch scans on `device` of float16 cells and int8 codes."""
    from shoematch.index.device_search import DeviceShardSearcher
    from shoematch.index.search import ShardSearcher

    grid, dim, n = 72, 128, sizes.scan_references
    generator = torch.Generator().manual_seed(0)
    cells = torch.nn.functional.normalize(torch.randn(grid, n, dim, generator=generator),
                                          dim=-1).half()
    visible = torch.randperm(grid, generator=generator)[: int(grid * 0.4)].sort().values
    query = torch.zeros(grid, dim)
    query[visible] = torch.nn.functional.normalize(
        torch.randn(len(visible), dim, generator=generator), dim=-1)
    models = [f"m{i}" for i in range(n)]
    searcher = ShardSearcher(cells, models)
    cpu_s = clock(lambda: searcher.search(query[None], 100), torch.device("cpu"))
    rows = [Row("shard scan, index search on CPU (numba int8 + exact)", "cpu",
                f"{cpu_s * 1e3:.1f} ms/query", f"{n} refs, 40 % visible")]
    on_device = DeviceShardSearcher(cells, models, device)
    same = [h.model for h in on_device.search(query[None], 100)[0]] == \
        [h.model for h in searcher.search(query[None], 100)[0]]
    device_s = clock(lambda: on_device.search(query[None], 100), device)
    rows.append(Row("index search on the device (torch int8 bounds + exact re-score)",
                    device.type, f"{device_s * 1e3:.2f} ms/query ({cpu_s / device_s:.1f}x the "
                    "CPU search)", f"same top-100 as the CPU search: {same}"))
    exact = torch.einsum("snc,sc->n", cells[visible].float(), query[visible])
    dtype = torch.float16 if device.type == "cuda" else torch.float32  # no fast fp16 on CPU
    on = cells[visible].to(device, dtype)
    q = query[visible].to(device, dtype)
    codes, scales = (t.to(device) for t in int8_codes(cells[visible]))

    def float_scan() -> torch.Tensor:
        return torch.einsum("snc,sc->n", on, q).float()

    def int8_scan() -> torch.Tensor:
        return (torch.einsum("snc,sc->sn", codes.to(dtype), q) * scales.to(dtype)).sum(0).float()

    for name, scan in ((str(dtype).replace("torch.", ""), float_scan), ("int8 codes", int8_scan)):
        error = float((scan().cpu() - exact).abs().max())
        seconds = clock(lambda f=scan: torch.topk(f(), 100).indices, device)
        rows.append(Row(f"shard scan, torch {name} + top-100", device.type,
                        f"{seconds * 1e3:.2f} ms/query ({cpu_s / seconds:.1f}x the CPU search)",
                        f"max |score error| {error:.1e}"))
    return rows


def dense_step(data: str, sizes: Sizes, device: torch.device) -> Row:
    from shoematch.data.dataset import open_dataset
    from shoematch.data.images import decode_image
    from shoematch.dense.component import dataset_px_per_cm
    from shoematch.dense.matcher import DenseConfig, DenseMatcher

    refs = open_dataset(f"{data}/references")
    px_per_cm = dataset_px_per_cm(refs)
    prints = [decode_image(r["print"], "print") for _, r in
              zip(range(sizes.dense_gallery), refs.iter_records(), strict=False)]
    matcher = DenseMatcher(DenseConfig(), device)
    gallery = matcher.gallery(prints, px_per_cm)
    probe = prints[0]
    seconds = clock(lambda: matcher.scores(probe, probe > 32, px_per_cm, gallery), device)
    config = matcher.config
    return Row(f"dense re-ranker (MCNCC, {config.backbone} block {config.block}, "
               f"{config.px_per_cm:g} px/cm)", device.type,
               f"{seconds * 1e3:.0f} ms/probe", f"{len(prints)} references")


def cascade_rows(sizes: Sizes, device: torch.device) -> list[Row]:
    """The dense cascade's kernels on random maps of the default matcher's grid (80 × 24 × 48):
    the scan over every reference and exact MCNCC over 200 candidates, in references/s."""
    from shoematch.dense.mcncc import ReferenceSpectra, mcncc_scores
    from shoematch.dense.scan import ScanGallery, fit_projection, reduce_references, scan_probe

    generator = torch.Generator().manual_seed(0)
    maps = torch.randn(sizes.cascade_references, 80, 24, 48, generator=generator)
    projection = fit_projection(maps[:64], 16)
    gallery = ScanGallery(torch.from_numpy(reduce_references(maps, projection, 2)).to(device),
                          (12, 24))
    visible = torch.zeros(24, 48, dtype=torch.bool)
    visible[:, 10:30] = True
    probe = scan_probe(maps[0], visible, projection, 2, (24, 48))
    scan_s = clock(lambda: gallery.scores([probe], 0.5), device)
    candidates = ReferenceSpectra(maps[:200].to(device))
    features = maps[0].to(device)
    exact_s = clock(lambda: mcncc_scores(features, visible.to(device), candidates), device)
    return [Row("cascade scan (16 channels, 2×2 cells)", device.type,
                f"{sizes.cascade_references / scan_s:,.0f} references/s",
                f"{scan_s * 1e3:.0f} ms for {sizes.cascade_references:,} references"),
            Row("cascade exact pass (MCNCC, 80 × 24 × 48 maps)", device.type,
                f"{200 / exact_s:,.0f} references/s", f"{exact_s * 1e3:.0f} ms for 200")]


STEPS = ("training", "augmentation", "re-index", "encoder", "scan", "dense", "cascade")
NEED_DATA = {"training", "augmentation", "re-index", "dense"}  # the synthetic references
NEED_RAY = {"training", "augmentation", "re-index"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (implied without CUDA)")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "gpu_check"))
    parser.add_argument("--only", default=",".join(STEPS), help="comma-separated steps to run "
                        f"(a rerun of those that failed), of: {', '.join(STEPS)}")
    args = parser.parse_args()
    only = args.only.split(",")
    if unknown := sorted(set(only) - set(STEPS)):
        parser.error(f"--only: unknown step(s) {', '.join(unknown)}; steps: {', '.join(STEPS)}")
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    sizes = TINY if args.tiny or not cuda else FULL
    os.makedirs(args.work, exist_ok=True)
    started = time.perf_counter()
    data = synth(args.work, sizes) if NEED_DATA.intersection(only) else ""
    if NEED_RAY.intersection(only):
        from shoematch.ray.cluster import init_ray

        init_ray(local_cpus=4)  # logical CPUs: the trainer and its data actors fit
    rows: list[Row] = []
    steps: list[tuple[str, Callable[[], list[Row] | Row]]] = [
        ("training", lambda: train_step(args.work, data, sizes, device)),
        ("augmentation", lambda: augment_step(args.work, data, sizes, device)),
        ("re-index", lambda: reindex_step(args.work, data, sizes, device)),
        ("encoder", lambda: encoder_step(args.work, sizes, device)),
        ("scan", lambda: scan_rows(sizes, device)),
        ("dense", lambda: dense_step(data, sizes, device)),
        ("cascade", lambda: cascade_rows(sizes, device)),
    ]
    failed = []
    for name, step in steps:
        if name not in only:
            continue
        step_started = time.perf_counter()
        try:
            result = step()
        except Exception as exc:  # one broken path must not hide the others' figures
            failed.append(name)
            result = Row(name, device.type, "FAILED", f"{type(exc).__name__}: {exc}"[:200])
        step_rows = result if isinstance(result, list) else [result]
        for row in step_rows:
            row.note += f" ({time.perf_counter() - step_started:.0f} s)"
        rows.extend(step_rows)
        # Each figure as soon as it is known: a run stopped at its time limit keeps them.
        print(f"  {name} done: " + "; ".join(r.figure for r in step_rows), flush=True)
    print(f"\n{'GPU: ' + torch.cuda.get_device_name(device) if cuda else 'no CUDA device'}; "
          f"{'tiny' if sizes is TINY else 'full'} sizes; {time.perf_counter() - started:.0f} s")
    print("| step | device | figure | note |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row.step} | {row.device} | {row.figure} | {row.note.strip()} |")
    if not cuda:
        print("skipped (no CUDA): NCCL training, GPU augmentation actors, GPU re-index, GPU "
              "encoder, GPU exact search and scans (float16/int8), GPU dense re-ranker and cascade "
              "kernels — each ran on CPU above")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
