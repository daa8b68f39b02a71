"""Reader of the CriSp data release (Shafique et al.): tread references and real query sets.

Layout under `src` (every part optional, but at least one must be there):

    train/ and reference/        depth/ print/ mask/ image/  (image = RGB tread photo)
        File names are `<a>_<b>_<shoe id>_…`: the third `_` field is the shoe (model) id and the
        stem is the instance id. One instance is the files with one stem across the sub-folders;
        print and mask are required, depth and photo optional.
    val_FID/                     labels.npy  (pickled dict: 6-digit label → "shoeid1_shoeid2_…")
                                 labels_crime_scene_to_reference_map.npy  ((N, 2): print stem,
                                 label number), print/, mask/ (visible region; missing = whole)
    val_ShoeCase/                make_models.npy, make_model_mapping/<make_model>_similar.npy
                                 (shoe ids that count as correct), dust/ and blood/

`make_models.npy` is either a 1-D array of make-model names, a print then belonging to the
longest name its file name starts with, or (as in CriSp's released loader) an (N, 2) array of
[key, make-model name] where the key is the second `_` field of the print's file name.
Make-model names are compared lower-cased with spaces as `_`, like the `_similar.npy` names. A
category folder holds its prints directly, or in print/ with masks in mask/.

Every image is resized to the canvas (bilinear; nearest for masks), which leaves CriSp's own
192 × 384 images untouched. Prints become 255 = ink: `invert_print=None` decides per image
whether the ink is dark (its background, outside the mask or along the border, is brighter than
the print inside), True/False force the choice for every print.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shoematch.data.images import encode_png, read_image_file
from shoematch.data.readers.common import (
    DEFAULT_CANVAS,
    IMAGE_SUFFIXES,
    ReaderOutput,
    list_images,
    require_file,
)
from shoematch.data.readers.placement import binary_mask, ink_up, resize
from shoematch.data.schema import Canvas
from shoematch.errors import DatasetError

SOURCE = "crisp"
REFERENCE_SPLITS = ("train", "reference")
SUBFOLDERS = ("depth", "print", "mask", "image")
REQUIRED_SUBFOLDERS = ("print", "mask")
SHOECASE_CATEGORIES = ("dust", "blood")


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(require_file(path), allow_pickle=True)
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read NumPy file ({exc})") from exc


def _norm(make_model: str) -> str:
    return make_model.lower().replace(" ", "_")


class _Images:
    """Reads one source's images onto the canvas, with the print convention applied."""

    def __init__(self, canvas: Canvas, invert_print: bool | None) -> None:
        self.canvas = canvas
        self.invert_print = invert_print

    def grey(self, path: Path, resample: str = "bilinear") -> np.ndarray:
        return resize(read_image_file(str(path), "L"), *self.canvas.shape, resample)

    def mask(self, path: Path | None) -> np.ndarray:
        if path is None:
            return np.full(self.canvas.shape, 255, np.uint8)
        return binary_mask(self.grey(path, "nearest"))

    def print_and_mask(self, print_path: Path, mask_path: Path | None) -> tuple[bytes, bytes]:
        mask = self.mask(mask_path)
        ink = ink_up(self.grey(print_path), mask, self.invert_print)
        return encode_png(ink), encode_png(mask)


@dataclass(frozen=True)
class _Instance:
    split: str
    print: Path
    mask: Path
    depth: Path | None
    photo: Path | None


def _required(files: dict[str, Path | None], folder: Path, sub: str, stem: str) -> Path:
    """The instance's file in sub-folder `sub`, which it cannot do without."""
    path = files[sub]
    if path is None:
        raise DatasetError(f"{folder / sub / stem}.*: file not found (needed by instance {stem!r})")
    return path


def _reference_files(folder: Path) -> list[_Instance]:
    """Instances of a train/reference folder: files by sub-folder, print and mask checked."""
    present = {sub: list_images(folder / sub) for sub in SUBFOLDERS
               if sub in REQUIRED_SUBFOLDERS or (folder / sub).is_dir()}
    instances = []
    for stem in sorted(set().union(*present.values())):
        files = {sub: present.get(sub, {}).get(stem) for sub in SUBFOLDERS}
        print_file = _required(files, folder, "print", stem)
        mask_file = _required(files, folder, "mask", stem)
        if len(stem.split("_")) < 3:
            raise DatasetError(
                f"{print_file}: file name has no third '_'-separated field (the shoe id)")
        instances.append(_Instance(folder.name, print_file, mask_file, files["depth"],
                                   files["image"]))
    return instances


def _references(instances: list[_Instance], images: _Images) -> Iterator[dict[str, Any]]:
    for instance in instances:
        print_png, mask_png = images.print_and_mask(instance.print, instance.mask)
        model_id = instance.print.stem.split("_")[2]
        photo = None
        if instance.photo is not None:
            photo = resize(read_image_file(str(instance.photo), "RGB"), *images.canvas.shape)
        yield {
            "instance_id": instance.print.stem,
            "model_id": model_id,
            "pattern_id": model_id,
            "depth": None if instance.depth is None else encode_png(images.grey(instance.depth)),
            "print": print_png,
            "mask": mask_png,
            "photo": None if photo is None else encode_png(photo),
            "street_photo": None,
            "descriptors": None,
            "attributes": None,
            "source": SOURCE,
            "split": instance.split,
        }


def _strip_suffix(name: str) -> str:
    return name[: -len(Path(name).suffix)] if name.lower().endswith(IMAGE_SUFFIXES) else name


def _fid_queries(folder: Path) -> list[dict[str, Any]]:
    """val_FID query specs (files and targets), every label resolved up front."""
    labels_path = folder / "labels.npy"
    labels = _load_npy(labels_path)
    if labels.shape != () or not isinstance(labels.item(), dict):
        raise DatasetError(f"{labels_path}: expected a pickled dict of label → shoe ids")
    shoes = {str(k).zfill(6): sorted(set(str(v).split("_"))) for k, v in labels.item().items()}
    map_path = folder / "labels_crime_scene_to_reference_map.npy"
    rows = _load_npy(map_path)
    if rows.ndim != 2 or rows.shape[1] != 2:
        raise DatasetError(f"{map_path}: expected an (N, 2) array, got shape {rows.shape}")
    targets: dict[str, list[str]] = {}
    for key, label in rows:
        number = str(label).zfill(6)
        if number not in shoes:
            raise DatasetError(
                f"{map_path}: label {number} of print {key!r} is not in {labels_path}")
        targets[_strip_suffix(str(key))] = shoes[number]
    masks = list_images(folder / "mask") if (folder / "mask").is_dir() else {}
    specs = []
    for stem, path in list_images(folder / "print").items():
        if stem not in targets:
            raise DatasetError(f"{path}: print has no entry in {map_path}")
        specs.append({"query_id": f"FID-{stem}", "print": path, "mask": masks.get(stem),
                      "targets": targets[stem], "category": "fid", "split": "val"})
    return specs


def _shoecase_queries(folder: Path) -> list[dict[str, Any]]:
    """val_ShoeCase query specs, each print matched to its make-model's similar shoes."""
    models_path = folder / "make_models.npy"
    table = _load_npy(models_path)
    if table.ndim == 1:
        by_key = None
        names = sorted({_norm(str(n)) for n in table}, key=len, reverse=True)
    elif table.ndim == 2 and table.shape[1] == 2:
        by_key = {str(k): _norm(str(n)) for k, n in table}
        names = sorted(set(by_key.values()))
    else:
        raise DatasetError(f"{models_path}: expected a 1-D or (N, 2) array, got {table.shape}")
    similar = {name: sorted(str(s) for s in _load_npy(
        folder / "make_model_mapping" / f"{name}_similar.npy")) for name in names}
    specs = []
    for category in SHOECASE_CATEGORIES:
        base = folder / category
        if not base.is_dir():
            continue
        nested = (base / "print").is_dir()
        prints = list_images(base / "print" if nested else base)
        masks = list_images(base / "mask") if nested and (base / "mask").is_dir() else {}
        for stem, path in prints.items():
            if by_key is not None:
                fields = stem.split("_")
                name = by_key.get(fields[1]) if len(fields) > 1 else None
            else:
                name = next((n for n in names if _norm(stem).startswith(n)), None)
            if name is None:
                raise DatasetError(f"{path}: file name matches no make-model in {models_path}")
            specs.append({"query_id": f"ShoeCase-{category}-{stem}", "print": path,
                          "mask": masks.get(stem), "targets": similar[name],
                          "category": category, "split": "test"})
    return specs


def _queries(specs: list[dict[str, Any]], images: _Images) -> Iterator[dict[str, Any]]:
    for spec in specs:
        print_png, mask_png = images.print_and_mask(spec["print"], spec["mask"])
        yield {"query_id": spec["query_id"], "print": print_png, "mask": mask_png,
               "targets": spec["targets"], "category": spec["category"], "seen": False,
               "source": SOURCE, "split": spec["split"]}


def read_crisp(src: str, canvas: Canvas = DEFAULT_CANVAS,
               invert_print: bool | None = None) -> ReaderOutput:
    """Read a CriSp release folder (see the module docstring); nothing is decoded yet."""
    root = Path(src)
    parts = [*REFERENCE_SPLITS, "val_FID", "val_ShoeCase"]
    if not any((root / part).is_dir() for part in parts):
        raise DatasetError(f"{root}: no CriSp folder found (expected one of {parts})")
    instances = [instance for split in REFERENCE_SPLITS if (root / split).is_dir()
                 for instance in _reference_files(root / split)]
    seen: dict[str, Path] = {}
    for instance in instances:
        stem = instance.print.stem
        if stem in seen:
            raise DatasetError(f"{instance.print}: instance id {stem!r} also used by {seen[stem]}")
        seen[stem] = instance.print
    specs = []
    if (root / "val_FID").is_dir():
        specs += _fid_queries(root / "val_FID")
    if (root / "val_ShoeCase").is_dir():
        specs += _shoecase_queries(root / "val_ShoeCase")
    images = _Images(canvas, invert_print)
    return ReaderOutput(
        canvas=canvas,
        references=_references(instances, images) if instances else None,
        queries=_queries(specs, images) if specs else None,
        reference_count=len(instances),
        query_count=len(specs),
        params={
            "resize": "stretched to the canvas (bilinear; nearest for masks)",
            "invert_print": "auto" if invert_print is None else invert_print,
            "splits": sorted({instance.split for instance in instances}),
            "query_sets": sorted({spec["category"] for spec in specs}),
        },
    )
