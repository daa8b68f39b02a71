"""Attribute-model data: photos grouped by shoe model, decoded into memory at the model's input
size (catalogue `photo` = shop domain, `street_photo` = street domain), attribute targets as
indices into the vocabulary learnt from the training split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from shoematch.attributes.config import AttributeDataConfig
from shoematch.data.dataset import Dataset, open_dataset
from shoematch.data.images import decode_image, fitted_size
from shoematch.data.schema import REFERENCE_KIND, from_row
from shoematch.errors import DatasetError

COLUMNS = ["instance_id", "model_id", "split", "attributes"]


def photo_input(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 H×W×3 → uint8 [3, h, w]: resized (bilinear) to fit, aspect kept, centred on black."""
    height, width = fitted_size(image.shape[:2], size)
    resized = np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))
    out = np.zeros((3, *size), dtype=np.uint8)
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    out[:, top:top + height, left:left + width] = resized.transpose(2, 0, 1)
    return out


@dataclass
class ShoeData:
    """Photos of a set of shoe models. Image arrays are uint8 [n, 3, h, w]; `*_model` gives
    the row of `models` each image belongs to; `targets` [models, attributes] (-1: unknown)."""

    models: list[str]
    shop: np.ndarray
    shop_model: np.ndarray
    street: np.ndarray
    street_model: np.ndarray
    targets: np.ndarray

    def shop_rows(self) -> list[np.ndarray]:
        """Per model, its catalogue image rows."""
        order = np.argsort(self.shop_model, kind="stable")
        bounds = np.searchsorted(self.shop_model[order], np.arange(len(self.models) + 1))
        return [order[bounds[m]:bounds[m + 1]] for m in range(len(self.models))]


def _records(refdb: Dataset) -> list[dict]:
    return [from_row(row) for row in refdb.read_table(COLUMNS).to_pylist()]


def vocabulary_of(refdb: Dataset, config: AttributeDataConfig,
                  names: list[str] | None = None) -> dict[str, list[str]]:
    """Attribute name → sorted values seen in the training split."""
    values: dict[str, set[str]] = {}
    for record in _records(refdb):
        if record["split"] == config.train_split:
            for name, value in (record["attributes"] or {}).items():
                values.setdefault(name, set()).add(value)
    return {name: sorted(values[name]) for name in sorted(names or values) if name in values}


def select_models(refdb: Dataset, split: str | None, limit: int | None) -> list[str]:
    """Model ids of `split` (None: every split), in order of first appearance."""
    seen: dict[str, None] = {}
    for record in _records(refdb):
        if split is None or record["split"] == split:
            seen.setdefault(record["model_id"], None)
    models = list(seen)
    return models[:limit] if limit else models


def shoe_targets(refdb: Dataset, models: list[str],
                 vocabulary: dict[str, list[str]]) -> np.ndarray:
    """[models, attributes] value indices (-1: unknown or a value the vocabulary lacks)."""
    index = {model: m for m, model in enumerate(models)}
    targets = np.full((len(models), len(vocabulary)), -1, dtype=np.int64)
    for record in _records(refdb):
        m = index.get(record["model_id"])
        if m is None:
            continue
        attributes = record["attributes"] or {}
        for a, (name, values) in enumerate(vocabulary.items()):
            if attributes.get(name) in values:
                targets[m, a] = values.index(attributes[name])
    return targets


def load_shoes(refdb: Dataset, models: list[str], vocabulary: dict[str, list[str]],
               size: tuple[int, int], street: bool = True) -> ShoeData:
    """Decode the catalogue (and street) photos of `models`; records without a photo skipped."""
    index = {model: m for m, model in enumerate(models)}
    table = refdb.read_table(["instance_id", "model_id", "photo", "street_photo"])
    shop, shop_model, street_images, street_model = [], [], [], []
    for row in table.to_pylist():
        m = index.get(row["model_id"])
        if m is None:
            continue
        name = row["instance_id"]
        if row["photo"]:
            shop.append(photo_input(decode_image(row["photo"], f"{name}.photo", "RGB"), size))
            shop_model.append(m)
        if street and row["street_photo"]:
            street_images.append(photo_input(
                decode_image(row["street_photo"], f"{name}.street_photo", "RGB"), size))
            street_model.append(m)

    def stack(images: list[np.ndarray]) -> np.ndarray:
        return np.stack(images) if images else np.zeros((0, 3, *size), np.uint8)

    return ShoeData(models, stack(shop), np.asarray(shop_model, np.int64), stack(street_images),
                    np.asarray(street_model, np.int64), shoe_targets(refdb, models, vocabulary))


def check_attribute_data(config: AttributeDataConfig, models_per_batch: int) -> dict:
    """Fail before any cluster work on missing photos, labels or too few shoes."""
    refdb = open_dataset(config.refdb, REFERENCE_KIND)
    vocabulary = vocabulary_of(refdb, config)
    if not vocabulary:
        raise DatasetError(f"{config.refdb}: no attributes in split {config.train_split!r}")
    train = select_models(refdb, config.train_split, config.max_models)
    if len(train) < models_per_batch:
        raise DatasetError(f"{config.refdb}: {len(train)} training shoe models (split "
                           f"{config.train_split!r}); optim.models_per_batch needs "
                           f"{models_per_batch}")
    queries = select_models(refdb, config.eval_split, config.max_models)
    if not queries:
        raise DatasetError(f"{config.refdb}: no shoe models with split {config.eval_split!r}")
    photos = refdb.read_table(["photo", "street_photo"])
    for column in ("photo", "street_photo"):
        if photos.column(column).null_count == len(photos):
            raise DatasetError(f"{config.refdb}: no record has a {column!r}")
    return {"refdb_manifest_sha256": refdb.manifest.digest(), "train_models": len(train),
            "eval_models": len(queries), "vocabulary": vocabulary}
