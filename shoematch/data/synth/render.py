"""One instance of a model, as a retailer's data would show it.

`pose` places the canonical tread (size ±6 %, rotation ±4°, a few px shift) after wearing its
highest surfaces down; `render_reference` turns the posed height into every modality: a depth
map with prediction noise, the clean contact print, a sole mask with segmentation errors, a
shop photo (Lambertian shading, catalogue background) and a street photo (perspective, clutter,
other light, blur, noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from shoematch.data.schema import Canvas
from shoematch.data.synth.fields import similarity, smooth_noise, to_uint8, warp
from shoematch.data.synth.patterns import COLOURS, Model
from shoematch.data.synth.spec import TAG_LOOK, TAG_POSE, rng_for
from shoematch.data.synth.tread import CONTACT, TOP, Tread

_SD_CLIP = 16.0
# Height units → px of relief for shading (the tread stands ~3 px above the base).
_RELIEF = 6.0


@dataclass(frozen=True)
class Posed:
    """A tread worn and placed on the canvas for one instance."""

    height: np.ndarray  # (H, W) float32, clean (no prediction noise)
    sd: np.ndarray  # (H, W) signed distance to the outline, px, + inside


def _gauss(u: np.ndarray, v: np.ndarray, centre: tuple[float, float],
           spread: tuple[float, float]) -> np.ndarray:
    return np.exp(-(((u - centre[0]) / spread[0]) ** 2) - ((v - centre[1]) / spread[1]) ** 2)


def pose(tread: Tread, canvas: Canvas, seed: int, model: int, instance: int) -> Posed:
    """Wear, then place, instance `instance` of `model` (also used for held-out instances)."""
    rng = rng_for(seed, TAG_POSE, model, instance)
    scale = rng.uniform(0.94, 1.06)
    angle = np.radians(rng.uniform(-4.0, 4.0))
    shift = rng.uniform(-1.0, 1.0, 2) * 0.012 * canvas.width
    heel, ball = (rng.uniform(0.0, 0.2), rng.uniform(0.0, 0.15)) if rng.random() < 0.7 else (0, 0)
    sole = tread.sole
    worn = tread.height
    if heel or ball:
        # Heels wear at the lateral back edge, forefeet under the ball (medial).
        wear = (heel * _gauss(sole.u, sole.v, (0.06, 0.06), (0.12, 0.09))
                + ball * _gauss(sole.u, sole.v, (0.7, -0.05), (0.12, 0.1)))
        wear = wear * (0.7 + 0.3 * smooth_noise(rng, canvas.shape, (4, 8)))
        worn = np.minimum(worn, TOP - wear)
    forward = similarity((canvas.width / 2, canvas.height / 2), scale, angle, tuple(shift))
    inverse = np.linalg.inv(forward)
    sd = np.clip(sole.sd, -_SD_CLIP, _SD_CLIP)
    return Posed(height=warp(worn, inverse), sd=warp(sd, inverse, -_SD_CLIP) * scale)


def _light(elevation_deg: float, azimuth: float) -> np.ndarray:
    e = np.radians(elevation_deg)
    return np.array([np.cos(e) * np.cos(azimuth), np.cos(e) * np.sin(azimuth), np.sin(e)],
                    dtype=np.float32)


def shade(height: np.ndarray, light: np.ndarray, ambient: float,
          relief: float = _RELIEF) -> np.ndarray:
    """Lambertian intensity of the height field (with groove darkening), (H, W) in [0, 1].

    `relief` is the px of relief per height unit (double it at half resolution)."""
    gx = np.zeros_like(height)
    gy = np.zeros_like(height)
    gx[:, 1:-1] = (height[:, 2:] - height[:, :-2]) * (0.5 * relief)
    gy[1:-1, :] = (height[2:, :] - height[:-2, :]) * (0.5 * relief)
    lambert = np.clip((light[2] - gx * light[0] - gy * light[1])
                      / np.sqrt(1.0 + gx * gx + gy * gy), 0.0, 1.0)
    occlusion = 0.55 + 0.45 * np.clip((height - 0.3) / 0.7, 0.0, 1.0)
    return (ambient + (1.0 - ambient) * lambert) * occlusion


def _grey(field: np.ndarray) -> Image.Image:
    """A 0..1 float field as a PIL "L" image."""
    return Image.fromarray(to_uint8(field))


def _rgb(field: np.ndarray) -> Image.Image:
    """A 0..1 float field as a grey PIL "RGB" image (for channel-wise compositing)."""
    grey = _grey(field)
    return Image.merge("RGB", (grey, grey, grey))


def _coloured(intensity: np.ndarray, colour: np.ndarray) -> Image.Image:
    """`intensity` (0..1) times an RGB colour, via per-channel lookup tables (cheap in C)."""
    grey = _grey(intensity)
    levels = np.arange(256, dtype=np.float32)
    return Image.merge("RGB", [grey.point(np.clip(levels * c + 0.5, 0, 255).astype(int).tolist())
                               for c in colour])


def _shop_photo(posed: Posed, albedo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Catalogue shot: even light from a random direction, pale seamless background."""
    light = _light(rng.uniform(40, 65), rng.uniform(0, 2 * np.pi))
    sole = _coloured(shade(posed.height, light, ambient=0.35), albedo * rng.uniform(1.0, 1.15))
    backdrop = rng.uniform(0.92, 0.99) * (1.0 - 0.12 * np.clip(1.0 + posed.sd / 6.0, 0.0, 1.0))
    coverage = _grey(np.clip(posed.sd + 0.5, 0.0, 1.0))
    return np.asarray(Image.composite(sole, _rgb(backdrop), coverage))


def _clutter(rng: np.random.Generator, canvas: Canvas) -> Image.Image:
    """A busy floor / table: random muted shapes over a base colour."""
    h, w = canvas.shape
    grey = rng.uniform(50, 200)

    def muted() -> tuple[int, int, int]:
        red, green, blue = (int(0.45 * c + 0.55 * grey) for c in rng.integers(0, 256, 3))
        return red, green, blue

    image = Image.new("RGB", (w, h), muted())
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(6, 14))):
        colour = muted()
        x0, x1 = sorted(rng.uniform(-0.2, 1.2, 2) * w)
        y0, y1 = sorted(rng.uniform(-0.2, 1.2, 2) * h)
        kind = rng.integers(4)
        if kind == 0:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        elif kind == 1:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        elif kind == 2:
            draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(2, 12)))
        else:
            points = [(float(x), float(y)) for x, y in rng.uniform(0, 1, (3, 2)) * (w, h)]
            draw.polygon(points, fill=colour)
    return image


def _street_photo(posed: Posed, albedo: np.ndarray, rng: np.random.Generator,
                  canvas: Canvas) -> np.ndarray:
    """A customer's snapshot: tilted view, other light, dirt, clutter, sensor noise; taken at
    half resolution and upscaled, which gives the soft look of a phone photo (and is cheap)."""
    small = Canvas(max(canvas.height // 2, 1), max(canvas.width // 2, 1))
    h, w = small.shape
    centre = (w / 2, h / 2)
    keystone = np.array([[1, 0, 0], [0, 1, 0],
                         [rng.uniform(-0.3, 0.3) / w, rng.uniform(-0.3, 0.3) / h, 1]])
    to_centre = np.array([[1, 0, -centre[0]], [0, 1, -centre[1]], [0, 0, 1]])
    forward = similarity(centre, rng.uniform(0.82, 0.97), np.radians(rng.uniform(-10, 10)),
                         tuple(rng.uniform(-0.04, 0.04, 2) * (w, h)))
    forward = forward @ np.linalg.inv(to_centre) @ keystone @ to_centre
    reduced = Image.fromarray(posed.height).resize((w, h), Image.Resampling.BOX)
    height = warp(np.asarray(reduced, dtype=np.float32), np.linalg.inv(forward))
    coverage = np.clip(height * 4.0, 0.0, 1.0)  # every sole surface is >= 0.25 high
    light = _light(rng.uniform(18, 50), rng.uniform(0, 2 * np.pi))
    falloff = rng.uniform(0.6, 1.0) * (1.0 + smooth_noise(rng, small.shape, (2, 3), 0.25))
    dirt = np.clip(smooth_noise(rng, small.shape, (5, 10)), 0.0, 1.0)
    tint = albedo * rng.uniform(0.85, 1.1, 3).astype(np.float32)
    intensity = shade(height, light, ambient=0.25, relief=2 * _RELIEF)
    sole = _coloured(intensity * falloff * (1 - 0.4 * dirt), tint)
    cover = _grey(coverage)
    shadow = np.asarray(cover.filter(ImageFilter.BoxBlur(0.02 * w)), dtype=np.float32) / 255
    background = ImageChops.multiply(_clutter(rng, small), _rgb(falloff * (1 - 0.4 * shadow)))
    photo = Image.composite(sole, background, cover)
    spread = int(rng.integers(1, 4))  # luminance noise of a few levels
    noise = Image.fromarray(rng.integers(0, 2 * spread + 1, (h, w), dtype=np.uint8))
    photo = ImageChops.add(photo, Image.merge("RGB", (noise,) * 3), 1.0, -spread)
    return np.asarray(photo.resize((canvas.width, canvas.height), Image.Resampling.BILINEAR))


def _segmentation(posed: Posed, rng: np.random.Generator, canvas: Canvas) -> np.ndarray:
    """The sole mask a segmenter would give: edges eroded/dilated by a px or two, small blobs
    added or bitten out near the outline."""
    offset = smooth_noise(rng, canvas.shape, (6, 12), 1.2) + rng.uniform(-1.0, 1.0)
    mask = posed.sd + offset > 0
    h, w = canvas.shape
    for _ in range(int(rng.integers(0, 4))):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        radius = rng.uniform(2.0, 5.0) * w / 384
        if abs(posed.sd[int(y), int(x)]) > 6:
            continue
        r = int(radius) + 1
        ys = slice(max(int(y) - r, 0), int(y) + r + 1)
        xs = slice(max(int(x) - r, 0), int(x) + r + 1)
        yy, xx = np.mgrid[ys, xs]
        blob = np.hypot(xx + 0.5 - x, yy + 0.5 - y) < radius
        mask[ys, xs] = (mask[ys, xs] | blob) if rng.random() < 0.5 else (mask[ys, xs] & ~blob)
    return mask


def albedo_of(model: Model, rng: np.random.Generator) -> np.ndarray:
    """The model's sole colour (linear-ish 0..1), varied slightly per photo."""
    return (np.array(COLOURS[model.colour], np.float32) / 255.0
            * rng.uniform(0.93, 1.07, 3).astype(np.float32))


def render_reference(seed: int, model: Model, tread: Tread, instance: int,
                     canvas: Canvas) -> dict[str, np.ndarray]:
    """Every image of one reference instance, as uint8 arrays keyed by record field."""
    posed = pose(tread, canvas, seed, model.index, instance)
    rng = rng_for(seed, TAG_LOOK, model.index, instance)
    inside = posed.height > 0.02
    noisy = (posed.height + smooth_noise(rng, canvas.shape, (4, 8), 0.025)
             + (rng.random(canvas.shape, dtype=np.float32) - 0.5) * 0.012)
    mask = _segmentation(posed, rng, canvas)
    albedo = albedo_of(model, rng)
    return {
        "depth": np.where(inside & mask, to_uint8(noisy), 0).astype(np.uint8),
        "print": np.where(posed.height > CONTACT, 255, 0).astype(np.uint8),
        "mask": np.where(mask, 255, 0).astype(np.uint8),
        "photo": _shop_photo(posed, albedo, rng),
        "street_photo": _street_photo(posed, albedo, rng, canvas),
    }
