"""Search filters on NFRC descriptors and shoe attributes, checked against what the index holds.

Descriptors: every listed code must be present on a reference. Attributes: name → one value or
a list of accepted values. An unknown code, attribute name or attribute value is a request
error naming the culprit and the known ones (the index manifest lists every value its
references carry), so a misspelt value is never a search that silently matches nothing; a
known descriptor code that no reference carries simply matches nothing.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import ValidationError

from shoematch.config import StrictModel
from shoematch.data.schema import DESCRIPTOR_CODES
from shoematch.errors import QueryError

# The deepest valid filter is {"attributes": {"name": ["value"]}}: three levels. Both caps are
# checked on the raw text, before parsing, so hostile JSON costs no recursion.
MAX_FILTERS_CHARS = 4096
MAX_FILTERS_DEPTH = 4


class SearchFilters(StrictModel):
    descriptors: list[str] = []
    attributes: dict[str, str | list[str]] = {}

    @property
    def empty(self) -> bool:
        return not self.descriptors and not self.attributes


def parse_filters(raw: str | Mapping[str, Any] | None,
                  attribute_values: Mapping[str, Collection[str]] | None = None
                  ) -> SearchFilters:
    """Parse a JSON string or mapping; unknown keys, codes, attribute names and values (of
    `attribute_values`: name → the values the index holds) are errors."""
    if raw is None or raw == "":
        return SearchFilters()
    if isinstance(raw, str):
        check_filters_text(raw)
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise QueryError(f"filters: not valid JSON ({exc})") from exc
    if not isinstance(raw, Mapping):
        raise QueryError("filters: expected a JSON object like "
                         '{"descriptors": ["D02"], "attributes": {"color": "black"}}')
    try:
        filters = SearchFilters.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise QueryError(f"filters: {problems}") from exc
    unknown = [code for code in filters.descriptors if code not in DESCRIPTOR_CODES]
    if unknown:
        raise QueryError(f"filters: unknown descriptor code(s) {unknown}; known: "
                         f"{list(DESCRIPTOR_CODES)}")
    if attribute_values is not None:
        check_attribute_values(filters, attribute_values)
    return filters


def check_attribute_values(filters: SearchFilters,
                           attribute_values: Mapping[str, Collection[str]]) -> None:
    missing = sorted(set(filters.attributes) - set(attribute_values))
    if missing:
        raise QueryError(f"filters: unknown attribute name(s) {missing}; known: "
                         f"{sorted(attribute_values)}")
    for name, wanted in filters.attributes.items():
        known = attribute_values[name]
        unknown = [value for value in ([wanted] if isinstance(wanted, str) else wanted)
                   if value not in known]
        if unknown:
            raise QueryError(f"filters: unknown value(s) {unknown} of attribute {name!r}; "
                             f"known: {sorted(known)}")


def check_filters_text(raw: str) -> None:
    """Refuse over-long or over-nested filter JSON without parsing it."""
    if len(raw) > MAX_FILTERS_CHARS:
        raise QueryError(f"filters: {len(raw)} characters; at most {MAX_FILTERS_CHARS} allowed")
    depth, in_string, escaped = 0, False, False
    for char in raw:
        if escaped:
            escaped = False
        elif in_string:
            escaped = char == "\\"
            in_string = char != '"'
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_FILTERS_DEPTH:
                raise QueryError(f"filters: nested deeper than {MAX_FILTERS_DEPTH} levels")
        elif char in "]}":
            depth -= 1


class FilterColumns:
    """A shard's filterable metadata as arrays, built once per loaded shard."""

    def __init__(self, metadata: pa.Table) -> None:
        descriptors = metadata.column("descriptors").to_pylist()
        self.count = metadata.num_rows
        self.descriptors = np.zeros((self.count, len(DESCRIPTOR_CODES)), dtype=bool)
        for row, codes in enumerate(descriptors):
            for code in codes or []:
                self.descriptors[row, DESCRIPTOR_CODES.index(code)] = True
        self.attributes: dict[str, np.ndarray] = {}
        for row, pairs in enumerate(metadata.column("attributes").to_pylist()):
            for name, value in pairs or []:
                column = self.attributes.setdefault(name, np.full(self.count, None, dtype=object))
                column[row] = value

    def mask(self, filters: SearchFilters) -> np.ndarray | None:
        """Bool [n] of references passing the filters, or None when nothing is filtered."""
        if filters.empty:
            return None
        keep = np.ones(self.count, dtype=bool)
        for code in filters.descriptors:
            keep &= self.descriptors[:, DESCRIPTOR_CODES.index(code)]
        for name, wanted in filters.attributes.items():
            accepted = [wanted] if isinstance(wanted, str) else list(wanted)
            column = self.attributes.get(name)
            keep &= np.isin(column, accepted) if column is not None else False
        return keep
