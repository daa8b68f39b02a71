"""The one way shoematch logs: stdlib logging with a single format, plus a progress helper."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

_FORMAT = "%(asctime)s %(levelname).1s %(name)s | %(message)s"
_configured = False

T = TypeVar("T")


def get_logger(name: str) -> logging.Logger:
    """Return a logger under the `shoematch` namespace, configuring the root handler once."""
    global _configured
    if not _configured:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
        root = logging.getLogger("shoematch")
        root.addHandler(handler)
        root.setLevel(os.environ.get("SHOEMATCH_LOG_LEVEL", "INFO"))
        root.propagate = False
        _configured = True
    return logging.getLogger(name if name.startswith("shoematch") else f"shoematch.{name}")


def progress(items: Iterable[T], total: int, label: str, logger: logging.Logger,
             every_s: float = 2.0) -> Iterator[T]:
    """Yield items, logging `label: done/total (rate/s)` at most every `every_s` seconds."""
    start = last = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= every_s or done == total:
            rate = done / max(now - start, 1e-9)
            logger.info("%s: %d/%d (%.1f/s)", label, done, total, rate)
            last = now
