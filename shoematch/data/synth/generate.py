"""Records: reference instances per model and queries, PNG-encoded in the schema's field names.

Every model, instance and query draws from its own seeded stream, so a chunk's records are the
same however the index range is split across calls, processes or Ray tasks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from shoematch.data.images import encode_png
from shoematch.data.synth.degrade import QueryPlan, query_plan, render_query
from shoematch.data.synth.patterns import Model, make_model, pattern_members
from shoematch.data.synth.render import pose, render_reference
from shoematch.data.synth.spec import (
    TAG_QUERY,
    SynthSpec,
    instance_id,
    model_id,
    query_id,
    rng_for,
)
from shoematch.data.synth.tread import Tread, render_tread
from shoematch.errors import ConfigError

SOURCE = "synthetic"


def _check_range(indices: range, total: int, what: str) -> None:
    if len(indices) and (indices.start < 0 or indices[-1] >= total):
        raise ConfigError(f"{what} {indices.start}..{indices[-1]} outside 0..{total - 1}")


def generate_reference_chunk(spec: SynthSpec, model_indices: range) -> list[dict[str, Any]]:
    """All `spec.instances` reference records of each model in `model_indices`."""
    _check_range(model_indices, spec.models, "models")
    records = []
    for index in model_indices:
        model = make_model(spec, index)
        tread = render_tread(model, spec.canvas)
        descriptors = model.recipe.descriptors
        for instance in range(spec.instances):
            images = render_reference(spec.seed, model, tread, instance, spec.canvas)
            records.append({
                "instance_id": instance_id(index, instance),
                "model_id": model.model_id,
                "pattern_id": model.pattern_id,
                **{field: encode_png(image) for field, image in images.items()},
                "descriptors": list(descriptors),
                "attributes": model.attributes,
                "source": SOURCE,
                "split": model.split,
            })
    return records


def query_images(spec: SynthSpec, plan: QueryPlan, model: Model,
                 tread: Tread) -> tuple[np.ndarray, np.ndarray]:
    """(print, mask) arrays of the query `plan` describes."""
    posed = pose(tread, spec.canvas, spec.seed, model.index, plan.instance)
    rng = rng_for(spec.seed, TAG_QUERY, plan.index, 1)
    return render_query(posed, plan, rng, spec.canvas)


def iter_queries(spec: SynthSpec, query_indices: range
                 ) -> Iterator[tuple[QueryPlan, Model, np.ndarray, np.ndarray]]:
    """(plan, source model, print, mask) of each query in `query_indices`, as arrays."""
    _check_range(query_indices, spec.queries, "queries")
    treads: dict[int, tuple[Model, Tread]] = {}
    for index in query_indices:
        plan = query_plan(spec, index)
        if plan.model not in treads:
            model = make_model(spec, plan.model)
            treads[plan.model] = (model, render_tread(model, spec.canvas))
        model, tread = treads[plan.model]
        yield (plan, model, *query_images(spec, plan, model, tread))


def generate_query_chunk(spec: SynthSpec, query_indices: range) -> list[dict[str, Any]]:
    """Query records `query_indices`: each a degraded print of a held-out instance whose targets
    are every model of its source model's pattern."""
    records = []
    for plan, model, print_image, mask in iter_queries(spec, query_indices):
        records.append({
            "query_id": query_id(plan.index),
            "print": encode_png(print_image),
            "mask": encode_png(mask),
            "targets": [model_id(m) for m in pattern_members(spec, model.pattern)],
            "category": plan.category,
            "seen": model.split == "train",
            "source": SOURCE,
            "split": plan.split,
        })
    return records
