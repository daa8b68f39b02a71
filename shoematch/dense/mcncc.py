"""Multi-channel normalised cross-correlation (MCNCC, Kong et al. IJCV 2019) between a probe's
feature map and every reference's, at every integer translation, exactly and batched.

score(probe, reference) = max over translations t with enough overlap of
    mean over channels c of NCC_c(t),
NCC_c(t) = Pearson correlation of the probe's channel c and the reference's channel c over the
cells where they overlap at t *and* the probe is visible (its mask); means and norms are taken
over that overlap only, so a partial print is compared only where it has ink.

Why FFT: every term is a correlation of a probe-side map with a reference-side map — the cross
term Σ P·R, the reference's windowed sums Σ R and Σ R² under the probe's mask, and the probe's
own sums Σ P, Σ P² and the overlap count under the reference's support. With all references on
one grid (one canvas, as in the index), the probe-side terms are computed once per probe and
only three correlations per (reference, channel) remain, done as one batched real FFT product.
All of it runs on the tensors' device (GPU when present).

Pitfalls handled: a channel that is constant over the overlap has no correlation (it counts 0,
never NaN); tiny overlaps are not scored (they correlate highly by chance): an overlap must
cover `min_overlap` of the smaller of the probe's visible area and the reference; a probe larger
than the reference is compared over the overlap, never required to fit inside.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

EPS = 1e-6
CACHED_ITEMS = 6  # R and R² spectra at up to three correlation sizes
# References correlated at once. On CPU a small chunk keeps each step's [n, C, h, w] arrays in
# cache: the arithmetic after the transforms is memory-bound (FID-300, 1,175 references × 40
# channels: chunk 8 is ~5× faster than 64). A GPU wants large batches.
CPU_CHUNK, CUDA_CHUNK = 8, 256


def _spectrum(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return torch.fft.rfft2(maps, s=size)


def _correlate(probe_spec: torch.Tensor, ref_spec: torch.Tensor,
               size: tuple[int, int]) -> torch.Tensor:
    """Full linear correlation from spectra (the probe side given flipped)."""
    return torch.fft.irfft2(probe_spec * ref_spec, s=size)


def fft_size(probe_hw: tuple[int, int], ref_hw: tuple[int, int]) -> tuple[int, int]:
    """The full correlation grid: every translation with at least one overlapping cell."""
    return probe_hw[0] + ref_hw[0] - 1, probe_hw[1] + ref_hw[1] - 1


class ReferenceSpectra:
    """The reference side of MCNCC, computed once per gallery and probe grid size.

    `maps` [N, C, H, W] are the references' feature maps on one common grid. Spectra of R and R²
    for a given correlation size are cached (they are reused by every probe of that size). They
    are taken of each (reference, channel) map minus its mean: the correlation is unchanged by
    that shift, and the window variance Σ R² − (Σ R)²/n, a difference of sums, keeps its
    float32 precision.
    """

    def __init__(self, maps: torch.Tensor, chunk: int | None = None) -> None:
        if maps.dim() != 4:
            raise ValueError(f"reference maps must be [N, C, H, W], got {tuple(maps.shape)}")
        self.maps = maps.float()
        self.centred = self.maps - self.maps.mean(dim=(-2, -1), keepdim=True)
        self.chunk = chunk or (CUDA_CHUNK if maps.is_cuda else CPU_CHUNK)
        self._cache: dict[tuple, list[torch.Tensor]] = {}

    @property
    def grid(self) -> tuple[int, int]:
        return int(self.maps.shape[-2]), int(self.maps.shape[-1])

    def __len__(self) -> int:
        return int(self.maps.shape[0])

    def _cached(self, key: tuple, make: Callable[[torch.Tensor], torch.Tensor]
                ) -> list[torch.Tensor]:
        if key not in self._cache:
            while len(self._cache) >= CACHED_ITEMS:  # bounded memory: evict the oldest
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = [make(part) for part in self.centred.split(self.chunk)]
        return self._cache[key]

    def spectra(self, size: tuple[int, int]) -> list[torch.Tensor]:
        """Per chunk: the spectrum of R at this correlation size."""
        return self._cached(("R", size), lambda part: _spectrum(part, size))

    def squared_spectra(self, size: tuple[int, int]) -> list[torch.Tensor]:
        return self._cached(("R2", size), lambda part: _spectrum(part * part, size))


def _correlate_rows(spec_a: torch.Tensor, spec_b: torch.Tensor, size: tuple[int, int],
                    box: tuple[slice, slice]) -> torch.Tensor:
    """The full correlation restricted to `box`: the column transform (complex, over every row
    of the spectrum) first, then the real row transforms only for the rows inside the box —
    translations outside it cannot score, so neither their transforms nor their arithmetic are
    paid for."""
    columns = torch.fft.ifft(spec_a * spec_b, n=size[0], dim=-2)[..., box[0], :]
    return torch.fft.irfft(columns, n=size[1], dim=-1)[..., box[1]]


def _valid_box(valid: torch.Tensor) -> tuple[slice, slice] | None:
    """The bounding box of the translations that may score (None: there are none)."""
    rows = torch.nonzero(valid.any(dim=1)).flatten()
    cols = torch.nonzero(valid.any(dim=0)).flatten()
    if rows.numel() == 0:
        return None
    return (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))


@dataclass
class _Window:
    """The probe side of one MCNCC computation: its spectra and window statistics over the box
    of translations that may score."""

    size: tuple[int, int]
    box: tuple[slice, slice]
    invalid: torch.Tensor  # [h', w'] translations inside the box that may not score
    inverse_count: torch.Tensor
    spec_m: torch.Tensor
    spec_pm: torch.Tensor
    mean_p: torch.Tensor
    var_p: torch.Tensor


def _check(probe: torch.Tensor, mask: torch.Tensor, references: ReferenceSpectra) -> None:
    if probe.dim() != 3 or mask.shape != probe.shape[-2:]:
        raise ValueError(f"probe must be [C, h, w] with a [h, w] mask, got {tuple(probe.shape)} "
                         f"and {tuple(mask.shape)}")
    if references.maps.shape[1] != probe.shape[0]:
        raise ValueError(f"probe has {probe.shape[0]} channels, references "
                         f"{references.maps.shape[1]}")


def _window(probe: torch.Tensor, mask: torch.Tensor, references: ReferenceSpectra,
            min_overlap: float) -> _Window | None:
    """Probe-side terms, once per probe, inside the box only (None: no translation may score)."""
    _check(probe, mask, references)
    probe_h, probe_w = probe.shape[-2:]
    size = fft_size((probe_h, probe_w), references.grid)
    visible = mask.to(probe.dtype).float()
    masked = probe.float() * visible
    # Correlation = convolution with the probe flipped in both axes.
    flip = (-2, -1)
    spec_m = _spectrum(visible.flip(flip), size)
    spec_pm = _spectrum(masked.flip(flip), size)
    spec_u = _spectrum(torch.ones(references.grid, device=probe.device), size)
    count = _correlate(spec_m, spec_u, size).round()  # [H', W'] overlap cells
    area = min(float(visible.sum()), float(references.grid[0] * references.grid[1]))
    valid = count >= max(min_overlap * area, 1.0)
    box = _valid_box(valid)
    if box is None:
        return None
    inverse_count = 1.0 / count[box].clamp_min(1.0)
    sum_p = _correlate(spec_pm, spec_u, size)[:, box[0], box[1]]  # [C, h', w']
    sum_p2 = _correlate(_spectrum((masked * masked).flip(flip), size), spec_u,
                        size)[:, box[0], box[1]]
    mean_p = sum_p * inverse_count
    var_p = (sum_p2 - sum_p * mean_p).clamp_min(0.0)
    return _Window(size, box, ~valid[box], inverse_count, spec_m, spec_pm, mean_p, var_p)


def _channel_ncc(window: _Window, references: ReferenceSpectra) -> Iterator[torch.Tensor]:
    """Per chunk of references: [n, C, h', w'] per-channel NCC at every translation in the box."""
    size, box = window.size, window.box
    for spec_r, spec_r2 in zip(references.spectra(size), references.squared_spectra(size),
                               strict=True):
        sum_r = _correlate_rows(window.spec_m, spec_r, size, box)  # [n, C, h', w']
        var_r = _correlate_rows(window.spec_m, spec_r2, size, box)
        var_r.sub_(sum_r * sum_r * window.inverse_count).clamp_min_(0.0)  # Σ R² − (Σ R)²/n
        ncc = _correlate_rows(window.spec_pm, spec_r, size, box).sub_(
            sum_r.mul_(window.mean_p))  # covariance
        yield ncc.mul_(var_r.mul_(window.var_p).add_(EPS).rsqrt_())


def _combined(ncc: torch.Tensor, window: _Window, weights: torch.Tensor | None) -> torch.Tensor:
    """[n, h' w'] channel mean (or weighted mean) per translation, -inf where none may score."""
    combined = ncc.mean(dim=1) if weights is None else torch.einsum("nchw,c->nhw", ncc, weights)
    return combined.masked_fill_(window.invalid, float("-inf")).flatten(1)


def mcncc_scores(probe: torch.Tensor, mask: torch.Tensor, references: ReferenceSpectra,
                 min_overlap: float = 0.5, return_offsets: bool = False,
                 channel_weights: torch.Tensor | None = None
                 ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """[N] best MCNCC score of `probe` [C, h, w] (visible where `mask` [h, w]) per reference.

    `channel_weights` [C] (learned, positive) turn the channel mean into a weighted mean.
    With `return_offsets` also [N, 2] best translations (dy, dx): the reference cell under the
    probe's top-left cell. A reference with no valid translation scores -inf.
    """
    window = _window(probe, mask, references, min_overlap)
    if window is None:
        scores = torch.full((len(references),), float("-inf"), device=probe.device)
        if return_offsets:
            return scores, torch.zeros((len(references), 2), dtype=torch.long,
                                       device=probe.device)
        return scores
    weights = None if channel_weights is None else channel_weights / channel_weights.sum()
    best_scores, best_offsets = [], []
    for ncc in _channel_ncc(window, references):
        value, index = _combined(ncc, window, weights).max(dim=1)
        best_scores.append(value)
        best_offsets.append(index)
    scores = torch.cat(best_scores)
    if not return_offsets:
        return scores
    index = torch.cat(best_offsets)
    height, width = probe.shape[-2:]
    box = window.box
    box_width = box[1].stop - box[1].start
    offsets = torch.stack([index // box_width + box[0].start - (height - 1),
                           index % box_width + box[1].start - (width - 1)], dim=1)
    return scores, offsets


def channel_evidence(probe: torch.Tensor, mask: torch.Tensor, references: ReferenceSpectra,
                     top_k: int = 8, min_overlap: float = 0.5) -> torch.Tensor:
    """[N, top_k, C] per-channel NCC at each reference's `top_k` best translations under the
    plain channel mean (NaN where fewer translations may score).

    Why: fitting channel weights needs each channel's part of the score where the score is
    made; a weighted mean moves the best translation only among translations that already
    scored well under the plain mean, so a few of them carry what a fit needs."""
    channels = probe.shape[0]
    window = _window(probe, mask, references, min_overlap)
    if window is None:
        return torch.full((len(references), top_k, channels), float("nan"),
                          device=probe.device)
    out = []
    for ncc in _channel_ncc(window, references):
        combined = _combined(ncc, window, None)
        k = min(top_k, combined.shape[1])
        value, index = combined.topk(k, dim=1)  # [n, k]
        picked = torch.gather(ncc.flatten(2), 2, index[:, None, :].expand(-1, channels, -1))
        picked = picked.transpose(1, 2).masked_fill(~torch.isfinite(value)[..., None],
                                                    float("nan"))
        out.append(F.pad(picked, (0, 0, 0, top_k - k), value=float("nan")))
    return torch.cat(out)
