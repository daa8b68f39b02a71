"""FID-300 rows that learn from labelled probes, honestly: per-channel weights of two dense
matchers, and the choice between one of them and both fused, all fitted by cross-validation folds
over the probes — each probe is scored with what was fitted on the other folds only.

Scoring with fitted weights uses the channel evidence (each channel's correlation at every
reference's 8 best translations under equal weights): the weighted best is taken among those, a
close stand-in for the exact weighted kernel that a weights file gives the matcher (on the dev
probes both gave the same top-1 % for both matchers), at no extra pass over the probes.

Why two matchers: crime-scene prints come at an uncertain scale and their useful detail at
different sizes; summing a probe's per-model z-scores (its scores against its own distribution
over the gallery) under two feature maps is a fixed rule, no weights. Whether it beats one matcher
is decided per fold on that fold's training probes, so the figure is that of the procedure, not
of a rule picked after seeing the table.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from benchmarks.fid300_data import FidData
from shoematch.dense.channel_fit import (
    ChannelFitConfig,
    evidence_scores,
    fit_channel_weights,
    probe_evidence,
)
from shoematch.dense.matcher import DenseConfig, DenseGallery, DenseMatcher
from shoematch.dense.ranking import (
    best_per_model,
    cmc_percent,
    first_target_rank,
    pessimistic_rank,
)
from shoematch.log import get_logger
from shoematch.retrieval.calibration import probe_folds, z_scores

log = get_logger("benchmarks.fid300_channels")

FUSED = "fused"


@dataclass
class Resolution:
    """One matcher, its gallery and every probe's channel evidence against it."""

    name: str
    matcher: DenseMatcher
    gallery: DenseGallery
    evidence: torch.Tensor  # [P, N, K, C] float16
    scores: np.ndarray  # [P, N] float32: the matcher's own scores (equal weights)
    evidence_s: float


def gather(data: FidData, name: str, matcher: DenseMatcher, gallery: DenseGallery,
           top_k: int) -> Resolution:
    """Every probe's evidence, and its scores taken from the evidence before rounding: the first
    kept translation's channel mean is the matcher's score, so one pass gives both."""
    log.info("  channel evidence at %s", name)
    started = time.monotonic()
    evidence, scores = [], []
    for probe in data.probes:
        found = probe_evidence(matcher, probe.image, probe.mask, data.px_per_cm, gallery, top_k)
        scores.append(evidence_scores(found[None], torch.ones(found.shape[-1]))[0].cpu().numpy())
        evidence.append(found.half().cpu())
    return Resolution(name, matcher, gallery, torch.stack(evidence), np.stack(scores),
                      time.monotonic() - started)


def evidence_row(data: FidData, name: str, config: DenseConfig, top_k: int
                 ) -> tuple[dict, list[np.ndarray], Resolution]:
    """A matcher's table row and the learned rows' input from one pass over the probes (the
    benchmark's costliest matcher is run once, not twice)."""
    matcher = DenseMatcher(config)
    started = time.monotonic()
    gallery = matcher.gallery(data.reference_prints, data.px_per_cm, crop=True)
    gallery_s = time.monotonic() - started
    res = gather(data, name.split(",")[0], matcher, gallery, top_k)
    ranks = [first_target_rank(scores, data.reference_models, probe.targets)
             for scores, probe in zip(res.scores, data.probes, strict=True)]
    row = {**cmc_percent(ranks, len(set(data.reference_models))),
           "s_per_probe": res.evidence_s / max(len(data.probes), 1),
           "bytes_per_reference": int(gallery.maps[0].numel()) * 2, "gallery_s": gallery_s,
           "ranks": ranks}
    return row, [by_model(scores, data) for scores in res.scores], res


def by_model(scores: np.ndarray, data: FidData) -> np.ndarray:
    return best_per_model(np.asarray(scores, dtype=np.float64), data.reference_models)[1]


def target_ranks(model_scores: np.ndarray, data: FidData, rows: np.ndarray) -> np.ndarray:
    """Rank of each listed probe's best-ranked true model (ties count against)."""
    models = list(dict.fromkeys(data.reference_models))
    index = {model: i for i, model in enumerate(models)}
    return np.array([min(pessimistic_rank(scores, index[t]) for t in data.probes[row].targets
                         if t in index) for scores, row in zip(model_scores, rows, strict=True)])


def combine(per_resolution: dict[str, np.ndarray], rule: str) -> np.ndarray:
    """[p, M] model scores under a rule: one resolution's, or the sum of all z-scores."""
    if rule != FUSED:
        return per_resolution[rule]
    return sum(np.stack([z_scores(row) for row in scores])
               for scores in per_resolution.values())


def choose_rule(per_resolution: dict[str, np.ndarray], data: FidData, rows: np.ndarray) -> str:
    """The rule with the most top-1 % hits (then hit@1) on these (training) probes."""
    cutoff = max(1, (len(set(data.reference_models)) + 50) // 100)

    def merit(rule: str) -> tuple[float, float]:
        ranks = target_ranks(combine(per_resolution, rule), data, rows)
        return float((ranks <= cutoff).mean()), float((ranks == 1).mean())

    return max([*per_resolution, FUSED], key=merit)


def evaluate_learned(data: FidData, resolutions: list[Resolution], out_dir: str,
                     config: ChannelFitConfig) -> dict[str, dict]:
    """Rows: each matcher with CV channel weights, both fused, and the rule chosen per fold."""
    targets = torch.tensor([[model in probe.targets for model in data.reference_models]
                            for probe in data.probes])
    count, models = len(data.probes), len(set(data.reference_models))
    fitted = {res.name: np.zeros((count, models)) for res in resolutions}
    chosen = np.empty(count, dtype=object)
    for fold in probe_folds(count, config.folds, config.seed):
        train = np.setdiff1d(np.arange(count), fold)
        seen: dict[str, np.ndarray] = {}
        for res in resolutions:
            weights = fit_channel_weights(res.evidence[train], targets[train], config)
            seen[res.name] = np.stack([by_model(s, data) for s in evidence_scores(
                res.evidence[train].float(), weights).numpy()])
            fitted[res.name][fold] = np.stack([by_model(s, data) for s in evidence_scores(
                res.evidence[fold].float(), weights).numpy()])
        chosen[fold] = choose_rule(seen, data, train)
        log.info("  fold of %d probes scored; rule chosen on the others: %s", len(fold),
                 chosen[fold[0]])
    everyone = np.arange(count)
    rows: dict[str, dict] = {}

    def row(ranks: np.ndarray, per_probe_s: float, **extra: object) -> dict:
        return {**cmc_percent(ranks.tolist(), models), "s_per_probe": per_probe_s,
                "ranks": ranks.tolist(), **extra}

    nbytes = {res.name: int(res.gallery.maps[0].numel()) * 2 for res in resolutions}
    seconds = {res.name: res.evidence_s / count for res in resolutions}  # the matcher's cost
    for res in resolutions:
        rows[f"{res.name}, channel weights by 5-fold CV"] = row(
            target_ranks(fitted[res.name], data, everyone), seconds[res.name],
            bytes_per_reference=nbytes[res.name])
    both_s = sum(seconds.values())
    fused = combine(fitted, FUSED)
    names = " + ".join(res.name for res in resolutions)
    rows[f"{names} z-fused, channel weights by 5-fold CV"] = row(
        target_ranks(fused, data, everyone), both_s, bytes_per_reference=sum(nbytes.values()))
    picked = np.stack([combine({k: v[i:i + 1] for k, v in fitted.items()}, chosen[i])[0]
                       for i in everyone])
    rows["one or both matchers, rule and weights by 5-fold CV"] = row(
        target_ranks(picked, data, everyone), both_s, bytes_per_reference=sum(nbytes.values()),
        rules_chosen=sorted(set(chosen.tolist())))
    save_weights(resolutions, targets, out_dir, config)
    return rows


def weights_file(config: DenseConfig) -> str:
    """Named by what the weights fit (strict keys refuse another body anyway)."""
    return (f"channel_weights_{config.backbone}_block{config.block}_"
            f"{config.px_per_cm:g}px_per_cm.pt")


def save_weights(resolutions: list[Resolution], targets: torch.Tensor, out_dir: str,
                 config: ChannelFitConfig) -> None:
    """Weights fitted on every probe, as matcher files (`DenseConfig.weights`): for prints
    other than these probes."""
    os.makedirs(out_dir, exist_ok=True)
    for res in resolutions:
        body = getattr(res.matcher.net, "body", None)
        if body is not None:
            weights = fit_channel_weights(res.evidence, targets, config)
            name = weights_file(res.matcher.config)
            torch.save({"body": body.state_dict(), "channel_weights": weights},
                       os.path.join(out_dir, name))
