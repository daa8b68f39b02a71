"""PNG encoding/decoding of record images, with errors that name the image."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
from PIL import Image, UnidentifiedImageError

from shoematch.errors import ImageError, PixelBudgetError

# Fast zlib level: synthetic generation is dominated by encoding at higher levels.
PNG_COMPRESS_LEVEL = 1
# One pixel budget for every decoded image (prints, masks, photos): checked on the header,
# before any pixel is decoded, so a small compressed file cannot make us allocate gigabytes.
MAX_IMAGE_PIXELS = 4096 * 4096
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FILTER_NONE, _FILTER_UP = 0, 2


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def encode_png(array: np.ndarray) -> bytes:
    """Encode a uint8 array (H×W grey or H×W×3 RGB) as a standard 8-bit PNG.

    Written directly (one vectorised scanline filter + zlib) because it is about twice as
    fast as Pillow's adaptive filtering at the same size: grey images use no filter, RGB the
    "up" filter (smooth photos compress best with it).
    """
    if array.dtype != np.uint8:
        raise ImageError(f"expected a uint8 image, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ImageError(f"expected an H×W or H×W×3 image, got shape {array.shape}")
    height, width = array.shape[:2]
    rows = np.ascontiguousarray(array).reshape(height, -1)
    if array.ndim == 3:
        filtered = rows.copy()
        filtered[1:] -= rows[:-1]  # uint8 wrap-around is exactly PNG's modulo-256 "up" filter
        colour_type, filter_type = 2, _FILTER_UP
    else:
        filtered, colour_type, filter_type = rows, 0, _FILTER_NONE
    scanlines = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    scanlines[:, 0] = filter_type
    scanlines[:, 1:] = filtered
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"".join((
        _PNG_SIGNATURE,
        _png_chunk(b"IHDR", header),
        _png_chunk(b"IDAT", zlib.compress(scanlines.tobytes(), PNG_COMPRESS_LEVEL)),
        _png_chunk(b"IEND", b""),
    ))


def decode_image(data: bytes, name: str, mode: str = "L",
                 max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode PNG/JPEG bytes to a uint8 array in `mode` ("L" grey or "RGB").

    `name` identifies the image (instance id and field, or a file path) in the error. The
    size is read from the header first: anything above `max_pixels` is refused undecoded.
    """
    if not data:
        raise ImageError(f"{name}: image is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # ours is lower
            image = Image.open(io.BytesIO(data))  # reads the header only
        with image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(f"{name}: image is {width}x{height} pixels; the limit is "
                                 f"{max_pixels:,} pixels")
            image.load()
            converted = image.convert(mode)
    except Image.DecompressionBombError as exc:  # Pillow's own, far larger, header check
        raise ImageError(f"{name}: image is larger than the limit of {max_pixels:,} "
                         "pixels") from exc
    except UnidentifiedImageError as exc:  # its message holds the reader object's repr
        raise ImageError(f"{name}: cannot decode image (not a PNG or JPEG file)") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{name}: cannot decode image ({exc})") from exc
    return np.array(converted, dtype=np.uint8)  # a writable copy (torch.from_numpy needs one)


def check_pixel_budget(data: bytes, name: str, max_pixels: int) -> tuple[int, int]:
    """(width, height) from the image header, refusing images over `max_pixels` before any
    pixel is decoded (Pillow's `open` reads only the header): a small upload can otherwise
    inflate to gigabytes (a decompression bomb)."""
    if not data:
        raise ImageError(f"{name}: image is empty")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Image.DecompressionBombError as exc:
        assert Image.MAX_IMAGE_PIXELS is not None  # the bomb check runs only when it is set
        raise PixelBudgetError(f"{name}: declares more than {2 * Image.MAX_IMAGE_PIXELS} "
                               f"pixels, over the limit of {max_pixels} pixels; refused before "
                               "decoding") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{name}: cannot decode image ({exc})") from exc
    if width * height > max_pixels:
        raise PixelBudgetError(f"{name}: {width}x{height} pixels exceeds the limit of "
                               f"{max_pixels} pixels; refused before decoding")
    return width, height


def fitted_size(shape: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """(height, width) of `shape` scaled to fit inside `size` with its aspect ratio kept."""
    scale = min(size[0] / shape[0], size[1] / shape[1])
    return (max(1, min(size[0], round(shape[0] * scale))),
            max(1, min(size[1], round(shape[1] * scale))))


def read_image_file(path: str, mode: str = "L") -> np.ndarray:
    """Read and decode an image file from local disk, naming the file on failure."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read image file ({exc.strerror})") from exc
    return decode_image(data, path, mode)
