"""Channel weights fitted on labelled probes: they favour the channel that tells the true
reference apart, stay equal under a strong penalty, are fitted by disjoint folds, and the FID-300
row scores each probe with weights fitted on the other folds, writing a file the matcher loads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.fid300 import evaluate_dense
from benchmarks.fid300_channels import (
    choose_rule,
    evaluate_learned,
    evidence_row,
    weights_file,
)
from benchmarks.fid300_data import load_fid
from jobs import fit_channels
from shoematch.dense.channel_fit import (
    ChannelFitConfig,
    cross_validated_weights,
    evidence_scores,
    fit_channel_weights,
)
from shoematch.dense.matcher import DenseConfig, DenseMatcher
from shoematch.errors import ConfigError, DatasetError, QueryError
from shoematch.retrieval.calibration import probe_folds
from tests.test_fid300_bench import make_fid_folder


def planted_evidence(probes: int = 30, refs: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel 0 is high for the true reference, channel 1 is noise that swamps it."""
    generator = torch.Generator().manual_seed(0)
    evidence = torch.rand(probes, refs, 2, 2, generator=generator) * 0.2
    evidence[..., 1] = torch.rand(probes, refs, 2, generator=generator)
    truth = torch.arange(probes) % refs
    evidence[torch.arange(probes), truth, :, 0] += 0.3
    targets = torch.zeros(probes, refs, dtype=torch.bool)
    targets[torch.arange(probes), truth] = True
    return evidence, targets


def test_the_fit_weights_the_telling_channel_up() -> None:
    evidence, targets = planted_evidence()
    weights = fit_channel_weights(evidence, targets, ChannelFitConfig(steps=100))
    assert weights[0] > 2 * weights[1] and weights.mean().item() == pytest.approx(1.0)
    rank = lambda w: (evidence_scores(evidence, w)  # noqa: E731
                      >= evidence_scores(evidence, w)[targets][:, None]).sum(1).float().mean()
    assert rank(weights) < rank(torch.ones(2))
    hardest_only = fit_channel_weights(evidence, targets, ChannelFitConfig(steps=100,
                                                                           negatives=5))
    assert hardest_only[0] > 2 * hardest_only[1]
    equal = fit_channel_weights(evidence, targets, ChannelFitConfig(steps=100, l2=1e4))
    assert torch.allclose(equal, torch.ones(2), atol=0.05)


def test_unscorable_references_never_win() -> None:
    evidence = torch.tensor([[[[0.5, 0.5]], [[float("nan"), float("nan")]]]])
    assert torch.isneginf(evidence_scores(evidence, torch.ones(2))[0, 1])


def test_folds_are_disjoint_and_each_fit_excludes_its_fold() -> None:
    folds = probe_folds(23, 5, seed=1)
    assert sorted(np.concatenate(folds).tolist()) == list(range(23))
    evidence, targets = planted_evidence(probes=10)
    fitted = cross_validated_weights(evidence, targets, ChannelFitConfig(steps=5, folds=5))
    assert [len(fold) for fold, _ in fitted] == [2] * 5
    with pytest.raises(QueryError, match="cannot be split"):
        probe_folds(3, 5)


def test_bad_input_is_refused() -> None:
    evidence, targets = planted_evidence(probes=4)
    with pytest.raises(QueryError, match=r"\[P, N, K, C\]"):
        fit_channel_weights(evidence[0], targets)
    targets[0] = False
    with pytest.raises(QueryError, match="true reference"):
        fit_channel_weights(evidence, targets)


def test_the_fid300_rows_and_the_weights_files(tmp_path) -> None:
    make_fid_folder(tmp_path / "src", count=4)
    data = load_fid(str(tmp_path / "src"), str(tmp_path / "data"))
    fit = ChannelFitConfig(folds=2, steps=10, top_k=2)
    matchers = []
    for px in (10.0, 13.0):
        config = DenseConfig(block=2, px_per_cm=px)
        row, per_probe, res = evidence_row(data, f"block 2 at {px:g} px/cm, ImageNet", config,
                                           fit.top_k)
        exact, exact_per_probe, *_ = evaluate_dense(data, config)
        assert row["ranks"] == exact["ranks"] == [1] * 4  # the evidence's row is the matcher's
        np.testing.assert_allclose(np.stack(per_probe), np.stack(exact_per_probe), atol=1e-5)
        matchers.append(res)
    rows = evaluate_learned(data, matchers, str(tmp_path / "out"), fit)
    assert list(rows) == ["block 2 at 10 px/cm, channel weights by 5-fold CV",
                          "block 2 at 13 px/cm, channel weights by 5-fold CV",
                          "block 2 at 10 px/cm + block 2 at 13 px/cm z-fused, channel weights "
                          "by 5-fold CV",
                          "one or both matchers, rule and weights by 5-fold CV"]
    for row in rows.values():
        assert row["ranks"] == [1] * 4 and row["top1%"] == 100.0
    for res in matchers:
        path = str(tmp_path / "out" / weights_file(res.matcher.config))
        loaded = DenseMatcher(res.matcher.config.model_copy(update={"weights": path}))  # strict
        assert loaded.channel_weights is not None and loaded.channel_weights.shape == (24,)


def test_a_rule_is_chosen_on_the_training_probes_only(tmp_path) -> None:
    make_fid_folder(tmp_path / "src", count=4)
    data = load_fid(str(tmp_path / "src"), str(tmp_path / "data"))
    rows = np.arange(4)
    good = np.eye(4) + 0.1
    bad = np.roll(np.eye(4), 1, axis=1)  # ranks each probe's true model last but one
    assert choose_rule({"a": bad, "b": good}, data, rows) == "b"
    assert choose_rule({"a": good, "b": good}, data, rows) == "a"  # ties: the first listed


def test_the_fitting_job_writes_weights_the_matcher_loads(tmp_path, capsys) -> None:
    make_fid_folder(tmp_path / "src", count=4)
    data = load_fid(str(tmp_path / "src"), str(tmp_path / "data"))
    out = str(tmp_path / "weights" / "channels.pt")
    common = ["--refdb", data.refdb, "--queries", data.queries, "--dense-config", "block=2",
              "px_per_cm=10"]
    assert fit_channels.main([*common, "--out", out, "--fit", "folds=2", "steps=5",
                              "top_k=2"]) == 0
    printed = capsys.readouterr().out
    assert "4 queries × 4 references (0 left out)" in printed
    assert "| equal | 100.0 | 100.0 |" in printed
    matcher = DenseMatcher(DenseConfig(block=2, px_per_cm=10.0, weights=out))
    assert matcher.channel_weights is not None and matcher.channel_weights.shape == (24,)
    with pytest.raises(ConfigError, match="local file"):
        fit_channels.main([*common, "--out", "s3://bucket/w.pt"])
    with pytest.raises(DatasetError, match="at least 10"):
        fit_channels.main([*common, "--out", out])  # 4 queries, 5 folds
    with pytest.raises(ConfigError, match="no channels"):
        fit_channels.main([*common[:-1], "backbone=pixels", "--out", out])
