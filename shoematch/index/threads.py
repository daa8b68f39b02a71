"""How many threads the search's numba kernels (scan, truth gather) use in this process.

numba's OpenMP pool starts one thread per core in every process; several Serve shard replicas
on one machine would then run cores × replicas threads that wait on each other at every
parallel region. A replica sets its share once (`ServeSettings.shard_threads`); numba's thread
count is per calling thread, so each kernel call applies it in the thread that makes it.
"""

from __future__ import annotations

import numba

_threads = 0  # 0: numba's default, every core


def set_search_threads(count: int) -> None:
    """Use at most `count` threads for the search kernels in this process (0: every core)."""
    global _threads
    if count < 0:
        raise ValueError(f"search threads must be ≥ 0, got {count}")
    _threads = count


def apply_search_threads() -> None:
    """Set this thread's numba thread count before a kernel call."""
    # numba.config fills its settings into globals() at import, so mypy cannot see them.
    limit: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    numba.set_num_threads(min(_threads, limit) if _threads else limit)
