"""Reader of FID-300 (Kortylewski et al.): clean reference impressions and crime-scene probes.

Layout under `src` (see ../shared/data/fid300/README.md): `references/NNNNN.png`,
`probes/NNNNN.jpg` and `labels_dev.csv` (`probe_id,reference_id`). Probes without a label
row are left out (the held-out evaluation probes), and counted in the params.

Physical scale is kept: every image is 20 px/cm, and all are scaled by the one factor `scale`
(0.5 → 10 px/cm), so a probe and its reference show the tread at the same size. Images are
rotated 90° clockwise (toe up → toe right, the sole horizontal on the canvas) and centred; what
lies beyond the canvas is cropped (nothing at 0.5: references are at most 293 × 135 px there,
probes at most 319 × 124 on the 384 × 192 canvas). FID-300 ink is dark on light, so prints are
inverted to 255 = ink. References carry only a print: depth and photo are None, and the mask
is the sole region derived from the print (placement.sole_mask). A probe's mask is the canvas
area the probe covers, since where the print lies inside it is unknown.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from shoematch.data.images import encode_png, read_image_file
from shoematch.data.readers.common import (
    DEFAULT_CANVAS,
    ReaderOutput,
    image_size,
    list_images,
    require_file,
)
from shoematch.data.readers.placement import (
    overflows,
    place_centred,
    sole_mask,
    toe_up_to_toe_right,
)
from shoematch.data.readers.placement import scale as scale_image
from shoematch.data.schema import Canvas
from shoematch.errors import ConfigError, DatasetError

SOURCE = "fid300"
SOURCE_PX_PER_CM = 20.0
LABELS = "labels_dev.csv"


def reference_model_id(reference: int) -> str:
    return f"FID-R{reference:05d}"


def _number(text: str, where: str) -> int:
    if not text.strip().isdigit():
        raise DatasetError(f"{where}: expected a number, got {text!r}")
    return int(text)


def _read_labels(path: Path) -> dict[int, int]:
    """probe id → reference id from labels_dev.csv."""
    with open(require_file(path), newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"probe_id", "reference_id"} - set(reader.fieldnames or ())
        if missing:
            raise DatasetError(f"{path}: missing column(s) {sorted(missing)}")
        labels = {}
        for line, row in enumerate(reader, start=2):
            where = f"{path} line {line}"
            labels[_number(row["probe_id"], where)] = _number(row["reference_id"], where)
    return labels


def _upright_ink(path: Path, factor: float) -> np.ndarray:
    """The image as 255 = ink, toe to the right, at the reader's scale."""
    grey = read_image_file(str(path), "L")
    return scale_image(toe_up_to_toe_right(255 - grey), factor)


def _references(files: dict[int, Path], canvas: Canvas, factor: float
                ) -> Iterator[dict[str, Any]]:
    px_per_cm = SOURCE_PX_PER_CM * factor
    for reference, path in files.items():
        ink = _upright_ink(path, factor)
        model_id = reference_model_id(reference)
        yield {
            "instance_id": model_id,
            "model_id": model_id,
            "pattern_id": model_id,
            "depth": None,
            "print": encode_png(place_centred(ink, canvas)[0]),
            "mask": encode_png(place_centred(sole_mask(ink, px_per_cm), canvas)[0]),
            "photo": None,
            "street_photo": None,
            "descriptors": None,
            "attributes": None,
            "source": SOURCE,
            "split": "reference",
        }


def _queries(probes: list[tuple[int, Path, int]], canvas: Canvas, factor: float
             ) -> Iterator[dict[str, Any]]:
    for probe, path, reference in probes:
        placed, covered = place_centred(_upright_ink(path, factor), canvas)
        yield {
            "query_id": f"FID-P{probe:05d}",
            "print": encode_png(placed),
            "mask": encode_png(covered),
            "targets": [reference_model_id(reference)],
            "category": SOURCE,
            "seen": False,
            "source": SOURCE,
            "split": "val",
        }


def _by_number(folder: Path) -> dict[int, Path]:
    numbered = ((_number(stem, str(path)), path) for stem, path in list_images(folder).items())
    return dict(sorted(numbered))


def read_fid300(src: str, canvas: Canvas = DEFAULT_CANVAS, scale: float = 0.5) -> ReaderOutput:
    """Read FID-300 (see the module docstring); files are checked now, decoded lazily."""
    if not scale > 0:
        raise ConfigError(f"fid300 scale must be positive, got {scale}")
    root = Path(src)
    labels_path = root / LABELS
    labels = _read_labels(labels_path)
    references = _by_number(root / "references")
    probe_files = _by_number(root / "probes")
    probes = []
    for probe, reference in sorted(labels.items()):
        if probe not in probe_files:
            raise DatasetError(f"{labels_path}: probe {probe} has no image in {root / 'probes'}")
        if reference not in references:
            raise DatasetError(
                f"{labels_path}: reference {reference} of probe {probe} has no image in "
                f"{root / 'references'}")
        probes.append((probe, probe_files[probe], reference))

    def cropped(paths: list[Path]) -> int:
        sizes = (image_size(path) for path in paths)
        return sum(overflows(round(w * scale), round(h * scale), canvas) for h, w in sizes)

    return ReaderOutput(
        canvas=canvas,
        references=_references(references, canvas, scale),
        queries=_queries(probes, canvas, scale),
        reference_count=len(references),
        query_count=len(probes),
        params={
            "px_per_cm": SOURCE_PX_PER_CM * scale,
            "scale": scale,
            "rotation": "90° clockwise (toe up → toe right)",
            "placement": "centred",
            "beyond_canvas": "cropped",
            "cropped_references": cropped(list(references.values())),
            "cropped_probes": cropped([path for _, path, _ in probes]),
            "print": "inverted (FID-300 ink is dark on light)",
            "reference_mask": "sole region from the print (threshold, closing, column fill)",
            "probe_mask": "canvas area the probe covers",
            "unlabelled_probes_left_out": len(probe_files) - len(probes),
        },
    )
