"""What every reader returns, and the file checks they share.

Readers list and check every file up front, so a missing label file or image fails before a
caller writes anything; decoding stays lazy (in the returned iterators) so a large source is
never held in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from shoematch.data.schema import Canvas
from shoematch.errors import DatasetError, ImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
DEFAULT_CANVAS = Canvas()


@dataclass
class ReaderOutput:
    """Records of one source on one canvas; `params` goes into the dataset manifest."""

    canvas: Canvas
    references: Iterator[dict[str, Any]] | None
    queries: Iterator[dict[str, Any]] | None
    reference_count: int
    query_count: int
    params: dict[str, Any] = field(default_factory=dict)


def require_dir(path: Path) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{path}: folder not found")
    return path


def require_file(path: Path) -> Path:
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    return path


def list_images(folder: Path) -> dict[str, Path]:
    """Image files of `folder` by file stem, sorted; two files with one stem are an error."""
    images: dict[str, Path] = {}
    for path in sorted(require_dir(folder).iterdir()):
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.stem in images:
            raise DatasetError(f"{path}: another image has the same stem ({images[path.stem]})")
        images[path.stem] = path
    return images


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the image header alone, naming the file if it is unreadable."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{path}: cannot read image ({exc})") from exc
    return height, width
