"""Plans and builds a synthetic reference db + query set as independent shard tasks.

Each task generates a fixed slice of models (or queries) and writes one shard, so the work can
run in-process or as Ray tasks and gives byte-identical shards either way. The datasets are
published (manifests written) only after every shard of both exists.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shoematch.data.dataset import (
    Manifest,
    ShardInfo,
    commit_manifest,
    discard_write,
    write_shard,
)
from shoematch.data.schema import QUERY_KIND, REFERENCE_KIND
from shoematch.data.synth import (
    SynthSpec,
    generate_query_chunk,
    generate_reference_chunk,
    write_contact_sheet,
)
from shoematch.storage import new_write_id, open_store

REFERENCES_DIR = "references"
QUERIES_DIR = "queries"
CONTACT_SHEET = "contact_sheet.png"


@dataclass(frozen=True)
class ShardTask:
    kind: str
    dataset_uri: str
    name: str
    start: int
    stop: int


def plan(spec: SynthSpec, out: str, shard_models: int, shard_queries: int,
         write_id: str) -> list[ShardTask]:
    """The shard tasks for `spec`: slices of models for references, of queries for queries."""
    tasks = []
    for kind, sub, total, step in (
        (REFERENCE_KIND, REFERENCES_DIR, spec.models, shard_models),
        (QUERY_KIND, QUERIES_DIR, spec.queries, shard_queries),
    ):
        uri = posixpath.join(out.rstrip("/"), sub)
        for index, start in enumerate(range(0, total, step)):
            tasks.append(ShardTask(kind, uri, f"{write_id}-{index:05d}", start,
                                   min(start + step, total)))
    return tasks


def build_shard(spec: SynthSpec, task: ShardTask) -> ShardInfo:
    """Generate one slice and write it as a shard (validated against the schema)."""
    generate = generate_reference_chunk if task.kind == REFERENCE_KIND else generate_query_chunk
    records = generate(spec, range(task.start, task.stop))
    return write_shard(task.dataset_uri, task.kind, task.name, records, spec.canvas)


def spec_params(spec: SynthSpec) -> dict:
    return {"generator": "shoematch.synth", **dataclasses.asdict(spec),
            "px_per_cm": spec.canvas.sole_px_per_cm}


def publish(spec: SynthSpec, tasks: list[ShardTask], shards: list[ShardInfo],
            write_id: str) -> dict[str, Manifest]:
    """Write the manifests (references first) once all shards exist."""
    manifests = {}
    for kind in (REFERENCE_KIND, QUERY_KIND):
        pairs = [(t, s) for t, s in zip(tasks, shards, strict=True) if t.kind == kind]
        if not pairs:
            continue
        uri = pairs[0][0].dataset_uri
        manifest = Manifest(kind, spec.canvas, [s for _, s in pairs], "synthetic",
                            spec_params(spec), write_id=write_id)
        commit_manifest(uri, manifest)
        manifests[kind] = manifest
    return manifests


def abandon(tasks: Iterable[ShardTask], write_id: str) -> None:
    for uri in {t.dataset_uri for t in tasks}:
        discard_write(uri, write_id)


def write_sheet(spec: SynthSpec, out: str, models: int = 8) -> str:
    """Write the contact sheet beside the datasets (uploading it when `out` is on S3)."""
    store = open_store(out)
    if store.bucket:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, CONTACT_SHEET)
            write_contact_sheet(spec, local, models=min(models, spec.models))
            with open(local, "rb") as handle:
                store.write_bytes(CONTACT_SHEET, handle.read())
    else:
        os.makedirs(store.root, exist_ok=True)
        write_contact_sheet(spec, store.path(CONTACT_SHEET), models=min(models, spec.models))
    return store.child_uri(CONTACT_SHEET)


def build(spec: SynthSpec, out: str, shard_models: int, shard_queries: int,
          run_tasks: Callable[[list[ShardTask]], list[ShardInfo]]) -> dict[str, Manifest]:
    """Plan, run every shard task with `run_tasks`, publish; on failure leave nothing visible."""
    open_store(out).check()
    write_id = new_write_id()
    tasks = plan(spec, out, shard_models, shard_queries, write_id)
    try:
        shards = run_tasks(tasks)
    except BaseException:
        abandon(tasks, write_id)
        raise
    return publish(spec, tasks, shards, write_id)
