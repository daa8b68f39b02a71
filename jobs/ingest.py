"""Turn real data into shoematch datasets.

    python -m jobs.ingest --format {crisp,fid300,folder} --src PATH --out DIR|s3://bucket/prefix

Writes OUT/references and, when the source has queries, OUT/queries. Nothing is published until
every record of both has been read, decoded and validated: a bad file names itself in the error
and the previous datasets at OUT (if any) stay as they were.
"""

from __future__ import annotations

import argparse
import posixpath

from jobs.common import log, run_main
from shoematch.data.dataset import DatasetWriter, Manifest, commit_manifest
from shoematch.data.readers import READERS
from shoematch.data.schema import QUERY_KIND, REFERENCE_KIND, Canvas
from shoematch.data.synth_build import QUERIES_DIR, REFERENCES_DIR
from shoematch.log import progress


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.ingest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--format", required=True, choices=sorted(READERS))
    parser.add_argument("--src", required=True, help="source folder")
    parser.add_argument("--out", required=True, help="output root: a directory or s3://bucket/prefix")
    parser.add_argument("--height", type=int, default=192, help="canvas height")
    parser.add_argument("--width", type=int, default=384, help="canvas width")
    parser.add_argument("--shard-rows", type=int, default=256)
    parser.add_argument("--scale", type=float, default=None,
                        help="fid300 only: one scale for every image (default 0.5 = 10 px/cm)")
    args = parser.parse_args(argv)
    if args.scale is not None and args.format != "fid300":
        parser.error("--scale applies to --format fid300 only")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    options = {"scale": args.scale} if args.scale is not None else {}
    output = READERS[args.format](args.src, canvas=Canvas(args.height, args.width), **options)
    parts = [
        (REFERENCE_KIND, REFERENCES_DIR, output.references, output.reference_count),
        (QUERY_KIND, QUERIES_DIR, output.queries, output.query_count),
    ]
    writers: list[DatasetWriter] = []
    staged: list[tuple[str, Manifest]] = []
    try:
        for kind, sub, records, count in parts:
            if records is None or count == 0:
                continue
            uri = posixpath.join(args.out.rstrip("/"), sub)
            writer = DatasetWriter(uri, kind, output.canvas, source=args.format,
                                   params={"src": args.src, **output.params},
                                   shard_rows=args.shard_rows)
            writers.append(writer)
            writer.add(progress(records, count, f"{kind}", log))
            staged.append((uri, writer.finish()))
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    for uri, manifest in staged:
        commit_manifest(uri, manifest)
        log.info("%s: %d %s in %d shard(s)", uri, manifest.count, manifest.kind,
                 len(manifest.shards))
    return 0


if __name__ == "__main__":
    run_main(main)
