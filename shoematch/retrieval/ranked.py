"""What every ranking merge reads of a hit: its model, score and global order (the tie-break)."""

from __future__ import annotations

from typing import Protocol, TypeVar


class RankedHit(Protocol):
    """Read-only, so frozen dataclasses (the index's `Match`) satisfy it."""

    @property
    def model(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def order(self) -> int: ...


Hit = TypeVar("Hit", bound=RankedHit)
