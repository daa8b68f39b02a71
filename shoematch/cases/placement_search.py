"""The placement search of a case query: which prints (and visible regions) a search ranks, and
which of their rankings the query keeps.

With `placement: "search"` the examiner has not placed the print on the canvas: every candidate
placement (`placement_candidates`) is searched, the mask drawn over the centred print moving with
it, and the placement whose best match scores highest is kept, with every one tried on record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shoematch.cases.preparation import (
    Placement,
    Preparation,
    placement_candidates,
    prepare,
    shift_mask,
)
from shoematch.errors import BlankPrintError, QueryError


@dataclass(frozen=True)
class Try:
    """One print to rank: its placement (None: the one the parameters give), the prepared
    print on the canvas and its visible region."""

    placement: Placement | None
    image: np.ndarray
    visible: np.ndarray


def placement_tries(original: bytes, params: Preparation, mask_over: Callable[[np.ndarray],
                    np.ndarray], canvas: tuple[int, int], scale: float
                    ) -> tuple[np.ndarray, list[Try]]:
    """The mask as drawn (`mask_over(print)`: the examiner's mask over the print it was drawn
    on) and the prints to rank: one, or with `placement: "search"` one per candidate placement
    where the print stays on the canvas and some of its mask stays visible."""
    if params.placement != "search":
        image = prepare(original, params, canvas, scale)
        drawn = mask_over(image)
        return drawn, [Try(None, image, drawn)]
    centred = params.model_copy(update={"placement": None})
    drawn = mask_over(prepare(original, centred, canvas, scale))
    tries = []
    for placement, shift in placement_candidates(canvas):
        visible = shift_mask(drawn, shift)
        moved = params.model_copy(update={"placement": placement})
        try:
            image = prepare(original, moved, canvas, scale)
        except BlankPrintError:
            continue
        if visible.any():
            tries.append(Try(placement, image, visible))
    if not tries:
        raise QueryError("placement search: the print or its mask leaves the canvas at every "
                         "position; place it by hand")
    return drawn, tries


def best_try(tries: list[Try], rankings: list[dict]) -> tuple[int, dict | None]:
    """Which try to keep (the one whose best match scores highest; a try with no match scores
    lowest) and the ranking's `placement` record: None for a print placed by the examiner,
    else the chosen placement and every one tried with its top score."""
    tops = [r["results"][0]["score"] if r["results"] else float("-inf") for r in rankings]
    best = int(np.argmax(tops))
    chosen = tries[best].placement
    if chosen is None:
        return best, None
    tried = zip((t.placement for t in tries), tops, strict=True)
    return best, {"chosen": chosen.model_dump(),
                  "tried": [{**p.model_dump(), "top_score": top} for p, top in tried if p]}
