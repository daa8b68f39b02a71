"""Several epochs in one pass of a streamed dataset, with batches that never repeat a class.

Ray Data starts a pipeline's actor pool anew each time a dataset is iterated, so a pass per epoch
pays the actors' start (seconds on a CPU, more with a CUDA context) every epoch while the DDP
workers wait. One pass that holds the class table `epochs` times pays it once. Its classes then
come back within the pass, so each worker batches its rows itself (`distinct_batches`), and every
worker takes the same number of batches from each pass (`PassPlan.batches`), which its share is
shown to hold: DDP steps stay in lockstep and the next pass starts on all workers together.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

MAX_PASS_BLOCKS = 2048  # block references in one pass: the driver lists each one's metadata


@dataclass(frozen=True)
class PassPlan:
    """How every DDP worker reads a streamed dataset of one row per class."""

    epochs: int  # copies of the class table in one pass
    batch_size: int
    batches: int  # each worker takes exactly this many batches from every pass
    distinct: str  # the column whose values never repeat within a batch


def batches_per_pass(classes: int, epochs: int, workers: int, batch_size: int) -> int:
    """Full batches of distinct classes that every worker's share of a pass is sure to give.

    A worker gets ⌊epochs·classes / workers⌋ rows (equal shares). Batching greedily, the rows
    left when its share ends hold fewer than `batch_size` distinct classes, each at most `epochs`
    times, so at most (batch_size − 1)·epochs rows are left out.
    """
    rows = epochs * classes // workers
    return max(0, math.ceil((rows - (batch_size - 1) * epochs) / batch_size))


def plan_passes(classes: int, blocks: int, workers: int, batch_size: int, steps: int,
                distinct: str, epochs: int | None = None) -> PassPlan:
    """The plan for a run of `steps` steps: `epochs` per pass if given, else the fewest that
    cover every step in one pass, at most `MAX_PASS_BLOCKS // blocks` of them."""
    if epochs is None:
        most = max(1, MAX_PASS_BLOCKS // max(1, blocks))
        epochs = 1
        while epochs < most and batches_per_pass(classes, epochs, workers,
                                                 batch_size) < steps:
            epochs += 1
    return PassPlan(epochs, batch_size, batches_per_pass(classes, epochs, workers, batch_size),
                    distinct)


def distinct_batches(chunks: Iterable[Mapping[str, np.ndarray]], size: int,
                     distinct: str) -> Iterator[dict[str, np.ndarray]]:
    """Batches of `size` rows with distinct `distinct` values, taken in arrival order: a row
    whose value the forming batch already has waits for a later batch. Rows that cannot make a
    full batch when `chunks` ends are dropped."""
    pending: list[tuple[Mapping[str, np.ndarray], int]] = []
    for chunk in chunks:
        pending.extend((chunk, row) for row in range(len(chunk[distinct])))
        while (picked := _first_distinct(pending, size, distinct)) is not None:
            rows = [pending[i] for i in picked]
            yield {name: np.stack([source[name][row] for source, row in rows])
                   for name in chunk}
            taken = set(picked)
            pending = [entry for i, entry in enumerate(pending) if i not in taken]


def _first_distinct(pending: list[tuple[Mapping[str, np.ndarray], int]], size: int,
                    distinct: str) -> list[int] | None:
    """Positions of the first `size` pending rows with distinct values, or None."""
    seen: set = set()
    picked = []
    for i, (chunk, row) in enumerate(pending):
        value = chunk[distinct][row].item()
        if value not in seen:
            seen.add(value)
            picked.append(i)
            if len(picked) == size:
                return picked
    return None
