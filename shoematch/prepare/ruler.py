"""The photograph's scale from its ruler: a band of periodic tick marks along a straight line.

Why a spectrum and not tick detection: at the usual ~20 px/cm the mm ticks are 2 px apart and
blur together, but the pattern of long cm ticks, half-cm ticks and numbers still repeats every
centimetre, so the band's intensity profile along the ruler has a sharp fundamental at 1/cm
whatever the print's clutter. The search rotates the image so each candidate direction runs
along the rows, scores every row window by how peaked its spectrum is, keeps the straight band
whose windows agree on one period, then measures that period on the whole band with many
harmonics (sub-pixel) and takes its spread over segments as the uncertainty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import uniform_filter1d

ANGLE_STEP_DEG = 3.0  # coarse search; ticks a few px long tolerate this tilt
WINDOW = 160  # px along the ruler per spectrum: at least 3 cm at the largest scale searched
BAND_ROWS = 3  # rows averaged per profile (ticks are longer than this)
MIN_PERIOD, MAX_PERIOD = 4.0, 50.0  # px of the strongest repeat (mm, half-cm or cm ticks)
MAX_CM_PERIOD = 50.0  # px: the preparation's largest scale (MAX_PX_PER_CM)
PEAKINESS_MIN = 6.0  # a window counts as periodic above this peak / median spectrum ratio
MIN_WINDOWS = 2  # periodic windows in a row, in one line, that make a ruler candidate
MIN_SIDE = WINDOW // 2  # smaller images cannot hold 2 cm of ruler at the smallest scale
SEGMENTS = 4  # the band is cut in this many pieces to measure the period's spread
HARMONIC_TOLERANCE = 0.015  # two bands' periods this close to a whole ratio: one graduation
CANDIDATES = 6  # strongest lines (one per direction) measured in full
FULL_QUALITY = 2.0  # comb strength (mean log harmonic ratio) taken as full confidence
FOUND_SCORE = 0.35  # below this confidence the answer is "no ruler found"


@dataclass(frozen=True)
class RulerFinding:
    """The ruler's scale, or why there is none. `confidence` is a score in [0, 1] built from
    the periodic band's strength and the agreement of its segments, not a probability."""

    found: bool
    reason: str
    px_per_cm: float | None = None
    uncertainty: float | None = None  # px/cm, one standard error over the band's segments
    confidence: float = 0.0
    angle_deg: float | None = None  # the ruler's direction, counter-clockwise from +x, [0, 180)
    # The ruler's band as four (x, y) corners in the photograph's pixels.
    corners: tuple[tuple[float, float], ...] | None = None
    cm_measured: float | None = None  # length of ruler the period was measured on

    def as_dict(self) -> dict:
        return {"found": self.found, "reason": self.reason, "px_per_cm": self.px_per_cm,
                "uncertainty": self.uncertainty, "confidence": round(self.confidence, 3),
                "angle_deg": self.angle_deg, "cm_measured": self.cm_measured,
                "corners": [list(c) for c in self.corners] if self.corners else None}


def _rotate(grey: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """The image turned so `angle` (CCW from +x) runs along the rows, and where it is valid."""
    image = Image.fromarray(grey)
    turned = np.asarray(image.rotate(-angle, resample=Image.Resampling.BILINEAR, expand=True),
                        np.float32)
    valid = Image.fromarray(np.full(grey.shape, 255, np.uint8)).rotate(
        -angle, resample=Image.Resampling.NEAREST, expand=True)
    return turned, np.asarray(valid) > 0


def _window_spectra(turned: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, ...]:
    """Peakiness and peak period of every (row, window) of the horizontal derivative."""
    deriv = np.diff(turned, axis=1)
    ok = valid[:, 1:] & valid[:, :-1]
    deriv = uniform_filter1d(deriv, BAND_ROWS, axis=0)
    step = WINDOW // 2
    starts = np.arange(0, deriv.shape[1] - WINDOW + 1, step)
    rows = np.arange(0, deriv.shape[0], 2)
    if starts.size == 0 or rows.size == 0:
        empty = np.zeros((rows.size, starts.size))
        return empty, empty, starts
    idx = starts[:, None] + np.arange(WINDOW)[None, :]
    segs = deriv[rows][:, idx]  # rows × windows × WINDOW
    full = ok[rows][:, idx].all(axis=2)
    segs = segs - segs.mean(axis=2, keepdims=True)
    power = np.abs(np.fft.rfft(segs * np.hanning(WINDOW), axis=2)) ** 2
    k_lo = int(np.ceil(WINDOW / MAX_PERIOD))
    k_hi = int(np.floor(WINDOW / MIN_PERIOD))
    band = power[:, :, k_lo:k_hi + 1]
    floor = np.median(power[:, :, 1:], axis=2) + 1e-9
    peak = band.argmax(axis=2) + k_lo
    peakiness = np.where(full, band.max(axis=2) / floor, 0.0)
    return peakiness, WINDOW / peak, starts


def _best_line(peakiness: np.ndarray, period: np.ndarray) -> tuple[float, int, list[int]]:
    """The row whose periodic windows agree on one period: (score, row index, window list)."""
    best: tuple[float, int, list[int]] = (0.0, -1, [])
    for r in range(peakiness.shape[0]):
        good = np.flatnonzero(peakiness[r] > PEAKINESS_MIN)
        if good.size < MIN_WINDOWS:
            continue
        ref = np.median(period[r, good])
        agree = [int(w) for w in good if abs(period[r, w] / ref - 1) < 0.12]
        if len(agree) < MIN_WINDOWS:
            continue
        score = float(np.log(peakiness[r, agree]).sum())
        if score > best[0]:
            best = (score, r, agree)
    return best


def _amplitude(profile: np.ndarray, freqs: np.ndarray | Sequence[float]) -> np.ndarray:
    """|DFT| of the profile at arbitrary frequencies (cycles per px), normalised by length."""
    x = np.arange(profile.size)
    return np.abs(np.exp(-2j * np.pi * np.outer(freqs, x)) @ profile) / profile.size


def _refine_period(profile: np.ndarray, period: float, harmonics: int = 4) -> float:
    """Sub-pixel period: the maximum of the harmonic power sum near the coarse period, read
    off one zero-padded spectrum (interpolated between its bins)."""
    size = 32 * profile.size
    power = np.abs(np.fft.rfft(profile, size)) ** 2
    bins = np.arange(power.size) / size
    grid = 1.0 / period * np.linspace(0.94, 1.06, 481)
    total = sum(np.interp(grid * h, bins, power, right=0.0) for h in range(1, harmonics + 1))
    return float(1.0 / grid[int(np.argmax(total))])


def _stands_out(profile: np.ndarray, freq: float, factor: float = 4.0) -> bool:
    """The profile's amplitude at `freq` rises `factor` × over its neighbouring frequencies
    (a local floor: the intensity spectrum falls with frequency)."""
    around = freq * np.concatenate([np.linspace(0.7, 0.9, 20), np.linspace(1.1, 1.3, 20)])
    floor = float(np.median(_amplitude(profile, around))) + 1e-9
    return bool(_amplitude(profile, [freq])[0] > factor * floor)


def _fundamental(profiles: list[np.ndarray], period: float) -> float:
    """The centimetre period from the strongest repeat, which may be a harmonic (mm or half-cm
    ticks): the pattern repeats every cm (numbers, long ticks), so the cm is the longest multiple
    of that period (grown by 2, 3 or 5 at a time) whose frequency stands out of its neighbours
    in the band or in the strips beside it (where the numbers are)."""
    cm = period
    while True:
        longer = [cm * m for m in (2, 3, 5) if cm * m <= 2 * MAX_CM_PERIOD
                  and any(_stands_out(p, 1 / (cm * m)) for p in profiles)]
        if not longer:
            return cm
        cm = max(longer)


def _band_extent(turned: np.ndarray, valid: np.ndarray, row: int, x0: int, x1: int,
                 period: float) -> tuple[int, int]:
    """Rows above and below `row` that still repeat with `period` (the ticks' length)."""
    deriv = uniform_filter1d(np.diff(turned[:, x0:x1], axis=1), BAND_ROWS, axis=0)
    freq = 1.0 / period

    def strong(r: int) -> bool:
        if not (0 <= r < turned.shape[0]) or not valid[r, x0:x1].all():
            return False
        line = deriv[r] - deriv[r].mean()
        spectrum = np.abs(np.fft.rfft(line)) / line.size
        harmonics = _amplitude(line, [freq / 2, freq, 2 * freq])
        return harmonics.max() > 3 * (np.median(spectrum[1:]) + 1e-9)

    reach = int(6 * period)
    gap = max(2, int(period / 2))  # a solid edge line between ticks and numbers is no end
    rows = [r for r in range(row - reach, row + reach + 1) if strong(r)]
    top = bottom = row
    for r in sorted(r for r in rows if r > row):
        if r - bottom > gap:
            break
        bottom = r
    for r in sorted((r for r in rows if r < row), reverse=True):
        if top - r > gap:
            break
        top = r
    return top, bottom + 1


def _corners(shape: tuple[int, int], turned_shape: tuple[int, int], angle: float,
             box: tuple[int, int, int, int]) -> tuple[tuple[float, float], ...]:
    """The band's box in the turned image mapped back to the photograph's pixels."""
    x0, y0, x1, y1 = box
    th, tw = turned_shape
    h, w = shape
    rad = np.deg2rad(angle)
    cos, sin = np.cos(rad), np.sin(rad)
    out = []
    for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)):
        dx, dy = x - tw / 2, y - th / 2
        # the turned image is the photograph turned clockwise by `angle` (as seen): turn back
        ox = cos * dx + sin * dy + w / 2
        oy = -sin * dx + cos * dy + h / 2
        out.append((round(float(ox), 1), round(float(oy), 1)))
    return tuple(out)


@dataclass(frozen=True)
class _Band:
    """One candidate line measured: its cm period, spread, comb strength and box."""

    cm: float
    stderr: float
    comb: float  # mean log ratio of the first harmonics of 1/cm over their neighbours
    angle: float
    box: tuple[int, int, int, int]  # x0, top, x1, bottom in the turned image
    turned_shape: tuple[int, int]

    @property
    def quality(self) -> float:
        """Comb strength, discounted when the segments disagree (relative spread over 1 %)."""
        return self.comb * float(np.exp(-self.stderr / self.cm / 0.01))


def _comb(profile: np.ndarray, cm: float, harmonics: int = 4) -> float:
    """How strongly the profile repeats every `cm` px: a ruler's ticks give a whole comb of
    harmonics above the neighbouring frequencies, a texture one or two."""
    ratios = []
    for h in range(1, harmonics + 1):
        freq = h / cm
        if freq >= 0.5:  # unresolved harmonics count as absent: too coarse to measure well
            ratios.append(0.0)
            continue
        around = freq * np.concatenate([np.linspace(0.85, 0.95, 10), np.linspace(1.05, 1.15, 10)])
        floor = float(np.median(_amplitude(profile, around))) + 1e-9
        ratios.append(max(0.0, float(np.log(_amplitude(profile, [freq])[0] / floor))))
    return float(np.mean(ratios))


def _measure(grey: np.ndarray, angle: float, row: int, x0: int, x1: int,
             period: float) -> _Band:
    turned, valid = _rotate(grey, angle)
    top, bottom = _band_extent(turned, valid, row, x0, x1, period)
    profile = turned[top:bottom, x0:x1].mean(axis=0)
    profile = profile - profile.mean()
    height = bottom - top
    beside = [turned[max(0, a):b, x0:x1].mean(axis=0)
              for a, b in ((top - height, top), (bottom, bottom + height))
              if b - max(0, a) > 0 and b <= turned.shape[0] and valid[max(0, a):b, x0:x1].all()]
    cm = _fundamental([profile] + [p - p.mean() for p in beside],
                      _refine_period(profile, period))
    cm = _refine_period(profile, cm, harmonics=8)
    pieces = np.array_split(profile, SEGMENTS)
    spread = [_refine_period(p - p.mean(), cm, harmonics=8) for p in pieces
              if p.size >= 2 * cm]
    stderr = float(np.std(spread) / np.sqrt(len(spread))) if len(spread) > 1 else cm * 0.05
    return _Band(cm, stderr, _comb(profile, cm), angle, (x0, top, x1, bottom), turned.shape)


def _candidates(grey: np.ndarray) -> list[tuple[float, float, int, list[int], np.ndarray,
                                                float]]:
    """The best line of every direction, strongest first: (score, angle, row, windows,
    window starts, period)."""
    found = []
    for angle in np.arange(0.0, 180.0, ANGLE_STEP_DEG):
        turned, valid = _rotate(grey, float(angle))
        peakiness, period, starts = _window_spectra(turned, valid)
        score, r, windows = _best_line(peakiness, period)
        if r >= 0:
            found.append((score, float(angle), r * 2, windows, starts,
                          float(np.median(period[r, windows]))))
    return sorted(found, key=lambda c: -c[0])


def _longest_repeat(bands: list[_Band]) -> _Band:
    """The best band, or a band of at least half its quality whose period is a whole multiple
    (2–5×) of it: the same graduation seen over its full cm repeat rather than a harmonic."""
    best = max(bands, key=lambda b: b.quality)
    for band in sorted(bands, key=lambda b: -b.cm):
        ratio = band.cm / best.cm
        whole = round(ratio)
        if (2 <= whole <= 5 and abs(ratio / whole - 1) < HARMONIC_TOLERANCE
                and band.quality >= 0.5 * best.quality and band.cm <= MAX_CM_PERIOD):
            return band
    return best


def find_ruler(grey: np.ndarray) -> RulerFinding:
    """px/cm from a ruler's graduation anywhere in the grey photograph (uint8 H×W), in any
    direction; `found=False` with the reason when no band of ticks stands out."""
    if grey.ndim != 2:
        return RulerFinding(False, f"expected a grey H×W image, got shape {grey.shape}")
    if min(grey.shape) < MIN_SIDE:
        return RulerFinding(False, f"no ruler found: the image ({grey.shape[1]}×{grey.shape[0]} "
                                   f"px) is smaller than the {MIN_SIDE} px a ruler needs")
    if float(grey.std()) < 2.0:
        return RulerFinding(False, "no ruler found: the image is blank (no contrast)")
    bands: list[_Band] = []
    for _, angle, row, windows, starts, period in _candidates(grey)[:CANDIDATES]:
        band = _measure(grey, *_refine_angle(grey, angle, row, windows, starts, period))
        # The same graduation seen again from a tilted direction: the straighter view (the
        # stronger coarse line, measured first) stands for it.
        if not any(abs(band.cm / seen.cm - 1) < 0.02 for seen in bands):
            bands.append(band)
    if not bands:
        return RulerFinding(False, "no ruler found: no straight band of periodic tick marks")
    band = _longest_repeat(bands)
    confidence = float(np.clip(band.quality / FULL_QUALITY, 0.0, 1.0))
    x0, top, x1, bottom = band.box
    corners = _corners(grey.shape, band.turned_shape, band.angle, band.box)
    px_per_cm, stderr = round(band.cm, 3), round(band.stderr, 3)
    length = round((x1 - x0) / band.cm, 1)
    if confidence < FOUND_SCORE:
        return RulerFinding(False, f"no ruler found: the best periodic band ({px_per_cm:g} "
                                   f"px/cm ± {stderr:g}) is too weak or inconsistent "
                                   f"(confidence {confidence:.2f} < {FOUND_SCORE})",
                            confidence=confidence, angle_deg=round(band.angle % 180, 2),
                            corners=corners)
    return RulerFinding(True, f"ruler found: {px_per_cm:g} px/cm measured over {length:g} cm",
                        px_per_cm, stderr, confidence, round(band.angle % 180, 2), corners,
                        length)


def _refine_angle(grey: np.ndarray, angle: float, row: int, windows: list[int],
                  starts: np.ndarray, period: float) -> tuple[float, int, int, int, float]:
    """Finer direction around the coarse one: the tilt that makes the band's ticks sharpest
    (largest fundamental-plus-harmonics amplitude of the band-averaged profile)."""
    x0 = int(starts[min(windows)])
    x1 = int(starts[max(windows)]) + WINDOW
    base_h, base_w = _rotate(grey, angle)[0].shape
    best = (-1.0, angle, row, x0, x1)
    for delta in np.arange(-ANGLE_STEP_DEG, ANGLE_STEP_DEG + 0.01, 0.5):
        turned, valid = _rotate(grey, angle + float(delta))
        dy, dx = (turned.shape[0] - base_h) // 2, (turned.shape[1] - base_w) // 2
        for r in range(row + dy - 4, row + dy + 5, 2):
            if r - 2 < 0 or r + 3 > turned.shape[0]:
                continue
            segment = turned[r - 2:r + 3, x0 + dx:x1 + dx]
            if segment.shape[1] < WINDOW or not valid[r - 2:r + 3, x0 + dx:x1 + dx].all():
                continue
            profile = segment.mean(axis=0)
            profile = profile - profile.mean()
            strength = float(sum(_amplitude(profile, [h / period])[0] for h in (1, 2, 3)))
            if strength > best[0]:
                best = (strength, angle + float(delta), r, x0 + dx, x1 + dx)
    _, angle, row, x0, x1 = best
    return angle, row, x0, x1, period
