"""Reader of a generic folder of images described by a CSV manifest.

`<src>/manifest.csv` has one row per reference instance:

    instance_id, model_id, print          required
    pattern_id                            optional; empty = model_id
    depth, mask, photo                    optional image paths, relative to `src`
    descriptors                           optional NFRC codes separated by ';' (e.g. "D01;D14")
    split                                 optional; empty = "reference"
    attr_<name>                           any number; non-empty cells become attributes[name]

`<src>/queries.csv` (optional) has one row per query:

    query_id, print, targets              required; targets = model ids separated by ';'
    mask                                  optional visible region; empty = where the print lies
    category, seen, split                 optional; empty = "folder", false, "test"

Any other column is an error, so a misspelt column name cannot be silently dropped.

Images are taken as they are on disk and put on the canvas in one of two ways (`resize`):
"fit" (default) scales each image to fit with its aspect ratio kept, centres it and pads with 0
(background), so tread elements keep their shape; "stretch" resizes to exactly the canvas, for
images already framed like it. `rotate` (degrees clockwise) first turns every image, e.g. 90 for
upright prints with the toe at the top. Prints must be 255 = ink unless `invert_print` is True
(dark ink) or None (decided per image before placing: ink is dark when the image border is
brighter than the whole, see placement.ink_is_dark). A reference without a mask
gets the sole region: depth > 0 when it has a depth map, else placement.sole_mask of the print,
taking the sole to span about the canvas width (~30 cm).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shoematch.data.images import encode_png, read_image_file
from shoematch.data.readers.common import DEFAULT_CANVAS, ReaderOutput, require_file
from shoematch.data.readers.placement import (
    binary_mask,
    fit,
    ink_up,
    resize,
    rotate_clockwise,
    sole_mask,
)
from shoematch.data.schema import DESCRIPTOR_CODES, Canvas
from shoematch.errors import ConfigError, DatasetError, ImageError

SOURCE = "folder"
QUERIES = "queries.csv"
RESIZE_MODES = ("fit", "stretch")
ATTRIBUTE_PREFIX = "attr_"

REFERENCE_REQUIRED = ("instance_id", "model_id", "print")
REFERENCE_OPTIONAL = ("pattern_id", "depth", "mask", "photo", "descriptors", "split")
QUERY_REQUIRED = ("query_id", "print", "targets")
QUERY_OPTIONAL = ("mask", "category", "seen", "split")
TRUE = ("1", "true", "yes", "y", "t")
FALSE = ("", "0", "false", "no", "n", "f")


def _read_csv(path: Path, required: tuple[str, ...], optional: tuple[str, ...],
              attributes: bool) -> list[tuple[str, dict[str, str]]]:
    """Rows of a CSV as (where, cells) with cells stripped; columns checked against the spec."""
    with open(require_file(path), newline="") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or ()]
        for column in required:
            if column not in columns:
                raise DatasetError(f"{path}: missing required column {column!r}")
        for column in columns:
            known = column in required or column in optional
            if not known and not (attributes and column.startswith(ATTRIBUTE_PREFIX)):
                raise DatasetError(f"{path}: unknown column {column!r}")
        rows = []
        for line, row in enumerate(reader, start=2):
            cells = {c.strip(): (v or "").strip() for c, v in row.items() if c is not None}
            rows.append((f"{path} line {line}", cells))
    return rows


def _split_list(cell: str) -> list[str]:
    return [item.strip() for item in cell.split(";") if item.strip()]


@dataclass
class _Placer:
    """Puts one image file onto the canvas as the reader's parameters say."""

    root: Path
    canvas: Canvas
    resize: str
    rotate: int
    invert_print: bool | None

    def path(self, cell: str, where: str) -> Path | None:
        """The image a cell points to (None for an empty cell); it must exist."""
        if not cell:
            return None
        path = self.root / cell
        if not path.is_file():
            raise ImageError(f"{path}: image file not found (named in {where})")
        return path

    def place(self, path: Path, mode: str = "L", resample: str = "bilinear",
              is_print: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The image on the canvas and the 0/255 mask of the area it covers.

        A print gets 255 = ink before it is placed, so the padding reads as no ink and the
        automatic choice (whole image as the mask: border vs the rest) never sees padding.
        """
        image = rotate_clockwise(read_image_file(str(path), mode), self.rotate)
        if is_print:
            image = ink_up(image, np.full(image.shape, 255, np.uint8), self.invert_print)
        if self.resize == "fit":
            return fit(image, self.canvas, resample)
        covered = np.full(self.canvas.shape, 255, np.uint8)
        return resize(image, *self.canvas.shape, resample), covered


def _reference_specs(rows: list[tuple[str, dict[str, str]]], placer: _Placer
                     ) -> list[dict[str, Any]]:
    specs, seen = [], set()
    for where, cells in rows:
        for column in ("instance_id", "model_id", "print"):
            if not cells[column]:
                raise DatasetError(f"{where}: empty {column!r}")
        instance_id = cells["instance_id"]
        if instance_id in seen:
            raise DatasetError(f"{where}: duplicate instance_id {instance_id!r}")
        seen.add(instance_id)
        descriptors = _split_list(cells.get("descriptors", ""))
        unknown = sorted(set(descriptors) - set(DESCRIPTOR_CODES))
        if unknown:
            raise DatasetError(f"{where}: unknown descriptor code(s) {unknown}")
        attributes = {column[len(ATTRIBUTE_PREFIX):]: value for column, value in cells.items()
                      if column.startswith(ATTRIBUTE_PREFIX) and value}
        specs.append({
            "instance_id": instance_id,
            "model_id": cells["model_id"],
            "pattern_id": cells.get("pattern_id") or cells["model_id"],
            "files": {field: placer.path(cells.get(field, ""), where)
                      for field in ("print", "depth", "mask", "photo")},
            "descriptors": descriptors or None,
            "attributes": attributes or None,
            "split": cells.get("split") or "reference",
        })
    return specs


def _query_specs(rows: list[tuple[str, dict[str, str]]], placer: _Placer) -> list[dict[str, Any]]:
    specs, seen = [], set()
    for where, cells in rows:
        for column in ("query_id", "print"):
            if not cells[column]:
                raise DatasetError(f"{where}: empty {column!r}")
        if cells["query_id"] in seen:
            raise DatasetError(f"{where}: duplicate query_id {cells['query_id']!r}")
        seen.add(cells["query_id"])
        seen_cell = cells.get("seen", "").lower()
        if seen_cell not in TRUE + FALSE:
            raise DatasetError(f"{where}: 'seen' must be true or false, got {cells['seen']!r}")
        specs.append({
            "query_id": cells["query_id"],
            "files": {field: placer.path(cells.get(field, ""), where)
                      for field in ("print", "mask")},
            "targets": _split_list(cells["targets"]),
            "category": cells.get("category") or SOURCE,
            "seen": seen_cell in TRUE,
            "split": cells.get("split") or "test",
        })
    return specs


def _references(specs: list[dict[str, Any]], placer: _Placer) -> Iterator[dict[str, Any]]:
    px_per_cm = placer.canvas.sole_px_per_cm
    for spec in specs:
        files = spec["files"]
        ink, _ = placer.place(files["print"], is_print=True)
        depth = None if files["depth"] is None else placer.place(files["depth"])[0]
        if files["mask"] is not None:
            mask = binary_mask(placer.place(files["mask"], resample="nearest")[0])
        elif depth is not None:
            mask = (depth > 0).astype(np.uint8) * 255
        else:
            mask = sole_mask(ink, px_per_cm)
        photo = None if files["photo"] is None else placer.place(files["photo"], "RGB")[0]
        yield {
            "instance_id": spec["instance_id"],
            "model_id": spec["model_id"],
            "pattern_id": spec["pattern_id"],
            "depth": None if depth is None else encode_png(depth),
            "print": encode_png(ink),
            "mask": encode_png(mask),
            "photo": None if photo is None else encode_png(photo),
            "street_photo": None,
            "descriptors": spec["descriptors"],
            "attributes": spec["attributes"],
            "source": SOURCE,
            "split": spec["split"],
        }


def _queries(specs: list[dict[str, Any]], placer: _Placer) -> Iterator[dict[str, Any]]:
    for spec in specs:
        ink, covered = placer.place(spec["files"]["print"], is_print=True)
        mask_path = spec["files"]["mask"]
        mask = covered if mask_path is None else binary_mask(
            placer.place(mask_path, resample="nearest")[0])
        yield {
            "query_id": spec["query_id"],
            "print": encode_png(ink),
            "mask": encode_png(mask),
            "targets": spec["targets"],
            "category": spec["category"],
            "seen": spec["seen"],
            "source": SOURCE,
            "split": spec["split"],
        }


def read_folder(src: str, canvas: Canvas = DEFAULT_CANVAS, manifest: str = "manifest.csv",
                resize: str = "fit", rotate: int = 0, invert_print: bool | None = False
                ) -> ReaderOutput:
    """Read a manifest-described folder (see the module docstring); images decode lazily."""
    if resize not in RESIZE_MODES:
        raise ConfigError(f"folder resize must be one of {RESIZE_MODES}, got {resize!r}")
    if rotate % 90:
        raise ConfigError(f"folder rotate must be a multiple of 90 degrees, got {rotate}")
    root = Path(src)
    placer = _Placer(root, canvas, resize, rotate % 360, invert_print)
    references = _reference_specs(
        _read_csv(root / manifest, REFERENCE_REQUIRED, REFERENCE_OPTIONAL, attributes=True), placer)
    queries_path = root / QUERIES
    queries = _query_specs(
        _read_csv(queries_path, QUERY_REQUIRED, QUERY_OPTIONAL, attributes=False), placer
    ) if queries_path.is_file() else []
    return ReaderOutput(
        canvas=canvas,
        references=_references(references, placer),
        queries=_queries(queries, placer) if queries else None,
        reference_count=len(references),
        query_count=len(queries),
        params={
            "px_per_cm": canvas.sole_px_per_cm,
            "manifest": manifest,
            "resize": resize,
            "rotate": rotate % 360,
            "invert_print": "auto" if invert_print is None else invert_print,
        },
    )
