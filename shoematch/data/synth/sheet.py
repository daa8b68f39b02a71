"""A contact sheet: one row per model (depth, print, mask, shop photo, street photo, a query),
so a person can judge at a glance whether the synthetic treads look like shoe soles."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from shoematch.data.synth.degrade import CATEGORIES, COVERAGES, SUBSTRATES, QueryPlan
from shoematch.data.synth.generate import query_images
from shoematch.data.synth.patterns import make_model
from shoematch.data.synth.render import render_reference
from shoematch.data.synth.spec import TAG_SHEET, SynthSpec, rng_for
from shoematch.data.synth.tread import render_tread

COLUMNS = ("depth", "print", "mask", "photo", "street_photo", "query")
_GAP = 4
_LABEL_W = 150
_LABEL_H = 96  # seven lines of the default font
_HEADER_H = 18


def _as_rgb(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)


def _sheet_query(spec: SynthSpec, model: int) -> QueryPlan:
    """A query of `model` (its first held-out instance), cycling through media and extents."""
    rng = rng_for(spec.seed, TAG_SHEET, model)
    return QueryPlan(index=spec.queries + model, model=model, instance=spec.instances,
                     category=CATEGORIES[model % len(CATEGORIES)],
                     substrate=SUBSTRATES[int(rng.integers(len(SUBSTRATES)))],
                     coverage=COVERAGES[model % len(COVERAGES)], split="test")


def write_contact_sheet(spec: SynthSpec, path: str, models: int = 8) -> None:
    """Write the contact sheet of the first `models` models to the local file `path` (PNG)."""
    rows = min(models, spec.models)
    h, w = spec.canvas.shape
    pitch = max(h, _LABEL_H) + _GAP
    sheet = Image.new("RGB", (_LABEL_W + len(COLUMNS) * (w + _GAP), _HEADER_H + rows * pitch),
                      (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for c, name in enumerate(COLUMNS):
        draw.text((_LABEL_W + c * (w + _GAP) + 4, 3), name, fill=(230, 230, 230))
    for row in range(rows):
        model = make_model(spec, row)
        tread = render_tread(model, spec.canvas)
        images = render_reference(spec.seed, model, tread, 0, spec.canvas)
        plan = _sheet_query(spec, row)
        query, _ = query_images(spec, plan, model, tread)
        images["query"] = query
        top = _HEADER_H + row * pitch
        for c, name in enumerate(COLUMNS):
            sheet.paste(Image.fromarray(_as_rgb(images[name])), (_LABEL_W + c * (w + _GAP), top))
        attributes = model.attributes
        codes = model.recipe.descriptors
        label = [f"{model.model_id} {model.pattern_id} {model.split}",
                 f"{attributes['category']} {attributes['toe_shape']} {attributes['heel_type']}",
                 f"{attributes['brand']} {attributes['colour']}",
                 *(" ".join(codes[i:i + 4]) for i in range(0, len(codes), 4)),
                 f"query: {plan.category} {plan.substrate} {plan.coverage}"]
        draw.multiline_text((4, top + 4), "\n".join(label), fill=(230, 230, 230), spacing=3)
    sheet.save(path, format="PNG")
