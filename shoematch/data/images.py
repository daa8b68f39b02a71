"""PNG encoding/decoding of record images, with errors that name the image."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from shoematch.errors import ImageError

# Fast zlib level: synthetic generation is dominated by encoding at higher levels.
PNG_COMPRESS_LEVEL = 1


def encode_png(array: np.ndarray) -> bytes:
    """Encode a uint8 array (H×W grey or H×W×3 RGB) as PNG bytes."""
    if array.dtype != np.uint8:
        raise ImageError(f"expected a uint8 image, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3):
        raise ImageError(f"expected an H×W or H×W×3 image, got shape {array.shape}")
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def decode_image(data: bytes, name: str, mode: str = "L") -> np.ndarray:
    """Decode PNG/JPEG bytes to a uint8 array in `mode` ("L" grey or "RGB").

    `name` identifies the image (instance id and field, or a file path) in the error.
    """
    if not data:
        raise ImageError(f"{name}: image is empty")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            converted = image.convert(mode)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{name}: cannot decode image ({exc})") from exc
    return np.asarray(converted, dtype=np.uint8)


def read_image_file(path: str, mode: str = "L") -> np.ndarray:
    """Read and decode an image file from local disk, naming the file on failure."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read image file ({exc.strerror})") from exc
    return decode_image(data, path, mode)
