"""Write a PNG grid of clean prints (first column) and several augmented draws of each, so a
person can check that the crime-scene augmentation looks plausible and keeps the tread legible.

    python scripts/aug_grid.py --out /tmp/aug.png [--refdb DATASET_DIR] [--png-dir DIR]

Prints come from, in order of preference: --png-dir (plain image files, e.g. FID300
references: dark ink, sole vertical), --refdb (a reference dataset), the synthetic generator
(shoematch.data.synth), or simple bar/circle patterns drawn here. Shown as dark ink on white.
"""

from __future__ import annotations

import argparse
import os
import sys
from itertools import islice

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from shoematch.augment import AugConfig, augment_prints  # noqa: E402
from shoematch.data.schema import Canvas  # noqa: E402

GAP = 4


def prints_from_pngs(directory: str, count: int, canvas: Canvas) -> list[np.ndarray]:
    """Image files as canvas prints: inverted if ink is dark, turned so the sole is horizontal,
    fitted inside the canvas keeping the aspect ratio."""
    names = sorted(n for n in os.listdir(directory) if n.lower().endswith((".png", ".jpg")))
    step = max(1, len(names) // count)
    out = []
    for name in names[::step][:count]:
        image = Image.open(os.path.join(directory, name)).convert("L")
        if image.height > image.width:
            image = image.rotate(90, expand=True)
        array = np.asarray(image)
        if array.mean() > 127:  # dark ink on light paper
            array = 255 - array
        image = Image.fromarray(array)
        scale = min(canvas.width / image.width, canvas.height / image.height)
        image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))))
        board = Image.new("L", (canvas.width, canvas.height), 0)
        board.paste(image, ((canvas.width - image.width) // 2, (canvas.height - image.height) // 2))
        out.append(np.asarray(board))
    return out


def prints_from_refdb(uri: str, count: int) -> list[np.ndarray]:
    from shoematch.data.dataset import open_dataset
    from shoematch.data.images import decode_image

    records = open_dataset(uri).iter_records(["print"])
    return [decode_image(r["print"], f"{uri} print", "L") for r in islice(records, count)]


def prints_from_synth(count: int) -> list[np.ndarray] | None:
    try:
        from shoematch.data.images import decode_image
        from shoematch.data.synth import SynthSpec, generate_reference_chunk
    except ImportError:
        return None
    spec = SynthSpec(models=count, instances=1, queries=0, seed=7)
    records = generate_reference_chunk(spec, range(count))
    return [decode_image(r["print"], r["instance_id"], "L") for r in records[:count]]


def prints_drawn(count: int, canvas: Canvas) -> list[np.ndarray]:
    """Fallback: a sole-shaped outline filled with bars or circles."""
    rng = np.random.default_rng(0)
    h, w = canvas.height, canvas.width
    out = []
    for index in range(count):
        sole = Image.new("L", (w, h), 0)
        ImageDraw.Draw(sole).ellipse((int(0.05 * w), int(0.1 * h), int(0.95 * w), int(0.9 * h)),
                                     fill=255)
        tread = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(tread)
        pitch = int(rng.integers(10, 20))
        if index % 2 == 0:
            for x in range(0, w, pitch):
                draw.polygon([(x, 0), (x + pitch // 2, 0), (x + pitch // 2 + 30, h), (x + 30, h)],
                             fill=255)
        else:
            for y in range(pitch // 2, h, pitch):
                for x in range(pitch // 2, w, pitch):
                    r = pitch * 0.35
                    draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
        out.append(np.minimum(np.asarray(sole), np.asarray(tread)))
    return out


def load_prints(args: argparse.Namespace, canvas: Canvas) -> tuple[list[np.ndarray], str]:
    if args.png_dir:
        return prints_from_pngs(args.png_dir, args.rows, canvas), args.png_dir
    if args.refdb:
        return prints_from_refdb(args.refdb, args.rows), args.refdb
    synth = prints_from_synth(args.rows)
    if synth:
        return synth, "shoematch.data.synth"
    return prints_drawn(args.rows, canvas), "drawn patterns"


def make_grid(prints: list[np.ndarray], draws: int, cfg: AugConfig, seed: int) -> Image.Image:
    batch = torch.from_numpy(np.stack(prints)).float().div(255).unsqueeze(1)
    columns = [batch]
    for draw in range(draws):
        generator = torch.Generator(device="cpu").manual_seed(seed + draw)
        columns.append(augment_prints(batch, cfg, generator))
    n, _, h, w = batch.shape
    grid = Image.new("L", ((w + GAP) * len(columns) - GAP, (h + GAP) * n - GAP), 128)
    for c, column in enumerate(columns):
        images = (255 - column[:, 0].mul(255).round().to(torch.uint8)).numpy()  # dark ink
        for r in range(n):
            grid.paste(Image.fromarray(images[r]), (c * (w + GAP), r * (h + GAP)))
    return grid


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--refdb", help="reference dataset directory (or URI)")
    parser.add_argument("--png-dir", help="directory of print image files (e.g. FID300)")
    parser.add_argument("--rows", type=int, default=6, help="number of clean prints")
    parser.add_argument("--draws", type=int, default=4, help="augmented versions of each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="AugConfig overrides, e.g. noise_mode=perlin")
    args = parser.parse_args(argv)

    from shoematch.config import load_config

    cfg = load_config(AugConfig, None, args.set)
    prints, source = load_prints(args, Canvas())
    grid = make_grid(prints, args.draws, cfg, args.seed)
    grid.save(args.out)
    print(f"wrote {args.out}: {len(prints)} prints from {source}, {args.draws} draws each")


if __name__ == "__main__":
    main()
