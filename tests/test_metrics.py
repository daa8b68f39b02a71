"""Ranking of unique models and retrieval metrics on hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shoematch.retrieval.metrics import (
    average_precision_at_k,
    cmc,
    cmc_threshold,
    evaluate_rankings,
    first_correct_rank,
    hit_at_k,
    rank_models,
)


def test_rank_models_dedups_keeping_first_occurrence() -> None:
    scores = np.array([0.1, 0.9, 0.8, 0.7, 0.95, 0.2])
    models = ["d", "a", "a", "b", "c", "b"]
    # by score: c(.95) a(.9) a(.8) b(.7) b(.2) d(.1)
    assert rank_models(scores, models) == ["c", "a", "b", "d"]
    assert rank_models(scores, models, k=2) == ["c", "a"]


def test_rank_models_ties_keep_lower_index_first() -> None:
    scores = np.array([0.5, 0.7, 0.5, 0.7, 0.5])
    models = ["m0", "m1", "m2", "m3", "m4"]
    assert rank_models(scores, models) == ["m1", "m3", "m0", "m2", "m4"]
    assert rank_models(np.zeros(3), ["z", "y", "x"]) == ["z", "y", "x"]
    with pytest.raises(ValueError):
        rank_models(np.zeros(3), ["a", "b"])


def test_hit_at_k_and_first_correct_rank() -> None:
    ranked = ["a", "b", "c", "d"]
    assert hit_at_k(ranked, {"c"}, 3) == 1.0
    assert hit_at_k(ranked, {"c"}, 2) == 0.0
    assert hit_at_k(ranked, {"zz"}, 100) == 0.0
    assert first_correct_rank(ranked, {"d", "c"}) == 3
    assert first_correct_rank(ranked, {"zz"}) is None


def test_average_precision_worked_example_with_two_targets() -> None:
    ranked = ["a", "x", "b", "y"]
    # relevant at ranks 1 and 3: precision 1/1 and 2/3; divided by min(2 targets, K)
    assert average_precision_at_k(ranked, {"a", "b"}, 100) == pytest.approx((1 + 2 / 3) / 2)
    # a target ranked beyond K contributes nothing; min(#targets, K) = 2 still
    assert average_precision_at_k(ranked, {"a", "b"}, 2) == pytest.approx(0.5)
    # K smaller than the number of targets: divide by K
    assert average_precision_at_k(["a", "b"], {"a", "b", "c"}, 2) == pytest.approx(1.0)
    assert average_precision_at_k(ranked, {"zz"}, 100) == 0.0
    with pytest.raises(ValueError):
        average_precision_at_k(ranked, set(), 100)


def test_evaluate_rankings_excludes_queries_without_targets() -> None:
    rankings = [["a", "x", "b"], ["x", "y", "z"], ["q", "r", "s"]]
    targets = [{"a", "b"}, {"z"}, set()]
    result = evaluate_rankings(rankings, targets, k=100)
    assert result["queries_with_targets"] == 2
    assert result["queries_without_targets"] == 1
    assert result["hit@100"] == pytest.approx(1.0)
    assert result["mAP@100"] == pytest.approx(((1 + 2 / 3) / 2 + 1 / 3) / 2)
    top1 = evaluate_rankings(rankings, targets, k=1)
    assert top1["hit@1"] == pytest.approx(0.5) and top1["mAP@1"] == pytest.approx(0.5)
    empty = evaluate_rankings([["a"]], [set()], k=100)
    assert math.isnan(empty["hit@100"]) and math.isnan(empty["mAP@100"])
    assert empty["queries_without_targets"] == 1


def test_cmc_thresholds_for_fid300_gallery() -> None:
    assert [cmc_threshold(p, 1175) for p in (1, 5, 10, 20)] == [12, 59, 118, 235]
    assert cmc_threshold(1, 50) == 1  # never below rank 1
    assert cmc_threshold(1, 1150) == 12  # 11.5 rounds half up


def test_cmc_fractions() -> None:
    ranks = [1, 12, 13, 59, 60, 118, 236, None]
    result = cmc(ranks, 1175)
    assert result["top1%"] == pytest.approx(2 / 8)
    assert result["top5%"] == pytest.approx(4 / 8)
    assert result["top10%"] == pytest.approx(6 / 8)
    assert result["top20%"] == pytest.approx(6 / 8)
    assert result["hit@1"] == pytest.approx(1 / 8)
    assert result["hit@10"] == pytest.approx(1 / 8)
    assert all(math.isnan(v) for v in cmc([], 1175).values())


def test_end_to_end_scores_to_metrics() -> None:
    scores = np.array([[0.9, 0.8, 0.1, 0.3], [0.2, 0.1, 0.9, 0.95]])
    models = ["a", "a", "b", "c"]
    rankings = [rank_models(row, models) for row in scores]
    assert rankings == [["a", "c", "b"], ["c", "b", "a"]]
    targets = [{"b"}, {"b"}]
    assert [first_correct_rank(r, t) for r, t in zip(rankings, targets, strict=True)] == [3, 2]
    result = evaluate_rankings(rankings, targets, k=2)
    assert result["hit@2"] == pytest.approx(0.5)
    assert result["mAP@2"] == pytest.approx(0.25)
