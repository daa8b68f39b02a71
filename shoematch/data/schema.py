"""The record schema (docs/records.md): one module owns the Arrow schemas and validation.

Image conventions, shared by every producer and consumer:
- all images of one dataset lie on one canonical canvas (height × width, the sole horizontal);
- `depth`: uint8 grey, 255 = the highest tread surface (first to touch the ground), 0 = no sole;
- `print`: uint8 grey, 255 = ink / contact, 0 = background;
- `mask`: uint8 grey, 255 = inside the sole (references) or the visible region (queries);
- `photo` / `street_photo`: RGB tread photos ("shop" catalogue and "street" domains).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from shoematch.data.images import decode_image
from shoematch.errors import DatasetError, ImageError

SCHEMA_VERSION = 1

# The 17 NFRC footwear descriptors (Budka et al.), code → name.
DESCRIPTORS: dict[str, str] = {
    "D01": "bar",
    "D01-01": "wavy",
    "D01-02": "curved-wavy",
    "D02": "circular",
    "D02-01": "target",
    "D03": "3-sided",
    "D04": "4-sided",
    "D05": "5-sided",
    "D06": "6-sided",
    "D07": "complex",
    "D08": "zigzag",
    "D09": "text",
    "D10": "logo",
    "D11": "lattice",
    "D12": "textured",
    "D13": "hollow",
    "D14": "plain",
}
DESCRIPTOR_CODES: tuple[str, ...] = tuple(DESCRIPTORS)

REFERENCE_KIND = "references"
QUERY_KIND = "queries"
SOLE_LENGTH_CM = 30.0  # the canvas width of synthetic and folder data, in cm

REFERENCE_SCHEMA = pa.schema(
    [
        pa.field("instance_id", pa.string(), nullable=False),
        pa.field("model_id", pa.string(), nullable=False),
        pa.field("pattern_id", pa.string(), nullable=False),
        pa.field("depth", pa.binary()),
        pa.field("print", pa.binary(), nullable=False),
        pa.field("mask", pa.binary(), nullable=False),
        pa.field("photo", pa.binary()),
        pa.field("street_photo", pa.binary()),
        pa.field("descriptors", pa.list_(pa.string())),
        pa.field("attributes", pa.map_(pa.string(), pa.string())),
        pa.field("source", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
    ]
)

QUERY_SCHEMA = pa.schema(
    [
        pa.field("query_id", pa.string(), nullable=False),
        pa.field("print", pa.binary(), nullable=False),
        pa.field("mask", pa.binary(), nullable=False),
        pa.field("targets", pa.list_(pa.string()), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("seen", pa.bool_(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
    ]
)

SCHEMAS: dict[str, pa.Schema] = {REFERENCE_KIND: REFERENCE_SCHEMA, QUERY_KIND: QUERY_SCHEMA}
ID_FIELDS: dict[str, str] = {REFERENCE_KIND: "instance_id", QUERY_KIND: "query_id"}
# Images checked against the canvas, and their decode mode; None-able ones may be absent.
IMAGE_FIELDS: dict[str, dict[str, str]] = {
    REFERENCE_KIND: {"depth": "L", "print": "L", "mask": "L", "photo": "RGB",
                     "street_photo": "RGB"},
    QUERY_KIND: {"print": "L", "mask": "L"},
}


@dataclass(frozen=True)
class Canvas:
    """The canonical image size of a dataset (CriSp: 192 high × 384 wide)."""

    height: int = 192
    width: int = 384

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def sole_px_per_cm(self) -> float:
        """Scale when the canvas width spans one sole length (the synthetic and folder data's
        convention): what dense matching needs to compare prints at the same physical size."""
        return self.width / SOLE_LENGTH_CM


def schema_for(kind: str) -> pa.Schema:
    if kind not in SCHEMAS:
        raise DatasetError(f"unknown dataset kind {kind!r}; expected one of {sorted(SCHEMAS)}")
    return SCHEMAS[kind]


def _record_name(kind: str, record: Mapping[str, Any], index: int) -> str:
    ident = record.get(ID_FIELDS[kind])
    return f"{ID_FIELDS[kind]}={ident!r}" if ident else f"record #{index}"


def validate_record(kind: str, record: Mapping[str, Any], canvas: Canvas, index: int = 0,
                    decode_images: bool = True) -> None:
    """Raise DatasetError naming the record and field if `record` breaks the schema."""
    schema = schema_for(kind)
    name = _record_name(kind, record, index)
    unknown = set(record) - set(schema.names)
    if unknown:
        raise DatasetError(f"{name}: unknown field(s) {sorted(unknown)}")
    for field in schema:
        value = record.get(field.name)
        if value is None and not field.nullable:
            raise DatasetError(f"{name}: missing required field {field.name!r}")
    for field in (ID_FIELDS[kind], "model_id"):
        if field in schema.names and not str(record.get(field) or "").strip():
            raise DatasetError(f"{name}: field {field!r} is empty")
    if kind == REFERENCE_KIND:
        unknown_codes = set(record.get("descriptors") or ()) - set(DESCRIPTOR_CODES)
        if unknown_codes:
            raise DatasetError(f"{name}: unknown descriptor code(s) {sorted(unknown_codes)}")
    if decode_images:
        for field, mode in IMAGE_FIELDS[kind].items():
            data = record.get(field)
            if data is None:
                continue
            image = decode_image(data, f"{name} field {field!r}", mode)
            if image.shape[:2] != canvas.shape:
                raise ImageError(
                    f"{name} field {field!r}: image is {image.shape[1]}×{image.shape[0]} "
                    f"(w×h), not on the canvas {canvas.width}×{canvas.height}"
                )


def validate_records(kind: str, records: Iterable[Mapping[str, Any]], canvas: Canvas,
                     seen_ids: set[str] | None = None, decode_images: bool = True) -> int:
    """Validate records in order, also rejecting duplicate ids (tracked in `seen_ids`)."""
    seen_ids = set() if seen_ids is None else seen_ids
    id_field = ID_FIELDS[kind]
    count = 0
    for index, record in enumerate(records):
        validate_record(kind, record, canvas, index, decode_images)
        ident = record[id_field]
        if ident in seen_ids:
            raise DatasetError(f"duplicate {id_field} {ident!r}")
        seen_ids.add(ident)
        count += 1
    return count


def to_table(kind: str, records: list[Mapping[str, Any]]) -> pa.Table:
    """Build an Arrow table of `records` in the kind's schema (attributes as name → value)."""
    schema = schema_for(kind)
    columns = {name: [r.get(name) for r in records] for name in schema.names}
    if "attributes" in columns:
        columns["attributes"] = [
            list((a or {}).items()) if isinstance(a, Mapping) else a for a in columns["attributes"]
        ]
    return pa.Table.from_pydict(columns, schema=schema)


def from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """Turn an Arrow/Ray row back into a record dict (attributes as a plain dict)."""
    record = dict(row)
    attributes = record.get("attributes")
    if attributes is not None and not isinstance(attributes, Mapping):
        record["attributes"] = {k: v for k, v in attributes}
    return record
