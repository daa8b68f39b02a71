"""Synthetic scene photographs for the automatic preparation's tests: a tread-like print on a
noisy ground, a cm ruler drawn at a known scale, the whole turned by a known angle."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def ruler_strip(px_per_cm: float, length_cm: int) -> Image.Image:
    """A white ruler: mm, half-cm and cm ticks along its lower edge, a digit-like mark per cm."""
    height = round(1.6 * px_per_cm)
    strip = Image.new("L", (round((length_cm + 1) * px_per_cm), height), 235)
    draw = ImageDraw.Draw(strip)
    for mm in range(length_cm * 10 + 1):
        x = round((0.5 + mm / 10) * px_per_cm)
        tick = 0.6 if mm % 10 == 0 else 0.4 if mm % 5 == 0 else 0.25
        draw.line([(x, height - 1), (x, height - 1 - round(tick * px_per_cm))], fill=20)
        if mm % 10 == 0:  # the number above a cm tick
            top = round(0.2 * px_per_cm)
            draw.rectangle([x - round(0.12 * px_per_cm), top, x + round(0.12 * px_per_cm),
                            top + round(0.4 * px_per_cm)], outline=30, width=1)
    return strip


def tread(width: int, height: int, seed: int) -> Image.Image:
    """A sole-shaped blob of bars and dots (not periodic along any one line for long)."""
    rng = np.random.default_rng(seed)
    sole = Image.new("L", (width, height), 0)
    ImageDraw.Draw(sole).ellipse([0, 0, width - 1, height - 1], fill=255)
    dust = rng.normal(200, 25, (height, width)).clip(0, 255).astype(np.uint8)
    texture = Image.fromarray(dust)  # a dusty print: no flat area inside the sole
    draw = ImageDraw.Draw(texture)
    for _ in range(width * height // 300):
        x, y = rng.integers(0, width), rng.integers(0, height)
        r = int(rng.integers(2, 7))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=int(rng.integers(20, 90)))
    out = Image.new("L", (width, height), 0)
    out.paste(texture, (0, 0), sole)
    return out, sole


def scene(px_per_cm: float = 20.0, angle: float = 0.0, ruler: bool = True,
          print_: bool = True, size: tuple[int, int] = (600, 450), seed: int = 0,
          ruler_at: float = 0.08, noise: float = 2.0) -> np.ndarray:
    """Grey uint8 photograph: a plain ground, a print (toe to the right) and a ruler across the
    image at `ruler_at` of its height, all turned `angle` degrees counter-clockwise about the
    centre (corners turned out of the frame are lost, as in a photograph). `noise`: the
    sensor's grain over everything; the default is a smooth floor, 12 a grainy one."""
    rng = np.random.default_rng(seed)
    width, height = size
    image = Image.new("L", (width, height), 150)
    if print_:
        sole, shape = tread(int(width * 0.7), int(height * 0.45), seed)
        image.paste(sole, (int(width * 0.15), int(height * 0.35)), shape)
    if ruler:
        strip = ruler_strip(px_per_cm, int(width * 0.8 / px_per_cm))
        image.paste(strip, (int(width * 0.08), int(height * ruler_at)))
    turned = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False,
                          fillcolor=150)
    # Sensor noise over everything, as in a photograph (the ruler and the tread included).
    noisy = np.asarray(turned, np.float32) + rng.normal(0, noise, (height, width))
    return noisy.clip(0, 255).astype(np.uint8)
