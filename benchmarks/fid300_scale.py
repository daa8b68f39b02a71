"""The accurate matcher at database scale: the served dense cascade against exhaustive dense
matching, on real crime-scene prints, at one or more gallery sizes.

    python -m benchmarks.fid300_scale --src DIR [--distractors N[,N…]] [--model DIR]
        [--out DIR] [--candidates N] [--probes N] [--workers N]

DIR is laid out like FID-300 (`references/`, `probes/`, `labels_dev.csv`). For each distractor
count N the references plus N synthetic distractors (clean prints of the project's generator,
rescaled to the references' physical scale; no probe's label) are indexed by `jobs.reindex
--dense` as a Ray job on a local cluster (`cluster up`), served by `jobs.serve_index`, and every
probe is posted to `POST /v1/search` with its mask and px/cm (the served default: the cascade).
Beside it, in this process, the exhaustive matcher: exact MCNCC of every probe against every
reference, from the same index's stored maps. Printed and written to OUT/fid300_scale.json per
size and path: the share of probes with the true reference at rank ≤ 12 (FID-300's top 1 % of
1,175, held fixed so sizes compare) and ≤ 59, hit@1, hit@10, seconds per query, and the first
stage's recall (the true reference among the cascade's exactly scored candidates).
Synthetic distractors may be easier to reject than real prints: the figures say so.

`--model`: the CriSp encoder whose cells the index also holds (unused by the cascade); left out,
a seeded random ResNet-18 encoder is written to OUT/encoder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import httpx
import numpy as np

from benchmarks.common import REPO
from benchmarks.fid300_data import FidData, load_fid
from shoematch.data.dataset import DatasetWriter, open_dataset
from shoematch.data.images import decode_image, encode_png
from shoematch.data.readers.placement import place_centred, scale
from shoematch.data.schema import REFERENCE_KIND, SOLE_LENGTH_CM
from shoematch.dense.matcher import DenseConfig, DenseMatcher
from shoematch.errors import ShoematchError
from shoematch.index.layout import read_current, read_manifest
from shoematch.index.reader import SearchIndex
from shoematch.log import get_logger

log = get_logger("benchmarks.fid300_scale")
TOP1, TOP5 = 12, 59  # FID-300's top 1 % / 5 % of 1,175 references, held fixed
K = 100


def write_encoder(path: str) -> str:
    """A seeded random CriSp encoder: the index format needs cells; the cascade does not."""
    import torch

    from shoematch.crisp.model import CrispEncoder, CrispEncoderConfig
    from shoematch.crisp.store import save_encoder

    if not os.path.exists(os.path.join(path, "config.json")):
        torch.manual_seed(0)
        config = CrispEncoderConfig(arch="resnet18", embed_dim=16)
        save_encoder(path, CrispEncoder(**config.model_dump()), config,
                     {"note": "random: only the index's cell component, unused by the cascade"})
    return path


def with_distractors(data: FidData, count: int, out: str) -> str:
    """The references plus `count` synthetic distractors at the references' scale, as one
    reference dataset (written once per count)."""
    if count == 0:
        return data.refdb
    uri = os.path.join(out, f"refs-{count}")
    if os.path.exists(os.path.join(uri, "manifest.json")):
        return uri
    synth = os.path.join(out, f"synth-{count}")
    refs = open_dataset(data.refdb, REFERENCE_KIND)
    canvas = refs.canvas
    if not os.path.exists(os.path.join(synth, "references", "manifest.json")):
        subprocess.run([sys.executable, "-m", "jobs.synth", "--out", synth, "--models",
                        str(count), "--instances", "1", "--queries", "1", "--seed", "300",
                        "--height", str(canvas.height), "--width", str(canvas.width),
                        "--local"], cwd=REPO, check=True)
    factor = data.px_per_cm / (canvas.width / SOLE_LENGTH_CM)  # synthetic → reference scale
    with DatasetWriter(uri, REFERENCE_KIND, canvas, "fid300+synthetic",
                       {**refs.manifest.params, "distractors": count}) as writer:
        writer.add(list(refs.iter_records()))
        for record in open_dataset(os.path.join(synth, "references")).iter_records():
            image = decode_image(record["print"], record["instance_id"])
            sole = decode_image(record["mask"], record["instance_id"])
            placed, _ = place_centred(scale(image, factor), canvas)
            mask, _ = place_centred(scale(sole, factor, "nearest"), canvas)
            model = f"distractor-{record['model_id']}"
            writer.add([{**record, "instance_id": f"distractor-{record['instance_id']}",
                         "model_id": model, "pattern_id": model, "print": encode_png(placed),
                         "mask": encode_png(mask), "depth": None, "photo": None,
                         "street_photo": None}])
    return uri


def first_rank(ranking: list[str], targets: list[str]) -> int | None:
    return next((i for i, model in enumerate(ranking, start=1) if model in targets), None)


def row(ranks: list[int | None], seconds: float) -> dict:
    def share(limit: int) -> float:
        return 100.0 * float(np.mean([r is not None and r <= limit for r in ranks]))

    return {f"rank<={TOP1}": share(TOP1), f"rank<={TOP5}": share(TOP5), "hit@1": share(1),
            "hit@10": share(10), "s_per_query": seconds, "ranks": ranks}


def exhaustive_and_recall(index_root: str, data: FidData, probes: list, n: int
                          ) -> tuple[dict, float]:
    """Exact MCNCC against every reference (the index's own maps), and the share of probes
    whose true reference is among the scan's `n` candidates."""
    index = SearchIndex.load(index_root)
    manifest = index.manifest
    assert manifest.dense is not None
    matcher = DenseMatcher(DenseConfig.model_validate(manifest.dense.config))
    ranks, recalled, seconds = [], 0, 0.0
    for i, probe in enumerate(probes):
        variants = [(f.numpy(), v.numpy())
                    for f, v in matcher.probe_variants(probe.image, probe.mask, data.px_per_cm)]
        started = time.perf_counter()
        ranked = index.cascade(variants, K, manifest.references)
        seconds += time.perf_counter() - started
        ranks.append(first_rank([m.model for m, _ in ranked], probe.targets))
        candidates = index.dense_scan(variants, n)[:n]
        recalled += any(c.model in probe.targets for c in candidates)
        if (i + 1) % 10 == 0:
            log.info("  exhaustive: %d/%d probes", i + 1, len(probes))
    return row(ranks, seconds / len(probes)), 100.0 * recalled / len(probes)


def served(url: str, data: FidData, probes: list, n: int | None) -> tuple[dict, list]:
    """Every probe over HTTP, one at a time, as an examiner's client sends it."""
    ranks, seconds, stages = [], 0.0, []
    queries = {r["query_id"]: r for r in open_dataset(data.queries).iter_records()}
    with httpx.Client(timeout=600) as client:
        for probe in probes:
            record = queries[probe.query_id]
            form = {"k": str(K), "px_per_cm": str(data.px_per_cm),
                    **({"candidates": str(n)} if n else {})}
            started = time.perf_counter()
            response = client.post(f"{url}/v1/search", data=form, files={
                "print": record["print"], "mask": record["mask"]})
            seconds += time.perf_counter() - started
            if response.status_code != 200:
                raise ShoematchError(f"{probe.query_id}: {response.status_code} "
                                     f"{response.text[:300]}")
            body = response.json()
            stages = body["stages"]
            ranks.append(first_rank([r["model_id"] for r in body["results"]], probe.targets))
    return row(ranks, seconds / len(probes)), stages


def measure(jobs, args: argparse.Namespace, data: FidData, probes: list, distractors: int,
            model: str) -> dict:
    refdb = with_distractors(data, distractors, args.out)
    index = os.path.join(os.path.abspath(args.out), f"index-{distractors}")
    if read_current(index) is None or read_manifest(index).dense is None:
        # One encoder actor, small batches: the dense backbone's activations at 20 px/cm take
        # ≈ 0.1 GiB per image, and a 24 GiB machine also holds the cluster and the evaluation.
        jobs.run("jobs.reindex", ["--model", model, "--refdb", os.path.abspath(refdb), "--out",
                                  index, "--shards", "4", "--dense", "--actors", "1",
                                  "--batch-size", "4"], timeout_s=14400)
    manifest = read_manifest(index)
    assert manifest.dense is not None and manifest.dense.scan is not None
    n = args.candidates or int(manifest.dense.scan.config["candidates"])
    from cluster.processes import free_port

    port = free_port()
    jobs.run("jobs.serve_index", ["--index", index, "--slots", "2", "--port", str(port),
                                  "--set", "shard_timeout_s=120"], timeout_s=600)
    try:
        url = f"http://127.0.0.1:{port}"
        served(url, data, probes[:1], args.candidates)  # loads the encoder and the maps
        served_row, stages = served(url, data, probes, args.candidates)
    finally:
        jobs.run("jobs.serve_index", ["--shutdown"], timeout_s=120)
    exhaustive_row, recall = exhaustive_and_recall(index, data, probes, n)
    return {"references": manifest.references, "distractors": distractors,
            "candidates": n, "first_stage_recall": recall, "stages": stages,
            "bytes_per_reference": {"dense": manifest.dense.bytes_per_reference,
                                    "scan": manifest.dense.scan.bytes_per_reference},
            "exhaustive": exhaustive_row, "served": served_row}


def print_rows(results: list[dict], probes: int) -> None:
    print(f"\n{probes} probes; rank ≤ {TOP1} is FID-300's top 1 % of 1,175 references, held "
          "fixed; distractors are synthetic (possibly easier to reject than real prints)")
    print(f"| references | path | rank ≤ {TOP1} | rank ≤ {TOP5} | hit@1 | hit@10 | s/query "
          "| first-stage recall |\n|---|---|---|---|---|---|---|---|")
    for result in results:
        for path in ("exhaustive", "served"):
            r = result[path]
            recall = f"{result['first_stage_recall']:.1f} (N={result['candidates']})" \
                if path == "served" else ""
            print(f"| {result['references']:,} | {path} | {r[f'rank<={TOP1}']:.1f} | "
                  f"{r[f'rank<={TOP5}']:.1f} | {r['hit@1']:.1f} | {r['hit@10']:.1f} | "
                  f"{r['s_per_query']:.2f} | {recall} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", default="../shared/data/fid300")
    parser.add_argument("--distractors", default="0", help="comma-separated counts")
    parser.add_argument("--model", help="CriSp encoder for the index's cells")
    parser.add_argument("--out", default="runs/fid300_scale")
    parser.add_argument("--candidates", type=int, help="the cascade's N (default: the index's)")
    parser.add_argument("--probes", type=int, help="the first N probes only (a quick look)")
    parser.add_argument("--workers", type=int, default=1, help="local Ray worker nodes")
    args = parser.parse_args(argv)
    from cluster.local import bring_up, tear_down
    from jobs.demo import Jobs

    started = time.monotonic()
    os.makedirs(args.out, exist_ok=True)
    data = load_fid(args.src, os.path.join(args.out, "data"))
    probes = data.probes[:args.probes] if args.probes else data.probes
    model = args.model or write_encoder(os.path.abspath(os.path.join(args.out, "encoder")))
    state = bring_up(os.path.join(args.out, "cluster"), workers=args.workers)
    try:
        jobs = Jobs(state.dashboard_url, state.env())
        results = [measure(jobs, args, data, probes, int(count), model)
                   for count in args.distractors.split(",")]
    finally:
        tear_down(state)
    print_rows(results, len(probes))
    minutes = (time.monotonic() - started) / 60
    print(f"\nwhole command: {minutes:.1f} min")
    with open(os.path.join(args.out, "fid300_scale.json"), "w") as handle:
        json.dump({"probes": [p.query_id for p in probes], "results": results,
                   "minutes": minutes}, handle, indent=2)


if __name__ == "__main__":
    main()
