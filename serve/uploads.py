"""Turning uploaded print and mask images into arrays, with errors that name the problem."""

from __future__ import annotations

import numpy as np

from shoematch.data.images import decode_image
from shoematch.errors import ImageError, QueryError
from shoematch.index.encoding import default_mask


def decode_print(data: bytes, canvas: tuple[int, int]) -> np.ndarray:
    """uint8 [H, W] print (255 = ink) on the index canvas (height, width)."""
    try:
        image = decode_image(data, "print")
    except ImageError as exc:
        raise QueryError(str(exc)) from exc
    if image.shape != canvas:
        raise QueryError(f"print is {image.shape[1]}x{image.shape[0]} (WxH); the index canvas "
                         f"is {canvas[1]}x{canvas[0]}: place the print on the canvas first")
    return image


def decode_photo(data: bytes) -> np.ndarray:
    """uint8 [H, W, 3] sole photo (any size; the models resize it)."""
    try:
        return decode_image(data, "photo", "RGB")
    except ImageError as exc:
        raise QueryError(str(exc)) from exc


def decode_any_print(data: bytes) -> np.ndarray:
    """uint8 [H, W] print of any size (the descriptor model keeps its aspect ratio)."""
    try:
        return decode_image(data, "print")
    except ImageError as exc:
        raise QueryError(str(exc)) from exc


def decode_mask(data: bytes | None, print_image: np.ndarray) -> np.ndarray:
    """bool [H, W] visible region: the uploaded mask (255 = visible) or the print's ink."""
    if data is None:
        mask = default_mask(print_image)
        if not mask.any():
            raise QueryError("print has no ink (blank image) and no mask was given")
        return mask
    try:
        image = decode_image(data, "mask")
    except ImageError as exc:
        raise QueryError(str(exc)) from exc
    if image.shape != print_image.shape:
        raise QueryError(f"mask is {image.shape[1]}x{image.shape[0]} (WxH) but the print is "
                         f"{print_image.shape[1]}x{print_image.shape[0]}")
    mask = image > 127
    if not mask.any():
        raise QueryError("mask is empty: nothing of the print is marked visible")
    return mask
