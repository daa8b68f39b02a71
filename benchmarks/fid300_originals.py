"""FID-300 from the scene photographs (`originals/`) through the automatic preparation, beside the
hand-made crops (`probes/`), with the dense matcher trying both turns of the sole (0°, 180°).

    python -m benchmarks.fid300 --src DIR --from-originals [--out DIR]

Each original → ruler (px/cm) → print region and mask → the long axis laid toe right (as the
ingested references) → the case file's `prepare` on the index canvas, the mask through the same
steps → dense scores against every reference. Nothing from `probes/` enters the automatic path;
the crops serve only (a) their own rows and (b) the failure counts: where each crop lies in its
original (which quarter turn, which box) is found by normalised cross-correlation, then a step
has failed when no ruler is found, its scale is over SCALE_TOLERANCE from the crops' 20 px/cm,
the long axis is over AXIS_TOLERANCE_DEG from the crop's, or the mask covers under half the
crop's box. Writes OUT/fid300_originals.json.
"""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.signal import fftconvolve

from benchmarks.fid300_data import FidData, load_fid
from shoematch.cases.preparation import Preparation, prepare
from shoematch.cases.proposal import Proposal, propose
from shoematch.data.readers.fid300 import SOURCE_PX_PER_CM
from shoematch.dense.matcher import DenseConfig, DenseGallery, DenseMatcher
from shoematch.dense.ranking import cmc_percent, first_target_rank
from shoematch.dense.rerank import variant_scores
from shoematch.errors import ShoematchError
from shoematch.log import get_logger

log = get_logger("benchmarks.fid300_originals")
SCALE_TOLERANCE = 0.05  # relative px/cm error counted as a wrong scale
AXIS_TOLERANCE_DEG = 20.0  # the long axis this far from the crop's: a wrong orientation
MIN_BOX_COVER = 0.5  # mask share of the crop's box below which the region missed the print
GT_FACTOR = 0.5  # crops located in their originals at half resolution (speed)


@dataclass
class CropPlace:
    """Where the hand-made crop lies in its original: turned `quarter` × 90° counter-clockwise,
    its box (left, top, right, bottom) and the match's NCC."""

    quarter: int
    box: tuple[int, int, int, int]
    ncc: float

    @property
    def toe_right_deg(self) -> float:
        """The counter-clockwise turn that lays the original toe right, as the crop (toe up)
        turned 90° clockwise by the ingest."""
        return float((-90 * self.quarter - 90) % 360)


def _ncc_peak(image: np.ndarray, template: np.ndarray) -> tuple[float, int, int]:
    t = template - template.mean()
    ones = np.ones_like(template)
    num = fftconvolve(image, t[::-1, ::-1], mode="valid")
    s1 = fftconvolve(image, ones, mode="valid")
    s2 = fftconvolve(image * image, ones, mode="valid")
    var = np.maximum(s2 - s1 * s1 / t.size, 1e-6)
    ncc = num / np.sqrt(var * (t * t).sum())
    y, x = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
    return float(ncc[y, x]), int(x), int(y)


def locate_crop(original: Image.Image, crop: Image.Image) -> CropPlace:
    """The crop's quarter turn and box in its original (evaluation only: never an input)."""
    def half(image: Image.Image) -> Image.Image:
        return image.resize((max(1, round(image.width * GT_FACTOR)),
                             max(1, round(image.height * GT_FACTOR))), Image.Resampling.LANCZOS)

    scene = np.asarray(half(original), np.float32)
    best = CropPlace(0, (0, 0, 0, 0), -1.0)
    for quarter in range(4):
        turned = np.asarray(half(crop.rotate(90 * quarter, expand=True)), np.float32)
        h, w = min(turned.shape[0], scene.shape[0] - 2), min(turned.shape[1], scene.shape[1] - 2)
        y0, x0 = (turned.shape[0] - h) // 2, (turned.shape[1] - w) // 2
        ncc, x, y = _ncc_peak(scene, turned[y0:y0 + h, x0:x0 + w])
        if ncc > best.ncc:
            box = tuple(round(v / GT_FACTOR) for v in (x, y, x + w, y + h))
            best = CropPlace(quarter, box, ncc)
    return best


def _axis_error(turn: float, truth: float) -> float:
    diff = abs((turn - truth) % 180.0)
    return min(diff, 180.0 - diff)


def failures(proposal: Proposal, place: CropPlace) -> dict[str, bool]:
    """Which automatic steps failed on this photograph, judged against its hand-made crop."""
    ruler = proposal.ruler
    region = proposal.region
    wrong_scale = ruler.found and abs(ruler.px_per_cm / SOURCE_PX_PER_CM - 1) > SCALE_TOLERANCE
    turns = proposal.turns
    left, top, right, bottom = place.box
    cover = float(region.mask[top:bottom, left:right].mean()) if region.found else 0.0
    return {
        "no ruler": not ruler.found,
        "wrong scale": bool(wrong_scale),
        "wrong orientation": not turns
        or _axis_error(turns[0], place.toe_right_deg) > AXIS_TOLERANCE_DEG,
        "toe/heel sense wrong (both turns tried)": not turns
        or abs((turns[0] - place.toe_right_deg + 180) % 360 - 180) > AXIS_TOLERANCE_DEG,
        "region missing the print": cover < MIN_BOX_COVER,
    }


def _probe(original: bytes, proposal: Proposal, px_per_cm: float, data: FidData
           ) -> tuple[np.ndarray, np.ndarray]:
    """The print and its visible region on the index canvas, through the case file's prepare
    (as the workbench would search it)."""
    params = proposal.preparation()
    if params is None or params.px_per_cm != px_per_cm:
        turns = proposal.turns
        params = Preparation(crop=proposal.region.crop if proposal.region.found else None,
                             rotate_deg=turns[0] if turns else 0.0, px_per_cm=px_per_cm)
    canvas = data.probes[0].image.shape
    image = prepare(original, params, canvas, data.px_per_cm)
    mask = proposal.canvas_mask(params, canvas, data.px_per_cm)
    return image, (image > 0) if mask is None else mask


def _scores(matcher: DenseMatcher, gallery: DenseGallery, image: np.ndarray, mask: np.ndarray,
            px_per_cm: float) -> list[np.ndarray]:
    """Scores per probe variant (0° then 180°): a row takes one or the best of both."""
    return [variant_scores([v], gallery.spectra, matcher.config.min_overlap)
            for v in matcher.probe_variants(image, mask, px_per_cm)]


def _row(ranks: list[int | None], models: int) -> dict:
    return {**cmc_percent(ranks, models), "ranks": ranks}


def run_originals(src: str, out: str) -> dict:
    started = time.monotonic()
    data = load_fid(src, os.path.join(out, "data"))
    models = len(set(data.reference_models))
    matcher = DenseMatcher(DenseConfig(rotations=(0.0, 180.0)))
    log.info("reference feature maps (%d references)", len(data.reference_prints))
    gallery = matcher.gallery(data.reference_prints, data.px_per_cm, crop=True)
    rows: dict[str, list[int | None]] = {name: [] for name in ROWS}
    counts = {name: 0 for name in FAILURES}
    per_probe = []
    root = Path(src)
    for n, probe in enumerate(data.probes, start=1):
        number = int(probe.query_id.removeprefix("FID-P"))
        both = _scores(matcher, gallery, probe.image, probe.mask, data.px_per_cm)
        rank = [first_target_rank(s, data.reference_models, probe.targets)
                for s in (both[0], np.maximum(*both))]
        rows[ROWS[0]].append(rank[0])
        rows[ROWS[1]].append(rank[1])
        original = (root / "originals" / f"{number:05d}.jpg").read_bytes()
        grey = Image.open(io.BytesIO(original)).convert("L")
        proposal = propose(np.asarray(grey))
        place = locate_crop(grey, Image.open(root / "probes" / f"{number:05d}.jpg").convert("L"))
        failed = failures(proposal, place)
        for name, value in failed.items():
            counts[name] += value
        measured = proposal.px_per_cm
        auto = {}
        for name, px_per_cm in ((ROWS[2], measured), (ROWS[4], measured or SOURCE_PX_PER_CM)):
            if px_per_cm is None:
                auto[name] = [None, None]
                continue
            if px_per_cm == measured and ROWS[2] in auto:  # a ruler: the same probe again
                auto[name] = auto[ROWS[2]]
                continue
            try:
                image, mask = _probe(original, proposal, px_per_cm, data)
                scored = _scores(matcher, gallery, image, mask, data.px_per_cm)
                auto[name] = [first_target_rank(s, data.reference_models, probe.targets)
                              for s in (scored[0], np.maximum(*scored))]
            except ShoematchError as exc:  # a prepared print with nothing to match
                log.info("  %s: %s", probe.query_id, exc)
                auto[name] = [None, None]
        rows[ROWS[2]].append(auto[ROWS[2]][1])
        rows[ROWS[3]].append(auto[ROWS[2]][0])
        rows[ROWS[4]].append(auto[ROWS[4]][1])
        per_probe.append({"probe": number, "ruler": proposal.ruler.as_dict(),
                          "turns": proposal.turns, "crop": proposal.region.crop,
                          "place": place.__dict__, "failed": failed, "ranks": auto,
                          "crop_ranks": rank})
        log.info("%d/%d %s: %s crop %s, auto %s", n, len(data.probes), probe.query_id,
                 [k for k, v in failed.items() if v], rank, auto)
    result = {"rows": {name: _row(ranks, models) for name, ranks in rows.items()},
              "failures": counts, "probes": per_probe, "config": matcher.config.model_dump(),
              "minutes": (time.monotonic() - started) / 60}
    print_originals(result, len(data.probes), len(data.reference_prints))
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "fid300_originals.json"), "w") as handle:
        json.dump(result, handle, indent=2)
    return result


ROWS = ("crops (probes/), rotation 0°",
        "crops (probes/), rotations 0° and 180°",
        "originals, automatic preparation, rotations 0° and 180°",
        "originals, automatic preparation, better-scored turn only (0°)",
        "originals, automatic; scale assumed 20 px/cm when no ruler")
FAILURES = ("no ruler", "wrong scale", "wrong orientation",
            "toe/heel sense wrong (both turns tried)", "region missing the print")
COLUMNS = ("top1%", "top5%", "top10%", "top20%", "hit@1", "hit@10")


def print_originals(result: dict, probes: int, references: int) -> None:
    print(f"\n{probes} probes vs {references} references; dense matcher "
          "(Lite1 block 10 at 20 px/cm, ImageNet)")
    print("| probe input | " + " | ".join(COLUMNS) + " |\n|---|" + "---|" * len(COLUMNS))
    print("| MCNCC on whole photographs (Kong et al. 2019, published) | 15.2 | | | | | |")
    for name, row in result["rows"].items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.1f}" for c in COLUMNS) + " |")
    print(f"\nper-step failures of the automatic preparation (of {probes}; scale over "
          f"{SCALE_TOLERANCE:.0%} from 20 px/cm, axis over {AXIS_TOLERANCE_DEG:g}° from the "
          f"crop's, mask under {MIN_BOX_COVER:.0%} of the crop's box):")
    for name, count in result["failures"].items():
        print(f"- {name}: {count}")
    print_steps(result["probes"])
    print(f"\nwhole command: {result['minutes']:.1f} min")



def print_steps(probes: list[dict]) -> None:
    """The scale error against the crops' 20 px/cm and the orientation against the crop's."""
    errors = [abs(p["ruler"]["px_per_cm"] / SOURCE_PX_PER_CM - 1) if p["ruler"]["found"]
              else None for p in probes]
    bins = {"within 2 %": sum(e is not None and e <= 0.02 for e in errors),
            "2–5 %": sum(e is not None and 0.02 < e <= 0.05 for e in errors),
            "over 5 % (wrong scale)": sum(e is not None and e > 0.05 for e in errors),
            "no ruler found": sum(e is None for e in errors)}
    print("\n| ruler scale vs 20 px/cm | photographs |\n|---|---|")
    for name, count in bins.items():
        print(f"| {name} | {count} |")
    axis = sum(not p["failed"]["wrong orientation"] for p in probes)
    sense = sum(not p["failed"]["toe/heel sense wrong (both turns tried)"] for p in probes)
    print("\n| orientation vs the crop's | photographs |\n|---|---|")
    print(f"| long axis within {AXIS_TOLERANCE_DEG:g}° | {axis} |")
    print(f"| and toe/heel sense right (best-scored turn) | {sense} |")
