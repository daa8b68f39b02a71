"""Label vocabularies of the auxiliary models and the check every user-supplied label passes:
an unknown descriptor code or attribute name is an error that names it (HTTP 4xx upstream)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from shoematch.data.schema import DESCRIPTOR_CODES, DESCRIPTORS
from shoematch.errors import ShoematchError


class UnknownLabelError(ShoematchError, KeyError):
    """A descriptor code, attribute name or attribute value the model does not know."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def check_descriptor_codes(codes: Iterable[str]) -> list[str]:
    """The codes, in order, if every one is an NFRC descriptor code (D01 … D14)."""
    codes = list(codes)
    for code in codes:
        if code not in DESCRIPTORS:
            raise UnknownLabelError(f"unknown descriptor code {code!r}; expected one of "
                                    f"{', '.join(DESCRIPTOR_CODES)}")
    return codes


def check_attribute_names(names: Iterable[str], vocabulary: Mapping[str, list[str]]) -> list[str]:
    """The names, in order, if the model predicts every one."""
    names = list(names)
    for name in names:
        if name not in vocabulary:
            raise UnknownLabelError(f"unknown attribute {name!r}; this model predicts "
                                    f"{', '.join(sorted(vocabulary))}")
    return names


def check_attribute_filters(filters: Mapping[str, str],
                            vocabulary: Mapping[str, list[str]]) -> dict[str, str]:
    """Attribute name → value filters, if every name is known and every value one of its
    values."""
    check_attribute_names(filters, vocabulary)
    for name, value in filters.items():
        if value not in vocabulary[name]:
            raise UnknownLabelError(f"unknown value {value!r} for attribute {name!r}; expected "
                                    f"one of {', '.join(vocabulary[name])}")
    return dict(filters)
