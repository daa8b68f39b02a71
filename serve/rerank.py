"""Serve's dense re-ranking of `POST /v1/search` (`rerank=N`, optional `px_per_cm`).

The cell stage's top-N unique models are re-ranked by the dense (MCNCC) score of each one's best
instance, with `shoematch.dense.rerank` — the function `jobs.evaluate --matcher cells+dense`
uses, so both rank a query alike. The probe's variant features are computed once (QueryEncoder);
each shard slot scores the candidates whose maps it holds, so reference maps never travel.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

import numpy as np

from shoematch.data.readers.placement import place_centred, scale
from shoematch.data.schema import Canvas
from shoematch.dense.rerank import rerank
from shoematch.errors import IndexComponentMissing, QueryError
from shoematch.index.layout import IndexManifest
from shoematch.index.reader import Match, slot_shards

Ask = Callable[..., Awaitable]
MAX_RESAMPLE = 4.0  # the most a print's scale may differ from the index's, either way


def check_rerank(manifest: IndexManifest, n: int, max_n: int) -> None:
    """A re-rank request the index can serve: 0 (off) ≤ N ≤ max_n, dense maps present."""
    if not 0 <= n <= max_n:
        raise QueryError(f"rerank must be between 0 (off) and {max_n}, got {n}")
    if n and manifest.dense is None:
        raise IndexComponentMissing(
            f"rerank={n} asked of index version {manifest.version}, which has no dense feature "
            "maps: re-index with `jobs.reindex --dense`, or send rerank=0")


def check_scale(manifest: IndexManifest, px_per_cm: float | None) -> None:
    """A print scale the index can resample from (None: the print is at the index's scale):
    within a factor MAX_RESAMPLE of the index's, beyond which a print is either mostly
    interpolated pixels or shrunk below its tread detail."""
    if px_per_cm is None:
        return
    if not math.isfinite(px_per_cm) or px_per_cm <= 0:
        raise QueryError(f"px_per_cm must be a positive number, got {px_per_cm}")
    if manifest.px_per_cm is None:
        raise QueryError(f"px_per_cm={px_per_cm:g} given, but index version {manifest.version} "
                         "records no physical scale to resample the print to")
    low, high = manifest.px_per_cm / MAX_RESAMPLE, manifest.px_per_cm * MAX_RESAMPLE
    if not low <= px_per_cm <= high:
        raise QueryError(f"px_per_cm={px_per_cm:g} is outside what index version "
                         f"{manifest.version} ({manifest.px_per_cm:g} px/cm) resamples from: "
                         f"{low:g} to {high:g}")


def to_index_scale(image: np.ndarray, mask: np.ndarray, px_per_cm: float,
                   manifest: IndexManifest) -> tuple[np.ndarray, np.ndarray]:
    """Print and visible mask resampled from `px_per_cm` to the index's scale and centred on its
    canvas (cropping what lies beyond), so both stages compare at one physical size."""
    assert manifest.px_per_cm is not None
    factor = manifest.px_per_cm / px_per_cm
    canvas = Canvas(manifest.canvas["height"], manifest.canvas["width"])
    placed, _ = place_centred(scale(image, factor), canvas)
    visible, _ = place_centred(scale(mask.astype(np.uint8) * 255, factor, "nearest"), canvas)
    if not (visible > 127).any():
        raise QueryError(f"at {px_per_cm:g} px/cm the print's visible region vanishes when "
                         f"resampled to the index's {manifest.px_per_cm:g} px/cm")
    return placed, visible > 127


async def probe_variants(encoder, manifest: IndexManifest, image: np.ndarray,
                         mask: np.ndarray) -> list:
    """The probe's dense variant features at the index's scale (400 when unmatchable)."""
    assert manifest.dense is not None
    answer = await encoder.dense_probe.remote(manifest.dense.config, image, mask,
                                              manifest.px_per_cm)
    if "error" in answer:
        raise QueryError(f"dense re-ranking: {answer['error']}")
    return answer["variants"]


async def rerank_matches(ask: Ask, slots: int, manifest: IndexManifest, matches: list[Match],
                         variants: list, n: int) -> list[tuple[Match, float | None]]:
    """`matches` (cell order) with the first `n` re-ranked by the dense score of their best
    instance, scored by the slot holding it; each with its dense score (None past n)."""
    assert manifest.dense is not None
    head = matches[:n]
    slot_of = {entry.id: slot for slot in range(slots)
               for entry in slot_shards(manifest, slot, slots)}
    asked: dict[int, list[int]] = {}
    for i, match in enumerate(head):
        asked.setdefault(slot_of[match.shard], []).append(i)
    answers = await asyncio.gather(*(
        ask(slot, "dense_scores", manifest.version,
            [(head[i].shard, head[i].instance_id) for i in items], variants,
            manifest.dense.config["min_overlap"])
        for slot, items in asked.items()))
    dense = np.full(len(head), -np.inf)
    for items, scores in zip(asked.values(), answers, strict=True):
        dense[items] = scores
    return rerank(matches, dense.tolist())


def dense_field(score: float | None) -> float | None:
    """A dense score as JSON shows it (no valid overlap, -inf, becomes null)."""
    return None if score is None or not math.isfinite(score) else round(score, 6)
