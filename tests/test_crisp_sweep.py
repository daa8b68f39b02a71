"""The CriSp sweep's trials: a grid of dotted config keys, each combination a validated training
config with its own run name; bad keys or values fail before any cluster work."""

from __future__ import annotations

import pytest

from shoematch.config import load_config
from shoematch.crisp.config import CrispSweepConfig
from shoematch.crisp.sweep import sweep_table, sweep_trials
from shoematch.errors import ConfigError
from tests.conftest import REPO

CONFIG = str(REPO / "configs" / "crisp_tiny.yaml")


def test_grid_expands_to_validated_trials():
    config = load_config(CrispSweepConfig, CONFIG, [
        "sweep.grid={optim.lr: [0.001, 0.002], masking.rect_probability: [0.5, 1.0, 0.0]}",
        "sweep.run_name=s"])
    trials = sweep_trials(config)
    assert len(trials) == 6 and len({t.name for t in trials}) == 6
    assert {(t.config.optim.lr, t.config.masking.rect_probability) for t in trials} == {
        (lr, p) for lr in (0.001, 0.002) for p in (0.5, 1.0, 0.0)}
    assert all(t.config.ray.run_name == t.name and t.name.startswith("s-") for t in trials)
    assert trials[0].config.model == config.model  # the rest of the config is kept


@pytest.mark.parametrize("grid, message", [
    ("{optim.learning_rate: [0.1]}", "unknown config key 'optim.learning_rate'"),
    ("{masking.rect_probability: [2.0]}", "masking.rect_probability"),
])
def test_bad_grid_names_the_key(grid, message):
    config = load_config(CrispSweepConfig, CONFIG, [f"sweep.grid={grid}"])
    with pytest.raises(ConfigError, match=message):
        sweep_trials(config)


def test_table_ranks_trials_by_the_metric():
    rows = [{"name": "a", "overrides": {"optim.lr": 0.1}, "metrics": {"m": 0.2},
             "model_uri": "models:/x/1"},
            {"name": "b", "overrides": {"optim.lr": 0.2}, "metrics": {"m": 0.5},
             "model_uri": "models:/x/2"}]
    lines = sweep_table(rows, "m").splitlines()
    assert lines[0] == "| trial | optim.lr | m | model |"
    assert lines[2].startswith("| b | 0.2 | 0.5000 |") and lines[3].startswith("| a |")
