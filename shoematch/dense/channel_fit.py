"""Per-channel weights of the dense matcher, fitted on prints whose true model is known.

Why: MCNCC averages its channels equally, but ImageNet channels differ in how well they survive a
crime-scene print (blood, dust, clutter); Kong et al.'s fine-tuned MCNCC learns a weight per
channel. Fitting on the references alone does not teach this (their augmented views are too easy:
`finetune`), so the weights are fitted on labelled crime-scene prints. Labelled prints are scarce
and the weights are few (one per channel, pulled towards equal weights by an L2 penalty on their
logarithm), and a benchmark fits them only by cross-validation folds: a probe is never scored
with weights fitted on it.

The fit works on `mcncc.channel_evidence`: each channel's NCC at each reference's few best
translations under the plain mean; a reference's score is its best weighted mean over those.
The weights it returns go into the exact matcher (`DenseConfig.weights`) unchanged.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from shoematch.config import StrictModel
from shoematch.data.dataset import Dataset
from shoematch.data.images import decode_image
from shoematch.dense.component import dataset_px_per_cm, reference_maps
from shoematch.dense.matcher import DenseGallery, DenseMatcher
from shoematch.dense.mcncc import ReferenceSpectra, channel_evidence
from shoematch.errors import DatasetError, QueryError
from shoematch.retrieval.calibration import probe_folds


class ChannelFitConfig(StrictModel):
    """How channel weights are fitted. On FID-300's dev evidence, penalties 1e-3, 1e-2 and
    1e-1 gave the same cross-validated top 1 % (±1 probe); the middle one is the default."""

    top_k: int = Field(8, ge=1, description="best translations kept per (probe, reference)")
    l2: float = Field(0.01, ge=0, description="penalty on the log-weights (0: equal weights)")
    steps: int = Field(200, ge=1)
    lr: float = Field(0.05, gt=0)
    temperature: float = Field(0.05, gt=0, description="initial softmax temperature (learned)")
    negatives: int = Field(256, ge=1, description="references per probe kept in the fit: the "
                                                   "best under equal weights, and the true ones")
    folds: int = Field(5, ge=2, description="cross-validation folds over the probes")
    seed: int = 0


def evidence_scores(evidence: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """[P, N] best weighted channel mean over the kept translations (-inf where none scored).

    `evidence` [P, N, K, C] (NaN: no translation), `weights` [C] positive."""
    valid = torch.isfinite(evidence[..., 0])
    mean = evidence.nan_to_num(0.0) @ (weights / weights.sum()).to(evidence.dtype)
    return mean.masked_fill(~valid, float("-inf")).amax(dim=-1)


def hardest(evidence: torch.Tensor, targets: torch.Tensor, keep: int
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each probe's true references and its best-scoring others under equal weights, `keep` in
    all, as float32. Why: references far down the list add nothing to the softmax the fit
    minimises, and dropping them makes each step several times cheaper."""
    if keep >= evidence.shape[1]:
        return evidence.float(), targets
    plain = evidence_scores(evidence.float(), torch.ones(evidence.shape[-1]))
    rows = plain.masked_fill(targets, float("inf")).topk(keep, dim=1).indices  # [P, keep]
    picked = torch.gather(evidence, 1, rows[..., None, None].expand(-1, -1, *evidence.shape[2:]))
    return picked.float(), torch.gather(targets, 1, rows)


def fit_channel_weights(evidence: torch.Tensor, targets: torch.Tensor,
                        config: ChannelFitConfig | None = None) -> torch.Tensor:
    """[C] positive weights (mean 1) that raise each probe's true references above the rest.

    `targets` [P, N] bool marks each probe's true references. Loss: softmax cross-entropy of the
    true references among all (a learned temperature), plus `l2` · Σ log(w)²."""
    config = config or ChannelFitConfig()
    if evidence.dim() != 4 or targets.shape != evidence.shape[:2]:
        raise QueryError(f"evidence must be [P, N, K, C] with [P, N] targets, got "
                         f"{tuple(evidence.shape)} and {tuple(targets.shape)}")
    if not targets.any(dim=1).all():
        raise QueryError("every probe used to fit channel weights needs a true reference in "
                         "the gallery")
    evidence, targets = hardest(evidence, targets, config.negatives)
    valid = torch.isfinite(evidence[..., 0])
    clean = evidence.nan_to_num(0.0)
    with torch.enable_grad():
        log_w = torch.zeros(evidence.shape[-1], requires_grad=True)
        log_t = torch.tensor(float(np.log(config.temperature)), requires_grad=True)
        optimizer = torch.optim.Adam([log_w, log_t], lr=config.lr)
        for _ in range(config.steps):
            weights = torch.softmax(log_w, dim=0)
            # Unscorable references get a large negative logit (-inf would give NaN gradients).
            scores = (clean @ weights).masked_fill(~valid, -1e4).amax(-1) / log_t.exp()
            log_all = torch.logsumexp(scores, dim=1)
            log_true = torch.logsumexp(scores.masked_fill(~targets, -1e9), dim=1)
            loss = (log_all - log_true).mean() + config.l2 * (log_w ** 2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    weights = torch.exp(log_w.detach())
    return weights / weights.mean()


def cross_validated_weights(evidence: torch.Tensor, targets: torch.Tensor,
                            config: ChannelFitConfig | None = None
                            ) -> list[tuple[np.ndarray, torch.Tensor]]:
    """(held-out probe rows, weights fitted on every other fold) per fold."""
    config = config or ChannelFitConfig()
    out = []
    for fold in probe_folds(len(evidence), config.folds, config.seed):
        train = torch.from_numpy(np.setdiff1d(np.arange(len(evidence)), fold))
        out.append((fold, fit_channel_weights(evidence[train], targets[train], config)))
    return out


def probe_evidence(matcher: DenseMatcher, image: np.ndarray, mask: np.ndarray,
                   px_per_cm: float | None, gallery: DenseGallery, top_k: int) -> torch.Tensor:
    """[N, top_k, C] channel evidence of one probe (as it is: one variant) against a gallery."""
    variants = matcher.probe_variants(image, mask, px_per_cm)
    if len(variants) != 1:
        raise QueryError(f"channel weights are fitted on the probe as it is, but the matcher "
                         f"is configured with {len(variants)} variants")
    features, visible = variants[0]
    return channel_evidence(features, visible, gallery.spectra, top_k,
                            matcher.config.min_overlap)


def dataset_evidence(matcher: DenseMatcher, refdb: Dataset, queries: Dataset,
                     split: str | None, top_k: int
                     ) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    """Evidence [P, N, K, C] and true references [P, N] of every usable labelled query, and the
    queries left out with why (no true model in the gallery, or refused by the matcher)."""
    ref_px, query_px = dataset_px_per_cm(refdb), dataset_px_per_cm(queries)
    records = list(refdb.iter_records(["instance_id", "model_id", "print"]))
    prints = [decode_image(r["print"], f"{r['instance_id']} print") for r in records]
    models = [r["model_id"] for r in records]
    gallery = DenseGallery(ReferenceSpectra(
        torch.from_numpy(reference_maps(matcher, prints, ref_px)).to(matcher.device)), ref_px)
    evidence, targets, skipped = [], [], []
    for record in queries.iter_records(["query_id", "split", "print", "mask", "targets"]):
        if split is not None and record["split"] != split:
            continue
        name, truth = record["query_id"], set(record["targets"])
        rows = [model in truth for model in models]
        if not any(rows):
            skipped.append({"query_id": name, "reason": "no true model in the gallery"})
            continue
        image = decode_image(record["print"], f"{name} print")
        mask = decode_image(record["mask"], f"{name} mask") > 127
        try:
            evidence.append(probe_evidence(matcher, image, mask, query_px, gallery, top_k)
                            .half().cpu())
        except QueryError as exc:
            skipped.append({"query_id": name, "reason": str(exc)})
            continue
        targets.append(rows)
    if not evidence:
        raise DatasetError(f"{queries.uri}: no labelled query to fit channel weights on")
    return torch.stack(evidence), torch.tensor(targets), skipped


def reference_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[P] rank of each probe's best true reference among all (ties count against)."""
    best_true = scores.masked_fill(~targets, float("-inf")).amax(dim=1, keepdim=True)
    return (scores >= best_true).sum(dim=1)


def cross_validated_ranks(evidence: torch.Tensor, targets: torch.Tensor,
                          config: ChannelFitConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """([P] ranks with equal weights, [P] ranks with weights fitted on the other folds), both
    on the evidence (the exact matcher may move a best translation outside the kept ones)."""
    evidence = evidence.float()
    equal = reference_ranks(evidence_scores(evidence, torch.ones(evidence.shape[-1])), targets)
    fitted = torch.empty_like(equal)
    for fold, weights in cross_validated_weights(evidence, targets, config):
        rows = torch.from_numpy(fold)
        fitted[rows] = reference_ranks(evidence_scores(evidence[rows], weights), targets[rows])
    return equal, fitted
