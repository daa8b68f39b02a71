"""Bad images for upload tests: a decompression bomb made without holding it in memory."""

from __future__ import annotations

import struct
import zlib

from shoematch.data.images import _png_chunk

ROWS_PER_CHUNK = 500


def bomb_png(side: int = 20_000) -> bytes:
    """A valid side×side grey PNG of zeros (~400 MB decoded at 20,000², ~400 KB encoded)."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    rows = (b"\0" * (side + 1)) * ROWS_PER_CHUNK
    parts = []
    for _ in range(side // ROWS_PER_CHUNK):
        parts.append(compressor.compress(rows))
    parts.append(compressor.flush())
    return b"".join((b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", header),
                     _png_chunk(b"IDAT", b"".join(parts)), _png_chunk(b"IEND", b"")))
