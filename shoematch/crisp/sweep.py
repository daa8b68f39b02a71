"""A CriSp hyperparameter sweep, Ray-free: the trials of a grid as validated training configs
(bad keys or values fail before any cluster work), and the comparison table of their results.
`shoematch.ray.tune.run_crisp_sweep` runs them as a Ray Tune experiment."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from shoematch.config import with_overrides
from shoematch.crisp.config import CrispSweepConfig, CrispTrainConfig


@dataclass
class CrispTrial:
    name: str  # also the trial's Ray run name and MLflow run name
    overrides: dict[str, Any]
    config: CrispTrainConfig


def sweep_trials(config: CrispSweepConfig) -> list[CrispTrial]:
    """Every combination of `sweep.grid`, applied to the rest of the config."""
    base = CrispTrainConfig.model_validate(config.model_dump(mode="json", exclude={"sweep"}))
    keys = list(config.sweep.grid)
    trials = []
    for index, values in enumerate(itertools.product(*config.sweep.grid.values())):
        overrides = dict(zip(keys, values, strict=True))
        name = f"{config.sweep.run_name}-{index:03d}"
        trial = with_overrides(base, {**overrides, "ray.run_name": name},
                               f"sweep trial {name} {overrides}")
        trials.append(CrispTrial(name, overrides, trial))
    return trials


def sweep_table(rows: list[dict[str, Any]], metric: str) -> str:
    """Markdown: one row per trial, best `metric` first."""
    keys = sorted({key for row in rows for key in row["overrides"]})
    ranked = sorted(rows, key=lambda row: -row["metrics"].get(metric, float("-inf")))
    lines = ["| trial | " + " | ".join(keys) + f" | {metric} | model |",
             "|" + "---|" * (len(keys) + 3)]
    for row in ranked:
        score = row["metrics"].get(metric)
        lines.append(f"| {row['name']} | " + " | ".join(str(row["overrides"][k]) for k in keys)
                     + f" | {'n/a' if score is None else f'{score:.4f}'} | {row['model_uri']} |")
    return "\n".join(lines)
