"""Readers that turn real data into shoematch records on one canvas, writing nothing.

Each reader checks its label/manifest files and lists its images when called, so a broken
source fails before anything is written; the returned iterators decode lazily. Errors are
DatasetError/ImageError naming the offending file.
"""

from __future__ import annotations

from collections.abc import Callable

from shoematch.data.readers.common import ReaderOutput
from shoematch.data.readers.crisp import read_crisp
from shoematch.data.readers.fid300 import read_fid300
from shoematch.data.readers.folder import read_folder

READERS: dict[str, Callable[..., ReaderOutput]] = {
    "crisp": read_crisp,
    "fid300": read_fid300,
    "folder": read_folder,
}

__all__ = ["READERS", "ReaderOutput", "read_crisp", "read_fid300", "read_folder"]
