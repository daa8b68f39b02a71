"""Several epochs in one pass: batches never repeat a class, and every worker's share of a pass
gives the planned number of batches however the pass's rows fall."""

from __future__ import annotations

import numpy as np
import pytest

from shoematch.training.passes import (
    MAX_PASS_BLOCKS,
    batches_per_pass,
    distinct_batches,
    plan_passes,
)


def chunks_of(labels: list[int], size: int) -> list[dict[str, np.ndarray]]:
    """Labels in chunks of `size`, each row carrying its position (to check nothing is lost)."""
    return [{"label": np.array(labels[i:i + size]), "position": np.arange(i, min(len(labels),
                                                                               i + size))}
            for i in range(0, len(labels), size)]


def test_batches_hold_distinct_labels_in_arrival_order():
    batches = list(distinct_batches(chunks_of([1, 1, 2, 3, 2, 4, 5, 5], 3), 3, "label"))
    assert [b["label"].tolist() for b in batches] == [[1, 2, 3], [1, 2, 4]]
    assert [b["position"].tolist() for b in batches] == [[0, 2, 3], [1, 4, 5]]
    assert set(batches[0]) == {"label", "position"}


def test_every_worker_share_gives_the_planned_batches():
    """Random passes of `epochs` copies of the classes, split as Ray Train does (equal shares in
    whatever order the blocks arrive): every share gives at least `batches_per_pass`, and no batch
    repeats a class."""
    rng = np.random.default_rng(0)
    for classes, workers, size, epochs in [(13, 2, 2, 5), (13, 2, 4, 3), (8, 2, 4, 7),
                                           (40, 3, 8, 4), (9, 1, 9, 6)]:
        planned = batches_per_pass(classes, epochs, workers, size)
        assert planned >= 1
        for _ in range(200):
            stream = np.concatenate([rng.permutation(classes) for _ in range(epochs)])
            if rng.random() < 0.5:  # blocks of a few classes, all epochs' blocks shuffled
                blocks = np.array_split(stream, epochs * 3)
                stream = np.concatenate([blocks[i] for i in rng.permutation(len(blocks))])
            share = len(stream) // workers
            for worker in range(workers):
                rows = stream[worker::workers][:share].tolist()
                batches = list(distinct_batches(chunks_of(rows, size), size, "label"))
                assert len(batches) >= planned, (classes, workers, size, epochs)
                assert all(len(set(b["label"].tolist())) == size for b in batches)


def test_the_plan_covers_the_run_in_one_pass_when_it_can():
    plan = plan_passes(13, 2, 2, 2, 12, "label")
    assert plan.batches >= 12 and batches_per_pass(13, plan.epochs - 1, 2, 2) < 12
    assert plan_passes(13, 2, 2, 2, 3, "label").epochs == 1
    assert plan_passes(13, 2, 2, 2, 12, "label", epochs=1).batches == 3
    capped = plan_passes(1000, MAX_PASS_BLOCKS // 4, 2, 8, 100_000, "label")
    assert capped.epochs == 4 and capped.batches < 100_000


@pytest.mark.parametrize("classes, workers, size", [(4, 2, 2), (16, 2, 8), (5, 5, 1)])
def test_the_smallest_allowed_table_still_gives_a_batch(classes, workers, size):
    """The job refuses fewer classes than workers × batch size; at that minimum every pass
    still gives every worker a batch."""
    assert all(batches_per_pass(classes, epochs, workers, size) >= 1 for epochs in range(1, 9))
