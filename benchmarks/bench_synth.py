"""Throughput of the synthetic generator on one core, with every modality PNG-encoded.

    python -m benchmarks.bench_synth [--models 40] [--instances 3] [--queries 60]

Prints reference instances/s (and queries/s) in a single process, then where the time goes:
tread rasterisation (once per model), instance rendering, PNG encoding.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

from shoematch.data.images import encode_png
from shoematch.data.schema import Canvas
from shoematch.data.synth import SynthSpec, generate_query_chunk, generate_reference_chunk
from shoematch.data.synth.patterns import make_model
from shoematch.data.synth.render import render_reference
from shoematch.data.synth.tread import render_tread


def breakdown(spec: SynthSpec) -> dict[str, float]:
    """Seconds spent per stage (and per encoded field) generating every reference instance."""
    spent: dict[str, float] = defaultdict(float)
    for index in range(spec.models):
        start = time.perf_counter()
        model = make_model(spec, index)
        tread = render_tread(model, spec.canvas)
        spent["tread (per model)"] += time.perf_counter() - start
        for instance in range(spec.instances):
            start = time.perf_counter()
            images = render_reference(spec.seed, model, tread, instance, spec.canvas)
            spent["render"] += time.perf_counter() - start
            for field, image in images.items():
                start = time.perf_counter()
                encode_png(image)
                spent[f"encode {field}"] += time.perf_counter() - start
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=40)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    spec = SynthSpec(models=args.models, instances=args.instances, queries=args.queries,
                     seed=args.seed, canvas=Canvas(args.height, args.width))
    generate_reference_chunk(spec, range(1))  # warm-up: imports, fonts, caches
    start = time.perf_counter()
    records = generate_reference_chunk(spec, range(spec.models))
    elapsed = time.perf_counter() - start
    print(f"canvas {args.width}x{args.height}, {spec.models} models x {spec.instances} instances,"
          f" all modalities, 1 process")
    print(f"references: {len(records) / elapsed:.1f} instances/s per core "
          f"({1000 * elapsed / len(records):.2f} ms each)")
    if spec.queries:
        start = time.perf_counter()
        queries = generate_query_chunk(spec, range(spec.queries))
        elapsed_q = time.perf_counter() - start
        print(f"queries: {len(queries) / elapsed_q:.1f} queries/s per core")
    spent = breakdown(spec)
    instances = spec.models * spec.instances
    total = sum(spent.values())
    spent["encode (all)"] = sum(s for k, s in spent.items() if k.startswith("encode"))
    print("breakdown per reference instance:")
    for stage, seconds in spent.items():
        share = 100 * seconds / total
        print(f"  {stage:<22} {1000 * seconds / instances:6.2f} ms  {share:5.1f} %")


if __name__ == "__main__":
    main()
