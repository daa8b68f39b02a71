"""A PNG grid of sample queries and their top-10 ranked shoe models, for people to check.

Each row: the query print (visible region tinted), then the ranked models, each shown by one of
its reference images (depth if present, else print), framed green when it is a target.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from shoematch.data.dataset import Dataset
from shoematch.data.images import decode_image

GREEN, RED, TEXT = (40, 170, 60), (200, 60, 60), (20, 20, 20)


def _tile(image: np.ndarray, frame: tuple[int, int, int] | None,
          size: tuple[int, int]) -> Image.Image:
    tile = Image.fromarray(image).convert("RGB").resize(size)
    if frame:
        ImageDraw.Draw(tile).rectangle([0, 0, size[0] - 1, size[1] - 1], outline=frame, width=3)
    return tile


def write_top_matches_grid(path: str, report: dict, refdb: Dataset, queries: Dataset,
                           samples: int = 6, top: int = 10, tile_width: int = 160) -> None:
    per_query = report["per_query"][:samples]
    wanted = {q["query_id"] for q in per_query}
    query_records = {r["query_id"]: r for r in queries.iter_records(["query_id", "print", "mask"])
                     if r["query_id"] in wanted}
    needed = {m for q in per_query for m in q["top10"][:top]}
    model_image: dict[str, np.ndarray] = {}
    for record in refdb.iter_records(["instance_id", "model_id", "depth", "print"]):
        model = record["model_id"]
        if model in needed and model not in model_image:
            field = "depth" if record["depth"] is not None else "print"
            model_image[model] = decode_image(record[field], f"{record['instance_id']} {field}")
    canvas = refdb.canvas
    size = (tile_width, max(1, round(tile_width * canvas.height / canvas.width)))
    label_h = 14
    sheet = Image.new("RGB", (size[0] * (top + 1), (size[1] + label_h) * len(per_query)),
                      "white")
    draw = ImageDraw.Draw(sheet)
    for row, entry in enumerate(per_query):
        y = row * (size[1] + label_h)
        record = query_records[entry["query_id"]]
        grey = decode_image(record["print"], entry["query_id"])
        mask = decode_image(record["mask"], entry["query_id"]) > 127
        rgb = np.stack([grey] * 3, axis=-1)
        rgb[~mask] = (rgb[~mask] * 0.5 + np.array([0, 0, 120])).astype(np.uint8)
        sheet.paste(_tile(rgb, None, size), (0, y + label_h))
        rank = entry["first_correct_rank"]
        draw.text((2, y), f"{entry['query_id']} first correct: {rank}", fill=TEXT)
        targets = set(entry["targets"])
        for col, model in enumerate(entry["top10"][:top], start=1):
            frame = GREEN if model in targets else RED
            sheet.paste(_tile(model_image[model], frame, size), (col * size[0], y + label_h))
            draw.text((col * size[0] + 2, y), f"{col}. {model}", fill=TEXT)
    sheet.save(path)
