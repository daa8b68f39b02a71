"""The shared re-ranking logic and dense evaluation on tiny synthetic records: order, ties and
unscorable candidates, best instances, first-stage recall, configs and the scale refusal."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from shoematch.data.dataset import DatasetWriter, open_dataset
from shoematch.data.images import encode_png
from shoematch.data.schema import Canvas
from shoematch.dense.component import dataset_px_per_cm, load_dense_config
from shoematch.dense.evaluation import evaluate_dense
from shoematch.dense.matcher import DenseConfig, DenseMatcher
from shoematch.dense.rerank import best_instances, rerank
from shoematch.errors import ConfigError, DatasetError
from shoematch.evaluation.encode import EncodedReferences
from shoematch.evaluation.evaluation import CellStage
from shoematch.evaluation.placement import placed_queries

CANVAS = Canvas(32, 64)
PIXELS = DenseConfig(backbone="pixels", px_per_cm=2.0)  # stride 8: 4x8 cells per reference


def test_rerank_orders_the_head_by_dense_score_and_keeps_the_tail():
    ranked = ["a", "b", "c", "d", "e"]
    out = rerank(ranked, [0.2, 0.9, 0.2, -math.inf])
    assert [m for m, _ in out] == ["b", "a", "c", "d", "e"]  # tie a/c keeps cell order
    assert [s for _, s in out] == [0.9, 0.2, 0.2, -math.inf, None]
    assert [m for m, _ in rerank(ranked, [math.nan, 0.1])] == ["b", "a", "c", "d", "e"]
    assert rerank(ranked, []) == [(m, None) for m in ranked]
    with pytest.raises(ValueError):
        rerank(["a"], [0.1, 0.2])


def test_best_instances_are_each_models_top_row():
    scores = np.array([0.1, 0.5, 0.5, 0.9, 0.3], np.float32)
    models = ["x", "y", "x", "z", "y"]
    assert best_instances(scores, models, 2) == [("z", 3), ("y", 1)]  # tie y/x: lower row
    assert best_instances(scores, models, 10) == [("z", 3), ("y", 1), ("x", 2)]


def test_dense_config_from_yaml_and_items(tmp_path):
    path = tmp_path / "dense.yaml"
    path.write_text("block: 2\nrotations: [0, 10]\n")
    config = load_dense_config([str(path), "px_per_cm=5"])
    assert (config.block, config.rotations, config.px_per_cm) == (2, (0.0, 10.0), 5.0)
    with pytest.raises(ConfigError, match="stray"):
        load_dense_config(["block=2", "stray"])
    with pytest.raises(ConfigError, match="blok"):
        load_dense_config(["blok=2"])


def _write(root, kind: str, records: list[dict], params: dict) -> str:
    with DatasetWriter(str(root), kind, CANVAS, "test", params) as writer:
        writer.add(records)
    return str(root)


def _tread(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.random((CANVAS.height // 8, CANVAS.width // 8)) > 0.5
    return (np.kron(coarse, np.ones((8, 8))) * 255).astype(np.uint8)


@pytest.fixture
def tiny_sets(tmp_path) -> tuple[str, str]:
    """4 models × 2 instances of random block treads; each query is model q's tread, cropped."""
    full = np.full(CANVAS.shape, 255, np.uint8)
    refs = [{"instance_id": f"I{i}", "model_id": f"M{i // 2}", "pattern_id": f"P{i // 2}",
             "depth": None, "print": encode_png(_tread(i)), "mask": encode_png(full),
             "photo": None, "street_photo": None, "descriptors": [], "attributes": {},
             "source": "test", "split": "test"} for i in range(8)]
    queries = []
    for q in range(4):
        mask = np.zeros(CANVAS.shape, np.uint8)
        mask[:, 8:48] = 255
        queries.append({"query_id": f"Q{q}", "print": encode_png(_tread(2 * q) & mask),
                        "mask": encode_png(mask), "targets": [f"M{q}"], "category": "test",
                        "seen": True, "source": "test", "split": "test"})
    params = {"px_per_cm": 2.0}
    return (_write(tmp_path / "refs", "references", refs, params),
            _write(tmp_path / "queries", "queries", queries, params))


def test_dense_alone_finds_each_crop(tiny_sets):
    refdb, queries = (open_dataset(uri) for uri in tiny_sets)
    report = evaluate_dense(DenseMatcher(PIXELS), refdb, queries, k=4)
    assert report["overall"]["hit@1"] == 1.0 and not report["dense"]["failures"]
    assert "first_stage" not in report


def test_cells_plus_dense_reranks_the_first_stages_top_n(tiny_sets):
    refdb, queries = (open_dataset(uri) for uri in tiny_sets)
    records = list(queries.iter_records())
    models = [f"M{i // 2}" for i in range(8)]
    # A first stage that ranks each query's target 2nd (by the instance the query was cut
    # from), or last for Q3 (outside N = 3).
    scores = np.zeros((4, 8), np.float32)
    for q in range(4):
        scores[q] = [0.3 - 0.01 * i for i in range(8)]
        decoy = 2 if q == 0 else 0
        scores[q, 2 * q], scores[q, decoy] = 0.45, 0.9
    scores[3, 6:] = 0.0
    stage = CellStage(placed_queries(records), EncodedReferences(torch.empty(0),
                      [f"I{i}" for i in range(8)], models, models), scores)
    report = evaluate_dense(DenseMatcher(PIXELS), refdb, queries, k=4, first_stage=stage,
                            rerank_n=3)
    ranks = {q["query_id"]: q["first_correct_rank"] for q in report["per_query"]}
    assert ranks == {"Q0": 1, "Q1": 1, "Q2": 1, "Q3": 4}  # Q3's target was not a candidate
    assert report["first_stage"]["recall@3"] == 0.75


def test_dense_matching_refuses_data_of_unknown_scale(tiny_sets, tmp_path):
    refdb = open_dataset(tiny_sets[0])
    unscaled = open_dataset(_write(tmp_path / "unscaled", "references",
                                   list(refdb.iter_records()), {}))
    assert dataset_px_per_cm(refdb) == 2.0
    with pytest.raises(DatasetError, match="no physical scale"):
        dataset_px_per_cm(unscaled)
